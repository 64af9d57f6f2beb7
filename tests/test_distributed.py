"""gluon_nets.training.distributed: the distributed math, the server-safe schedule,
LW-DNA under dist, and the multi-host recipe of docs/distributed.md on loopback."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

mx = pytest.importorskip('mxnet')
from gluon_nets.training import distributed  # noqa: E402
from gluon_nets.launch import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train import TINY  # noqa: E402
from test_data import _tree  # noqa: E402

# heartbeats on, but every second: a node's shutdown waits for its heartbeat thread,
# which costs seconds per job at the launcher's default of 5 s
ENV = dict(os.environ, OMP_NUM_THREADS='1', PS_HEARTBEAT_INTERVAL='1')


# ------------------------------------------------------------------ bookkeeping
class _FakeKV:
    def __init__(self, rank, num_workers):
        self.rank, self.num_workers = rank, num_workers


def test_step_batch_and_update_placement():
    local = distributed.Worker(None, 'device')
    sync = distributed.Worker(_FakeKV(1, 4), 'dist_sync')
    assert (local.rank, local.num_workers, local.is_chief, local.is_distributed) == (0, 1, True, False)
    assert (sync.rank, sync.num_workers, sync.is_chief) == (1, 4, False)
    assert distributed.update_on_kvstore('device', None) is None
    assert distributed.update_on_kvstore('dist_sync', sync.kv) is False
    assert distributed.update_on_kvstore('dist_async', sync.kv) is True
    # summed over 2 devices x 4 workers when the workers push-pull one sum
    assert distributed.step_batch_size(8, 2, sync, False) == 64
    assert distributed.step_batch_size(8, 2, sync, True) == 16   # async: its own batch
    assert distributed.step_batch_size(8, 2, local, None) == 16
    assert distributed.states_are_local(sync, False) and not distributed.states_are_local(sync, True)


@pytest.mark.parametrize('flags', [
    dict(lr_mode='step', warmup_epochs=0, lr_decay_epoch='2,3'),
    dict(lr_mode='cosine', warmup_epochs=1, lr_decay_epoch='40,60'),
    dict(lr_mode='poly', warmup_epochs=2, lr_decay_epoch='40,60'),
    dict(lr_mode='linear', warmup_epochs=0, lr_decay_epoch='40,60'),
])
def test_server_safe_schedule_equals_gluoncv(flags):
    import argparse
    import pickle
    from gluon_nets.training.trainer import _lr_scheduler
    args = argparse.Namespace(lr=0.4, warmup_lr=0.01, num_epochs=5, lr_decay=0.1,
                              lr_decay_period=0, **flags)
    reference = _lr_scheduler(args, iters=7)
    ours = pickle.loads(pickle.dumps(distributed.ServerSafeSchedule.from_gluoncv(reference)))
    for update in range(0, 40):
        assert ours(update) == reference(update), update   # the same float, not close
    assert type(ours).__module__ == 'gluon_nets.training.distributed'


def test_the_distributed_module_imports_neither_mxnet_nor_gluoncv():
    # a dist_async server unpickles ServerSafeSchedule inside its own `import mxnet`
    out = subprocess.run([sys.executable, '-c', 'import sys, pickle\n'
                          'import gluon_nets.training.distributed as d\n'
                          'pickle.loads(pickle.dumps(d.ServerSafeSchedule([dict(mode="constant", '
                          'base_lr=0.1, target_lr=0, niters=5, power=2, step=None, '
                          'step_factor=0.1)])))\n'
                          'print(sorted(m for m in ("mxnet", "gluoncv") if m in sys.modules))'],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == '[]', out.stderr


# --------------------------------------------------------------- distributed math
# One script, three modes: 'local' trains on whole batches of 2B; 'dist' (one of 2
# workers under the launcher) and 'horovod' (one of 2 Horovod processes) train on
# their half of every batch, rows [rank*B, (rank+1)*B). The data order is fixed (no
# shuffle, no augmentation) and the net has no BatchNorm: per-worker BN statistics of B
# images are not those of 2B images, so with BN the two runs would legitimately differ.
EQUIVALENCE_JOB = r'''
import sys
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn
from gluon_nets.training import distributed

mode, out, B, steps = sys.argv[1], sys.argv[2], 4, 6
worker = distributed.connect({'dist': 'dist_sync', 'horovod': 'horovod'}.get(mode, 'device'))
mx.random.seed(7 + worker.rank)   # rank 1 starts elsewhere: the broadcast must fix it
net = nn.HybridSequential()
net.add(nn.Conv2D(6, 3, padding=1), nn.Activation('relu'), nn.Conv2D(8, 3, strides=2),
        nn.Activation('relu'), nn.GlobalAvgPool2D(), nn.Dense(5))
net.initialize(mx.init.Xavier())
net.hybridize(static_alloc=True, static_shape=True)
net(mx.nd.zeros((1, 3, 16, 16)))          # shapes, as the trainer's warm-up
on_kv = distributed.update_on_kvstore(worker.kind, worker.kv)
trainer = distributed.make_trainer(worker, net.collect_params(), 'sgd',
                                   {'learning_rate': 0.2, 'momentum': 0.9, 'wd': 1e-3}, on_kv)
step_batch = distributed.step_batch_size(B if worker.is_distributed else 2 * B, 1, worker, on_kv)
if worker.is_distributed:
    distributed.sync_initial_parameters(trainer, worker.kv, step_batch, worker.hvd)
net.save_parameters('%s-start-%d.params' % (out, worker.rank))
rng = np.random.RandomState(1)
X = rng.rand(steps, 2 * B, 3, 16, 16).astype('float32')
Y = rng.randint(0, 5, (steps, 2 * B)).astype('float32')
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
rows = slice(worker.rank * B, (worker.rank + 1) * B) if worker.is_distributed else slice(None)
for s in range(steps):
    x, y = mx.nd.array(X[s, rows]), mx.nd.array(Y[s, rows])
    with autograd.record():
        loss = loss_fn(net(x), y)
    loss.backward()
    trainer.step(step_batch)
net.save_parameters('%s-%d.params' % (out, worker.rank))
'''


def test_two_workers_of_batch_b_equal_one_process_of_batch_2b(tmp_path):
    script = tmp_path / 'job.py'
    script.write_text(EQUIVALENCE_JOB)
    local = subprocess.Popen([sys.executable, str(script), 'local', str(tmp_path / 'local')],
                             cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    dist = subprocess.run([sys.executable, '-m', 'gluon_nets.launch', '-n', '2', '-s', '1',
                           '--timeout', '60', '--', sys.executable, str(script), 'dist',
                           str(tmp_path / 'dist')], capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=180)
    _, local_err = local.communicate(timeout=180)
    assert local.returncode == 0, local_err[-2000:]
    assert dist.returncode == 0, dist.stderr[-3000:]
    single = mx.nd.load(str(tmp_path / 'local-0.params'))
    workers = [mx.nd.load(str(tmp_path / ('dist-%d.params' % r))) for r in range(2)]
    assert sorted(single) == sorted(workers[0]) and len(single) == 6
    starts = [mx.nd.load(str(tmp_path / ('dist-start-%d.params' % r))) for r in range(2)]
    for key in single:
        a = single[key].asnumpy()
        # both workers started from rank 0's weights (rank 1 initialised others)
        np.testing.assert_array_equal(starts[0][key].asnumpy(), starts[1][key].asnumpy())
        for w in workers:   # summing two half-batch gradients rounds differently
            np.testing.assert_allclose(w[key].asnumpy(), a, rtol=1e-4, atol=1e-6, err_msg=key)
        assert np.abs(a - starts[0][key].asnumpy()).max() > 1e-3   # 6 steps moved every tensor


# ---------------------------------------------------------------- Horovod (the extra)
def _horovod():
    """(python, horovodrun) of an environment with the horovod extra: HOROVOD_PYTHON,
    else this interpreter; the tests skip when neither has it."""
    python = os.environ.get('HOROVOD_PYTHON', sys.executable)
    runner = os.path.join(os.path.dirname(python), 'horovodrun')
    probe = subprocess.run([python, '-c', 'import horovod.mxnet'], capture_output=True,
                           text=True, env=ENV, timeout=120)
    if probe.returncode != 0 or not os.path.exists(runner):
        pytest.skip('the horovod extra is not installed (HOROVOD_PYTHON: a python that has it)')
    return python, runner


def _horovodrun(runner, python, *command, timeout=300):
    env = dict(ENV, PYTHONPATH=os.pathsep.join(p for p in (ROOT, ENV.get('PYTHONPATH')) if p))
    return subprocess.run([runner, '--gloo', '-np', '2', '-H', 'localhost:2',
                           '--start-timeout', '120', python] + [str(c) for c in command],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def test_horovod_two_workers_of_batch_b_equal_one_process_of_batch_2b(tmp_path):
    python, runner = _horovod()
    script = tmp_path / 'job.py'
    script.write_text(EQUIVALENCE_JOB)
    local = subprocess.run([sys.executable, str(script), 'local', str(tmp_path / 'local')],
                           cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    assert local.returncode == 0, local.stderr[-2000:]
    hvd = _horovodrun(runner, python, script, 'horovod', tmp_path / 'hvd')
    assert hvd.returncode == 0, hvd.stdout[-3000:] + hvd.stderr[-3000:]
    single = mx.nd.load(str(tmp_path / 'local-0.params'))
    starts = [mx.nd.load(str(tmp_path / ('hvd-start-%d.params' % r))) for r in range(2)]
    workers = [mx.nd.load(str(tmp_path / ('hvd-%d.params' % r))) for r in range(2)]
    for key in single:
        np.testing.assert_array_equal(starts[0][key].asnumpy(), starts[1][key].asnumpy())
        for w in workers:
            np.testing.assert_allclose(w[key].asnumpy(), single[key].asnumpy(), rtol=1e-4,
                                       atol=1e-6, err_msg=key)


def _tiny_job(tmp_path):
    from gluon_nets.data import make_rec
    plugin = tmp_path / 'tiny_models.py'
    plugin.write_text(TINY)
    root = _tree(str(tmp_path / 'tree'), classes=40, per_class=1)
    recs = make_rec.write_shards(root, str(tmp_path / 'rec' / 'train'), shards=2, resize=24,
                                 workers=1)
    return [os.path.join(ROOT, 'train_imagenet.py'), '--threads', '1', '--model', 'tiny_cnn',
            '--import-module', str(plugin), '--num-classes', '40', '--rec-train', ','.join(recs),
            '--rec-val', recs[0], '--input-size', '16', '--batch-size', '4', '--num-epochs', '1',
            '--lr', '0.05', '--save-worker-state', '--no-progress', '-j', '1']


def test_train_imagenet_under_horovod_matches_dist_sync(tmp_path):
    """The same 2-worker run (tiny_cnn with BatchNorm, 1 epoch of 5 steps, each worker
    on its data part) with --horovod and with --kvstore dist_sync: the same weights."""
    python, runner = _horovod()
    train = _tiny_job(tmp_path)
    dist = subprocess.Popen([sys.executable, '-m', 'gluon_nets.launch', '-n', '2', '-s', '1',
                             '--timeout', '300', '--', sys.executable] + train
                            + ['--kvstore', 'dist_sync', '--save-dir', str(tmp_path / 'dist')],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    hvd = _horovodrun(runner, python, *train, '--horovod', '--save-dir', tmp_path / 'hvd')
    _, dist_err = dist.communicate(timeout=300)
    assert hvd.returncode == 0, hvd.stdout[-3000:] + hvd.stderr[-3000:]
    assert dist.returncode == 0, dist_err[-3000:]
    record = json.loads((tmp_path / 'hvd' / 'checkpoint.json').read_text())
    assert [row['epoch'] for row in record['metrics']] == [0] and record['num_update'] == 5
    for rank in range(2):
        ours = mx.nd.load(str(tmp_path / 'hvd' / ('worker-%d.params' % rank)))
        theirs = mx.nd.load(str(tmp_path / 'dist' / ('worker-%d.params' % rank)))
        assert sorted(ours) == sorted(theirs)
        for key in ours:   # BN running statistics too: rank r saw part r in both runs
            np.testing.assert_allclose(ours[key].asnumpy(), theirs[key].asnumpy(), rtol=1e-4,
                                       atol=1e-5, err_msg='rank %d %s' % (rank, key))
    labels = [set(np.load(str(tmp_path / 'hvd' / ('worker-%d-labels.npy' % r))).astype(int))
              for r in range(2)]
    assert len(labels[0]) == len(labels[1]) == 20 and not labels[0] & labels[1]


def test_horovod_flag_errors_are_one_line(tmp_path):
    train = _tiny_job(tmp_path)
    out = subprocess.run([sys.executable] + train + ['--horovod', '--kvstore', 'dist_sync',
                                                      '--save-dir', str(tmp_path / 'a')],
                         capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(
        'error: --horovod and --kvstore dist_sync contradict each other: give one')
    lwdna = subprocess.run([sys.executable, os.path.join(ROOT, 'train_imagenet.py'), '--model',
                            'hh_resnet18', '--lwdna-ratio', '0.5', '--horovod', '--save-dir',
                            str(tmp_path / 'c')],
                           capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert lwdna.returncode == 2 and 'Traceback' not in lwdna.stderr
    assert 'error: --lwdna-ratio under --horovod is not supported' in lwdna.stderr
    has_horovod = subprocess.run([sys.executable, '-c', 'import horovod.mxnet'],
                                 capture_output=True, env=ENV, timeout=120).returncode == 0
    if not has_horovod:   # the extra is missing here: say what to install
        out = subprocess.run([sys.executable] + train + ['--horovod', '--save-dir',
                                                          str(tmp_path / 'b')],
                             capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
        assert out.returncode == 2 and 'Traceback' not in out.stderr
        assert 'error: --horovod needs Horovod built with MXNet support' in (
            out.stderr.strip().splitlines()[-1])


# ---------------------------------------------------------------- LW-DNA under dist
def test_lwdna_search_under_dist_gives_every_worker_rank0s_architecture(tmp_path):
    run = tmp_path / 'run'
    out = subprocess.run(
        [sys.executable, '-m', 'gluon_nets.launch', '-n', '2', '-s', '1', '--timeout', '90', '--',
         sys.executable, os.path.join(ROOT, 'train_imagenet.py'), '--threads', '1',
         '--model', 'hh_resnet18', '--width-mult', '0.25', '--lwdna-ratio', '0.5',
         '--num-epochs', '1', '--max-iters', '2', '--batch-size', '8', '--kvstore', 'dist_sync',
         '--save-dir', str(run), '--save-worker-state', '--no-progress', '-j', '1'],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count('LW-DNA search on hh_resnet18') == 1      # rank 0 only
    for rank in range(2):
        assert 'LW-DNA: worker %d trains the configuration rank 0 searched' % rank in out.stdout
    config = json.loads((run / 'lwdna_config.json').read_text())
    from gluon_nets import get_model
    params = [mx.nd.load(str(run / ('worker-%d.params' % r))) for r in range(2)]
    net = get_model('lwdna_resnet18', classes=10, config=config)
    for rank in range(2):   # both workers trained exactly rank 0's architecture ...
        net.load_parameters(str(run / ('worker-%d.params' % rank)))
    for key in params[0]:   # ... and the same weights (BN running statistics are per worker)
        if not key.endswith(('running_mean', 'running_var')):
            np.testing.assert_allclose(params[0][key].asnumpy(), params[1][key].asnumpy(),
                                       rtol=0, atol=1e-6, err_msg=key)


# ------------------------------------------------- docs/distributed.md on loopback
def _hosts(tmp_path, train, extra=()):
    """Scheduler and server started by hand on "host A", a worker on host A
    (DMLC_NODE_HOST) and one on host B (DMLC_INTERFACE=lo), each with its own save
    directory, as docs/distributed.md says; returns {host: worker's stdout}."""
    port = free_port()
    common = dict(ENV, DMLC_PS_ROOT_URI='127.0.0.1', DMLC_PS_ROOT_PORT=str(port),
                  DMLC_NUM_WORKER='2', DMLC_NUM_SERVER='1', PS_HEARTBEAT_TIMEOUT='60')
    host_a = dict(common, DMLC_NODE_HOST='127.0.0.1')
    host_b = dict(common, DMLC_INTERFACE='lo')
    role = [sys.executable, '-c', 'import mxnet']
    procs = [subprocess.Popen(role, env=dict(host_a, DMLC_ROLE='scheduler'), cwd=ROOT),
             subprocess.Popen(role, env=dict(host_a, DMLC_ROLE='server'), cwd=ROOT)]
    workers = [subprocess.Popen(train + [a.replace('{host}', h) for a in extra]
                                + ['--save-dir', str(tmp_path / ('host%s' % h))],
                                env=dict(env, DMLC_ROLE='worker'), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for h, env in (('A', host_a), ('B', host_b))]
    try:
        outs = [w.communicate(timeout=300) for w in workers]
        for w, (_, err) in zip(workers, outs):
            assert w.returncode == 0, err[-3000:]
        for p in procs:
            p.wait(timeout=60)
    finally:
        for p in procs + workers:
            if p.poll() is None:
                p.kill()
                p.wait()
    return {h: out for h, (out, _) in zip('AB', outs)}


def test_multi_host_recipe_on_loopback_with_separate_save_dirs(tmp_path):
    """The recipe of docs/distributed.md on loopback: two "hosts" with separate save
    directories; then --resume after copying rank 0's run directory to the other
    host (and the clear error without that copy)."""
    import shutil
    from gluon_nets.data import make_rec
    plugin = tmp_path / 'tiny_models.py'
    plugin.write_text(TINY)
    root = _tree(str(tmp_path / 'tree'), classes=40, per_class=1)
    recs = make_rec.write_shards(root, str(tmp_path / 'rec' / 'train'), shards=2, resize=24,
                                 workers=1)
    train = [sys.executable, os.path.join(ROOT, 'train_imagenet.py'), '--threads', '1',
             '--model', 'tiny_cnn', '--import-module', str(plugin), '--num-classes', '40',
             '--rec-train', ','.join(recs), '--rec-val', recs[0], '--input-size', '16',
             '--batch-size', '4', '--kvstore', 'dist_sync', '--lr', '0.05',
             '--save-worker-state', '--no-progress', '-j', '1']
    _hosts(tmp_path, train + ['--num-epochs', '1'])
    # the worker that became rank 0 wrote the run; the other only its worker state
    ranks = {}
    for host in 'AB':
        files = os.listdir(str(tmp_path / ('host' + host)))
        ranks[host] = 0 if 'checkpoint.json' in files else 1
        assert ('worker-%d.params' % ranks[host]) in files
        if ranks[host] == 1:
            assert not [f for f in files if f.endswith(('.json', '.csv')) or f.startswith('epoch')]
    assert sorted(ranks.values()) == [0, 1]
    params = [mx.nd.load(str(tmp_path / ('host' + h) / ('worker-%d.params' % ranks[h])))
              for h in sorted(ranks, key=ranks.get)]
    for key in params[0]:
        if not key.endswith(('running_mean', 'running_var')):
            np.testing.assert_allclose(params[0][key].asnumpy(), params[1][key].asnumpy(),
                                       rtol=0, atol=1e-6, err_msg=key)
    # the docs' disjointness check: the labels each worker saw (label == record here)
    seen = [set(np.load(str(tmp_path / ('host' + h) / ('worker-%d-labels.npy' % ranks[h])))
                .astype(int)) for h in sorted(ranks, key=ranks.get)]
    assert len(seen[0]) == len(seen[1]) == 20 and not seen[0] & seen[1]

    # --resume: without rank 0's run directory on its host, the other worker stops at once
    chief = min(ranks, key=ranks.get)
    other = max(ranks, key=ranks.get)
    alone = subprocess.run(train + ['--resume', str(tmp_path / ('host' + other)),
                                    '--num-epochs', '2'],
                           capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert alone.returncode == 2, alone.stderr[-2000:]
    assert alone.stderr.strip().splitlines()[-1].endswith(
        '--resume %s: no run there (args.json missing)' % (tmp_path / ('host' + other)))
    # ... with it copied there (as the docs say), both continue at epoch 1
    shutil.copytree(str(tmp_path / ('host' + chief)), str(tmp_path / ('host' + other)),
                    dirs_exist_ok=True)
    outs = _hosts(tmp_path, train + ['--num-epochs', '2'],
                  extra=['--resume', str(tmp_path / 'host{host}')])
    for host in 'AB':
        assert 'resumed %s at epoch 1' % (tmp_path / ('host' + host)) in outs[host]
    # rank 0 of this run (either host) wrote epoch 1 after the copied epoch 0
    records = [json.loads((tmp_path / ('host' + h) / 'checkpoint.json').read_text())
               for h in 'AB']
    assert sorted(r['epoch'] for r in records) == [0, 1]
    assert [row['epoch'] for row in max(records, key=lambda r: r['epoch'])['metrics']] == [0, 1]
