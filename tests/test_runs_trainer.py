"""Runs you can trust (issue 15, the trainer's half): a run directory is never destroyed
by accident, trainer states load without pickle, a diverged epoch is never committed,
a kill between the commit steps is repaired by --resume, SIGTERM/SIGINT stop cleanly,
files honour the umask, seeded --deterministic runs are bit-identical, and every
failure is one line naming its file.

Everything trains tests/test_train.py's tiny CNN for 1-2 epochs of 3 batches of 16
images (16 px) from the embedded set. Runs that must be bit-identical go through a
subprocess (``--deterministic`` sets MXNet's engine before MXNet loads); the others
run in-process. Kills between commit steps use GLUON_NETS_FAULT: once for real
(``os._exit`` in a subprocess), otherwise in-process with ``os._exit`` replaced by an
exception that nothing in the trainer catches.
"""
import csv
import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import pytest

mx = pytest.importorskip('mxnet')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'train_imagenet.py')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train import TINY  # noqa: E402  the tiny CNN plugin file's text

from gluon_nets.training import checkpoint  # noqa: E402
from gluon_nets.training.checkpoint import (FAULT_EXIT_STATUS, FAULT_STEPS,  # noqa: E402
                                            TIMING_FIELDS, states_file_kind)


@pytest.fixture(scope='module')
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp('plugin') / 'tiny_models.py'
    path.write_text(TINY)
    return str(path)


def _args(plugin, save_dir, *extra, epochs=1):
    return ['--model', 'tiny_cnn', '--import-module', plugin, '--save-dir', str(save_dir),
            '--batch-size', '16', '--input-size', '16', '-j', '1', '--no-progress',
            '--log-interval', '0', '--max-iters', '3', '--seed', '5',
            '--num-epochs', str(epochs)] + list(extra)


def _cli(args, env=None, timeout=180):
    full_env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run([sys.executable, TRAIN, '--threads', '1'] + args, capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=ROOT)


def _main(args):
    from gluon_nets.training import main
    return main(['--threads', '1'] + list(args))


def _rows(run, timing=False):
    with open(str(run / 'metrics.csv')) as f:
        rows = list(csv.DictReader(f))
    return rows if timing else [{k: v for k, v in r.items() if k not in TIMING_FIELDS}
                                for r in rows]


def _record(run):
    return json.load(open(str(run / 'checkpoint.json')))


def _bytes(path):
    with open(str(path), 'rb') as f:
        return f.read()


def _snapshot(run):
    """{name: (bytes, mtime_ns)} of every file in ``run``."""
    return {n: (_bytes(run / n), os.stat(str(run / n)).st_mtime_ns) for n in sorted(os.listdir(str(run)))}


def _one_error_line(stderr, *needles):
    lines = [l for l in stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith('train_imagenet.py: error: ')]
    assert len(errors) == 1 and 'Traceback' not in stderr, stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _assert_consistent(run, epochs):
    """The committed run in ``run`` is whole: every commit step is done."""
    record = _record(run)
    assert record['epoch'] == epochs - 1
    assert [int(r['epoch']) for r in _rows(run)] == list(range(epochs))
    assert _bytes(run / 'metrics.csv') == checkpoint._metrics_text(record['metrics']).encode()
    assert _bytes(run / 'last.params') == _bytes(run / record['params'])
    best = json.load(open(str(run / 'best.json')))
    tops = [float(r['val_top1']) for r in _rows(run)]
    assert best['epoch'] == record['best_epoch'] == tops.index(max(tops))
    if best['epoch'] == record['epoch']:
        assert _bytes(run / 'best.params') == _bytes(run / record['params'])
    assert sorted(n for n in os.listdir(str(run)) if n.startswith(('epoch-', '.tmp-'))) == \
        [record['params'], record['states']]
    assert states_file_kind(str(run / record['states'])) == 'ndarray'


# --------------------------------------------------------- deterministic (subprocess) runs
@pytest.fixture(scope='module')
def deterministic_runs(plugin, tmp_path_factory):
    """Two identical 2-epoch --deterministic runs and a 1-epoch one (to resume)."""
    root = tmp_path_factory.mktemp('det')
    procs = {name: subprocess.Popen(
        [sys.executable, TRAIN, '--threads', '1'] + _args(plugin, root / name, '--deterministic',
                                                          epochs=epochs),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
        for name, epochs in (('a', 2), ('b', 2), ('half', 1))}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    return root


def test_seeded_deterministic_runs_are_bit_identical(deterministic_runs):
    a, b = deterministic_runs / 'a', deterministic_runs / 'b'
    assert _rows(a) == _rows(b) and len(_rows(a)) == 2
    for name in ('last.params', 'best.params', 'epoch-0001.params', 'epoch-0001.states'):
        assert _bytes(a / name) == _bytes(b / name), name


def test_resume_continues_bit_identically_from_states_without_pickle(deterministic_runs):
    run = deterministic_runs / 'resumed'
    shutil.copytree(str(deterministic_runs / 'half'), str(run))
    states = run / _record(run)['states']
    assert states_file_kind(str(states)) == 'ndarray'
    result = _cli(['--resume', str(run), '--num-epochs', '2'])   # --deterministic was saved
    assert result.returncode == 0, result.stderr
    reference = deterministic_runs / 'a'
    assert _rows(run) == _rows(reference)
    assert _bytes(run / 'last.params') == _bytes(reference / 'last.params')
    assert _bytes(run / 'epoch-0001.states') == _bytes(reference / 'epoch-0001.states')
    assert _record(run)['num_update'] == 6


def test_a_real_kill_after_the_commit_is_repaired(deterministic_runs):
    """GLUON_NETS_FAULT=commit@1: the process dies right after checkpoint.json of the
    final epoch; --resume (which has nothing left to train) finishes the commit."""
    run = deterministic_runs / 'killed'
    shutil.copytree(str(deterministic_runs / 'half'), str(run))
    result = _cli(['--resume', str(run), '--num-epochs', '2'],
                  env={'GLUON_NETS_FAULT': 'commit@1'})
    assert result.returncode == FAULT_EXIT_STATUS, result.stderr
    assert _record(run)['epoch'] == 1
    assert _bytes(run / 'last.params') != _bytes(run / 'epoch-0001.params')   # stale
    assert len(_rows(run)) == 1                                                 # row missing
    assert os.path.exists(str(run / 'epoch-0000.params'))
    result = _cli(['--resume', str(run), '--num-epochs', '2'])
    assert result.returncode == 0, result.stderr
    assert 'repaired last.params' in result.stdout
    _assert_consistent(run, 2)
    reference = deterministic_runs / 'a'
    assert _rows(run) == _rows(reference)
    for name in ('last.params', 'best.params', 'best.json'):
        assert _bytes(run / name) == _bytes(reference / name), name


# ------------------------------------------------------------- in-process fault injection
class _Killed(BaseException):
    """Stands for the os._exit of GLUON_NETS_FAULT (nothing in the trainer catches it)."""


@pytest.fixture(scope='module')
def one_epoch(plugin, tmp_path_factory):
    run = tmp_path_factory.mktemp('one') / 'run'
    assert _main(_args(plugin, run)) == 0
    return run


@pytest.mark.parametrize('step', FAULT_STEPS)
def test_a_kill_at_each_commit_step_is_repaired_by_resume(one_epoch, tmp_path, monkeypatch, step):
    run = tmp_path / 'run'
    shutil.copytree(str(one_epoch), str(run))
    before = {n: _bytes(run / n) for n in ('checkpoint.json', 'epoch-0000.params',
                                           'epoch-0000.states', 'best.params')}

    def killed(status):
        raise _Killed(status)
    monkeypatch.setenv('GLUON_NETS_FAULT', '%s@1' % step)
    monkeypatch.setattr(checkpoint.os, '_exit', killed)
    with pytest.raises(_Killed):
        _main(['--resume', str(run), '--num-epochs', '2'])
    monkeypatch.delenv('GLUON_NETS_FAULT')
    committed = FAULT_STEPS.index(step) >= FAULT_STEPS.index('commit')
    assert _record(run)['epoch'] == (1 if committed else 0)
    if not committed:   # the previous checkpoint is whole
        for name, data in before.items():
            assert _bytes(run / name) == data, name
    assert _main(['--resume', str(run), '--num-epochs', '2']) == 0
    _assert_consistent(run, 2)


def _two_conv_net():
    """Children made outside a name scope get process-wide names (``conv9_``): the
    same net built later in a process has other names, in another sorted order."""
    class TwoConv(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            self.first = mx.gluon.nn.Conv2D(4, 3, in_channels=3)
            self.second = mx.gluon.nn.Conv2D(8, 1, in_channels=4)

        def hybrid_forward(self, F, x):
            return self.second(self.first(x))
    net = TwoConv()
    net.initialize(mx.init.Xavier())
    return net


def test_trainer_states_follow_structural_names_not_process_counters(tmp_path):
    from mxnet import autograd
    mx.random.seed(3)
    net = _two_conv_net()
    trainer = mx.gluon.Trainer(net.collect_params(), 'sgd', {'momentum': 0.9})
    with autograd.record():
        loss = net(mx.nd.ones((2, 3, 6, 6))).sum()
    loss.backward()
    trainer.step(2)
    path = str(tmp_path / 'epoch-0000.states')
    checkpoint.save_trainer_states(trainer, path, net)
    momentum = {name: trainer._updaters[0].states[trainer._params.index(param)].asnumpy()
                for name, param in net._collect_params_with_prefix().items()}
    for _ in range(7):          # move the process-wide conv counter past a decade
        mx.gluon.nn.Conv2D(1, 1)
    again = _two_conv_net()
    assert [p.name for p in again.collect_params().values()] != \
        [p.name for p in net.collect_params().values()]
    fresh = mx.gluon.Trainer(again.collect_params(), 'sgd', {'momentum': 0.9})
    checkpoint.load_trainer_states(fresh, path, net=again)
    for name, param in again._collect_params_with_prefix().items():
        state = fresh._updaters[0].states[fresh._params.index(param)]
        assert (state.asnumpy() == momentum[name]).all(), name


# ------------------------------------------------------------------------- the save dir
def test_a_save_dir_holding_a_run_is_refused_untouched_unless_overwrite(plugin, one_epoch,
                                                                        tmp_path, capsys):
    run = tmp_path / 'run'
    shutil.copytree(str(one_epoch), str(run))
    (run / 'notes.txt').write_text('mine')
    (run / 'my-table.csv').write_text('a,b\n')      # a user's own files beside the run
    (run / 'figure.png').write_bytes(b'png')
    before = _snapshot(run)
    capsys.readouterr()
    assert _main(_args(plugin, run, epochs=2)) == 2
    _one_error_line(capsys.readouterr().err, str(run), 'holds a run', '--resume', '--overwrite')
    assert _snapshot(run) == before
    assert _main(_args(plugin, run, '--resume', str(run), '--overwrite')) == 2
    assert 'contradict' in capsys.readouterr().err
    assert _snapshot(run) == before
    assert _main(_args(plugin, run, '--overwrite', '--lr', '0.05', epochs=2)) == 0
    assert json.load(open(str(run / 'args.json')))['lr'] == 0.05
    assert [int(r['epoch']) for r in _rows(run)] == [0, 1]
    assert (run / 'notes.txt').read_text() == 'mine' and not (run / 'epoch-0000.params').exists()
    assert (run / 'my-table.csv').read_text() == 'a,b\n' and _bytes(run / 'figure.png') == b'png'


@pytest.mark.parametrize('layout', ['file', 'under_file'])
def test_a_save_dir_that_is_a_file_is_refused_before_any_work(plugin, tmp_path, capsys, layout):
    blocker = tmp_path / 'blocker'
    blocker.write_text('x')
    target = blocker if layout == 'file' else blocker / 'run'
    assert _main(_args(plugin, target)) == 2
    _one_error_line(capsys.readouterr().err, '--save-dir', str(blocker), 'is a file')
    assert blocker.read_text() == 'x'


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_an_unwritable_save_dir_is_refused(plugin, tmp_path, capsys):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert _main(_args(plugin, locked / 'run')) == 2
        _one_error_line(capsys.readouterr().err, 'not writable')
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize('mask', [0o022, 0o077])
def test_files_honour_the_umask(plugin, tmp_path, mask):
    run = tmp_path / 'run'
    old = os.umask(mask)
    try:
        assert _main(_args(plugin, run, '--save-frequency', '1')) == 0
    finally:
        os.umask(old)
    assert os.stat(str(run)).st_mode & 0o777 == 0o777 & ~mask
    modes = {n: os.stat(str(run / n)).st_mode & 0o777 for n in os.listdir(str(run))}
    assert {'checkpoint.json', 'epoch-0000.states', 'last.params', 'best.params', 'metrics.csv',
            'curves.png', 'train_imagenet.log', 'tiny_cnn-0.params'} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o666 & ~mask)


# --------------------------------------------------------------------------- divergence
def test_a_diverged_epoch_is_never_committed_and_resume_takes_a_lower_lr(plugin, tmp_path,
                                                                         monkeypatch, capsys):
    """Epoch 1's validation loss is NaN (with a top-1 that would be the best): the run
    stops before its commit; --resume with a lower --lr and another --lr-mode goes on
    and records the change."""
    from gluon_nets.training import trainer
    run = tmp_path / 'run'
    real = trainer.evaluate
    calls = []

    def diverged(*args, **kwargs):
        calls.append(1)
        loss, top1, top5 = real(*args, **kwargs)
        return (float('nan'), 0.99, 0.99) if len(calls) == 2 else (loss, top1, top5)
    monkeypatch.setattr(trainer, 'evaluate', diverged)
    assert _main(_args(plugin, run, epochs=3)) == 2
    _one_error_line(capsys.readouterr().err, 'validation loss is nan after epoch 1',
                    'last good checkpoint (epoch 0)', '--resume %s' % run)
    assert _record(run)['epoch'] == 0 and len(_rows(run)) == 1
    assert json.load(open(str(run / 'best.json')))['epoch'] == 0
    assert _bytes(run / 'last.params') == _bytes(run / 'epoch-0000.params')
    assert not (run / 'epoch-0001.params').exists()
    monkeypatch.setattr(trainer, 'evaluate', real)
    assert _main(['--resume', str(run), '--lr', '0.01', '--lr-mode', 'constant', '--wd', '0']) == 0
    rows = _rows(run)
    assert [int(r['epoch']) for r in rows] == [0, 1, 2]
    assert [float(r['lr']) for r in rows] == [0.1, 0.01, 0.01]
    change = {'from_epoch': 1, 'changed': {'--lr': {'was': 0.1, 'now': 0.01},
                                           '--lr-mode': {'was': 'step', 'now': 'constant'},
                                           '--wd': {'was': 0.0001, 'now': 0}}}
    assert json.load(open(str(run / 'args.json')))['history'] == [change]
    assert _record(run)['history'] == [change]
    assert json.load(open(str(run / 'args.json')))['lr'] == 0.01


def test_a_nan_training_loss_stops_before_any_commit(plugin, tmp_path, capsys):
    """A 1e30 warm-up target: the first update blows the weights up, the second
    batches then have a NaN loss; nothing is committed."""
    run = tmp_path / 'run'
    code = _main(_args(plugin, run, '--warmup-epochs', '1', '--lr', '1e30', epochs=2))
    assert code == 2
    _one_error_line(capsys.readouterr().err, 'loss is nan at epoch 0, iteration',
                    'none, no epoch completed', '--resume %s' % run)
    assert not any(n.endswith(('.params', '.states')) or n in ('checkpoint.json', 'best.json')
                   for n in os.listdir(str(run)))


def test_the_last_step_of_an_epoch_diverging_is_not_committed(plugin, tmp_path, capsys):
    """GluonCV's step schedule gives an epoch's last update the next epoch's rate: with
    a 1e30 decay at epoch 1, epoch 0 ends diverged with a finite training loss (the
    issue's case of a NaN epoch committed as last and best)."""
    run = tmp_path / 'run'
    code = _main(_args(plugin, run, '--lr-decay-epoch', '1', '--lr-decay', '1e30', epochs=3))
    assert code == 2
    line = _one_error_line(capsys.readouterr().err, 'after epoch 0', 'stopped before its checkpoint')
    assert 'validation loss is nan' in line or 'validation loss is inf' in line
    assert not (run / 'checkpoint.json').exists() and not (run / 'best.params').exists()


# ---------------------------------------------------------------------------- signals
@pytest.mark.parametrize('signum, status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_stop_cleanly(plugin, tmp_path, signum, status):
    run = tmp_path / 'run'
    args = _args(plugin, run, epochs=50)
    proc = subprocess.Popen([sys.executable, TRAIN, '--threads', '1'] + args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.time() + 150
    while time.time() < deadline and proc.poll() is None and not (run / 'checkpoint.json').exists():
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and 'Traceback' not in err, err
    assert lines[0].startswith('train_imagenet.py: stopped by %s; the last complete checkpoint '
                               '(epoch ' % signal.Signals(signum).name), err
    assert 'continue with --resume %s' % run in lines[0]
    record = _record(run)
    assert _bytes(run / 'last.params') == _bytes(run / record['params'])
    assert len(_rows(run)) == record['epoch'] + 1


# ------------------------------------------------------------------ one-line failures
FULL_DISK = '''
import errno, os, runpy, sys
real_replace = os.replace


def replace(src, dst, *args, **kwargs):
    if os.path.basename(dst) == 'epoch-0001.params':   # the disk fills up during epoch 1's commit
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
    return real_replace(src, dst, *args, **kwargs)


os.replace = replace
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(plugin, tmp_path):
    wrapper = tmp_path / 'full_disk.py'
    wrapper.write_text(FULL_DISK)
    run = tmp_path / 'run'
    result = subprocess.run([sys.executable, str(wrapper), TRAIN, '--threads', '1']
                            + _args(plugin, run, epochs=2), capture_output=True, text=True,
                            cwd=ROOT, timeout=180, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 2, result.stderr
    _one_error_line(result.stderr, 'no space left on the device writing',
                    str(run / 'epoch-0001.params'), 'last complete checkpoint (epoch 0)',
                    'is intact')
    _assert_consistent(run, 1)


def _pickled_payload(marker):
    class Payload:
        def __reduce__(self):
            return (os.system, ('touch %s' % marker,))
    return pickle.dumps(Payload(), protocol=2)


def _legit_pickled_states(path):
    """MXNet's own (pickled) Trainer.save_states for the tiny CNN on 10 classes."""
    from gluon_nets import get_model
    net = get_model('tiny_cnn', classes=10)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 16, 16)))
    trainer = mx.gluon.Trainer(net.collect_params(), 'nag', {'momentum': 0.9})
    with mx.autograd.record():
        loss = net(mx.nd.ones((2, 3, 16, 16))).sum()
    loss.backward()
    trainer.step(2)
    trainer.save_states(str(path))


def test_pickled_states_are_refused_unless_trusted(plugin, one_epoch, tmp_path, capsys):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.states'
    evil.write_bytes(_pickled_payload(marker))
    # given to --resume-states
    assert _main(_args(plugin, tmp_path / 'a', '--resume-states', str(evil))) == 2
    _one_error_line(capsys.readouterr().err, str(evil), 'pickled', '--trust-checkpoint')
    # found in a --resume dir
    run = tmp_path / 'run'
    shutil.copytree(str(one_epoch), str(run))
    shutil.copyfile(str(evil), str(run / 'epoch-0000.states'))
    assert _main(['--resume', str(run), '--num-epochs', '2']) == 2
    _one_error_line(capsys.readouterr().err, str(run / 'epoch-0000.states'), 'pickled')
    assert not marker.exists() and _record(run)['epoch'] == 0
    # MXNet's own pickled states of a file you made: with --trust-checkpoint, a warning
    legit = tmp_path / 'legit.states'
    _legit_pickled_states(legit)
    capsys.readouterr()
    assert _main(_args(plugin, tmp_path / 'b', '--resume-states', str(legit),
                       '--trust-checkpoint')) == 0
    assert '--trust-checkpoint: unpickling %s' % legit in capsys.readouterr().out


def test_no_pickle_load_in_the_trainer():
    for name in ('checkpoint.py', 'options.py', 'cli.py', 'session.py', 'trainer.py'):
        text = open(os.path.join(ROOT, 'gluon_nets', 'training', name)).read()
        assert 'pickle.load' not in text and 'allow_pickle=True' not in text, name
        assert 'trainer.load_states(' not in text or name == 'checkpoint.py', name


def _foreign_params(path):
    net = mx.gluon.nn.Dense(3, in_units=4)
    net.initialize()
    net.save_parameters(str(path))


@pytest.mark.parametrize('case', ['params_missing', 'params_truncated', 'params_foreign',
                                  'states_truncated', 'states_foreign', 'states_empty'])
def test_bad_resume_params_or_states_give_one_line_errors(plugin, one_epoch, tmp_path, capsys,
                                                          case):
    kind, problem = case.split('_')
    bad = tmp_path / ('bad.' + kind)
    if problem == 'truncated':
        bad.write_bytes(_bytes(one_epoch / ('epoch-0000.' + kind))[:100])
    elif problem == 'foreign' and kind == 'params':
        _foreign_params(bad)
    elif problem == 'foreign':
        bad.write_bytes(_bytes(one_epoch / 'epoch-0000.params'))   # params given as states
    elif problem == 'empty':
        bad.write_bytes(b'')
    assert _main(_args(plugin, tmp_path / 'run', '--resume-%s' % kind, str(bad))) == 2
    message = {'missing': 'no such file', 'truncated': 'truncated', 'empty': 'empty',
               'foreign': 'does not fit this model' if kind == 'params' else 'not a trainer-states'}
    _one_error_line(capsys.readouterr().err, '--resume-%s %s' % (kind, bad), message[problem])


@pytest.mark.parametrize('case', ['epoch_params_truncated', 'epoch_params_foreign',
                                  'args_corrupt', 'checkpoint_corrupt', 'args_missing'])
def test_a_damaged_resume_dir_gives_one_line_errors(one_epoch, tmp_path, capsys, case):
    run = tmp_path / 'run'
    shutil.copytree(str(one_epoch), str(run))
    target = {'epoch_params_truncated': 'epoch-0000.params', 'epoch_params_foreign':
              'epoch-0000.params', 'args_corrupt': 'args.json', 'args_missing': 'args.json',
              'checkpoint_corrupt': 'checkpoint.json'}[case]
    path = run / target
    if case == 'epoch_params_truncated':
        path.write_bytes(_bytes(path)[:200])
    elif case == 'epoch_params_foreign':
        os.remove(str(path))
        _foreign_params(path)
    elif case == 'args_missing':
        os.remove(str(path))
    else:
        path.write_text('{"epoch": 0,')
    before = _snapshot(run)
    assert _main(['--resume', str(run), '--num-epochs', '2']) == 2
    needle = {'epoch_params_truncated': 'is truncated or not an MXNet parameter file',
              'epoch_params_foreign': 'does not fit this model',
              'args_missing': 'no run there (args.json missing)'}.get(case, 'is corrupt')
    _one_error_line(capsys.readouterr().err, str(run if case == 'args_missing' else path), needle)
    after = _snapshot(run)
    for name in before:   # nothing of the run was rewritten
        if name != 'train_imagenet.log':
            assert after[name][0] == before[name][0], name


def test_debug_raises_instead_of_the_one_line_error(plugin, tmp_path):
    blocker = tmp_path / 'blocker'
    blocker.write_text('x')
    with pytest.raises(checkpoint.CheckpointError, match='is a file'):
        _main(_args(plugin, blocker, '--debug'))


def test_the_full_disk_error_message_for_mxnet_write_failures(tmp_path):
    """MXNet reports a failed write as MXNetError: RunDir turns it into an OSError."""
    err = checkpoint._write_error(str(tmp_path / 'x.params'), mx.base.MXNetError(
        'Traceback (most recent call last):\n  File "x"\n[bt] (0) lib\nCheck failed: fo->Write'))
    assert isinstance(err, OSError) and err.filename.endswith('x.params')
    assert err.errno in (errno.EIO, errno.ENOSPC) and 'Check failed' in err.strerror
    assert '[bt]' not in err.strerror


# ------------------------------------------------------- hostile cases found on review
@pytest.mark.parametrize('case, edit, needle', [
    ('args_batch_size_text', {'batch_size': 'x'}, "batch_size (--batch-size) is 'x'"),
    ('args_lr_mode_unknown', {'lr_mode': 'zzz'}, "lr_mode (--lr-mode) is 'zzz', not one of"),
    ('args_decay_epoch_number', {'lr_decay_epoch': 5}, 'lr_decay_epoch (--lr-decay-epoch) is 5'),
    ('args_model_number', {'model': 5}, 'model (--model) is 5'),
    ('args_import_module_text', {'import_module': 'abc'}, "import_module is 'abc'"),
    ('checkpoint_copy_outside', {'copies': ['../outside.params']}, "'../outside.params'"),
    ('checkpoint_params_elsewhere', {'params': '/etc/hostname.params'}, 'not a run file name'),
    ('checkpoint_params_not_epoch', {'params': 'best.params'}, 'are not epoch files'),
    ('checkpoint_metrics_rows', {'metrics': [1, 2]}, 'bad metrics rows'),
])
def test_a_resume_dir_with_wrongly_typed_values_is_one_line_naming_file_and_flag(
        one_epoch, tmp_path, capsys, case, edit, needle):
    """A hand-edited or foreign args.json/checkpoint.json: never an internal error, and a
    crafted record never makes --resume read or write files outside the run directory."""
    run = tmp_path / 'run'
    shutil.copytree(str(one_epoch), str(run))
    path = run / ('args.json' if case.startswith('args') else 'checkpoint.json')
    saved = json.load(open(str(path)))
    saved.update(edit)
    path.write_text(json.dumps(saved))
    before = _snapshot(run)
    capsys.readouterr()
    assert _main(['--resume', str(run), '--num-epochs', '2']) == 2
    _one_error_line(capsys.readouterr().err, str(path), needle)
    assert not (tmp_path / 'outside.params').exists()
    after = _snapshot(run)
    assert {n: v[0] for n, v in after.items() if n != 'train_imagenet.log'} == \
        {n: v[0] for n, v in before.items() if n != 'train_imagenet.log'}


def test_a_resume_that_diverges_again_leaves_args_json_as_it_was(one_epoch, tmp_path, capsys):
    """--resume --lr X writes X to args.json only with the first epoch it commits: after a
    failed attempt a plain --resume trains with the run's own --lr, not the failed one."""
    run = tmp_path / 'run'
    shutil.copytree(str(one_epoch), str(run))
    saved = _bytes(run / 'args.json')
    assert _main(['--resume', str(run), '--num-epochs', '2', '--lr', '1e30']) == 2
    _one_error_line(capsys.readouterr().err, 'at epoch 1', '--lr')
    assert _bytes(run / 'args.json') == saved and _record(run)['epoch'] == 0
    assert _main(['--resume', str(run), '--num-epochs', '2', '--lr', '0.05']) == 0
    args = json.load(open(str(run / 'args.json')))
    assert args['lr'] == 0.05
    assert args['history'] == [{'from_epoch': 1, 'changed': {'--lr': {'was': 0.1, 'now': 0.05}}}]


def test_a_signal_while_the_families_import_is_a_clean_stop(plugin, tmp_path, capsys):
    """SIGINT/SIGTERM during start-up (imports take seconds) stop with the one line and
    128 + signal, not a KeyboardInterrupt traceback or a silent death."""
    module = tmp_path / 'signals_on_import.py'
    module.write_text('import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n')
    previous = signal.getsignal(signal.SIGINT)
    assert _main(_args(plugin, tmp_path / 'run', '--import-module', str(module))) == 130
    err = capsys.readouterr().err
    assert 'stopped by SIGINT before the run directory was set up' in err and 'Traceback' not in err
    assert signal.getsignal(signal.SIGINT) is previous and not (tmp_path / 'run').exists()


def test_a_forked_data_worker_dies_of_the_signal_silently(capfd):
    """DataLoader workers fork with the trainer's handlers; their pool ends them with
    SIGTERM after every run: that must not print an Interrupted traceback."""
    from gluon_nets.training.trainer import _STOP_SIGNALS
    _STOP_SIGNALS.install()
    try:
        pid = os.fork()
        if pid == 0:   # the "worker"
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                os._exit(7)
        _, status = os.waitpid(pid, 0)
    finally:
        _STOP_SIGNALS.uninstall()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert 'Interrupted' not in capfd.readouterr().err


def test_a_failed_atomic_write_names_the_file_and_leaves_nothing(tmp_path):
    """A full disk inside any atomic write (args.json, model.json, eval's --json) is
    reported with the file's own name, not '' or the temporary's."""
    from gluon_nets.utils.atomic import atomic_path
    target = tmp_path / 'model.json'
    with pytest.raises(OSError) as err:
        with atomic_path(str(target)):
            raise OSError(errno.ENOSPC, 'No space left on device')   # as f.write raises it
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert os.listdir(str(tmp_path)) == []


def test_the_run_log_on_a_full_disk_prints_no_logging_traceback(tmp_path, capsys):
    import logging
    from gluon_nets.training.trainer import _QuietFileHandler

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, 'No space left on device')

        def flush(self):
            pass
    handler = _QuietFileHandler(str(tmp_path / 'train.log'))
    handler.stream.close()
    handler.stream = FullDisk()
    handler.emit(logging.LogRecord('x', logging.INFO, __file__, 1, 'data: %d images', (3,), None))
    assert capsys.readouterr().err == ''


def test_an_input_too_small_for_the_net_is_a_flag_error_not_an_internal_one(plugin, tmp_path,
                                                                            capsys):
    """The zoo's OctConv ResNet-26 cannot run on 4 px (a pooling window exceeds its
    feature map): one line naming --input-size, exit 2, before any epoch."""
    assert _main(['--model', 'oct_resnet26_v1b', '--save-dir', str(tmp_path / 'run'),
                  '--input-size', '4', '--batch-size', '16', '--max-iters', '1', '-j', '0',
                  '--no-progress', '--num-epochs', '1']) == 2
    _one_error_line(capsys.readouterr().err, '--input-size 4: oct_resnet26_v1b cannot run on '
                    '4-px inputs', 'at least 32 px')
    assert not (tmp_path / 'run' / 'checkpoint.json').exists()
