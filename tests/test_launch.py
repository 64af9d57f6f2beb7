"""gluon_nets.launch: real ps-lite jobs (scheduler + servers + workers) on loopback.

Every job here is tiny (16 px, a few iterations) so that a run costs seconds; the
dist_sync agreement test repeats the job to catch the (fixed) start-up race.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

mx = pytest.importorskip('mxnet')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train import TINY  # noqa: E402
from test_data import _tree  # noqa: E402

#: 2-worker dist_sync jobs of the agreement test, run at the same time (each costs ~9 s
#: of CPU: 4 processes importing MXNet, 5-10 iterations)
AGREEMENT_RUNS = 5
# heartbeats on, but every second: a node's shutdown waits for its heartbeat thread,
# which costs seconds per job at the launcher's default of 5 s
ENV = dict(os.environ, OMP_NUM_THREADS='1', PS_HEARTBEAT_INTERVAL='1')
ENV.pop('PS_HEARTBEAT_TIMEOUT', None)   # the launcher's default applies


@pytest.fixture(scope='module')
def job_data(tmp_path_factory):
    """40 one-image classes (label == record) in 2 shards, and the tiny_cnn plugin."""
    from gluon_nets.data import make_rec
    tmp = tmp_path_factory.mktemp('launch')
    plugin = tmp / 'tiny_models.py'
    plugin.write_text(TINY)
    root = _tree(str(tmp / 'tree'), classes=40, per_class=1)
    recs = make_rec.write_shards(root, str(tmp / 'rec' / 'train'), shards=2, resize=24, workers=1)
    return str(plugin), recs


def _train_cmd(plugin, recs, run, *extra, kvstore='dist_sync', epochs=2, workers=2):
    return [sys.executable, '-m', 'gluon_nets.launch', '-n', str(workers), '-s', '1',
            '--timeout', '240', '--time-limit', '480', '--',
            sys.executable, os.path.join(ROOT, 'train_imagenet.py'), '--threads', '1',
            '--model', 'tiny_cnn', '--import-module', plugin, '--num-classes', '40',
            '--rec-train', ','.join(recs), '--rec-val', recs[0], '--input-size', '16',
            '--batch-size', '4', '--num-epochs', str(epochs), '--kvstore', kvstore, '--lr', '0.05',
            '--save-dir', str(run), '--save-worker-state', '--no-progress', '-j', '1'] + list(extra)


def _run(cmd, timeout=600):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=ENV)


def _check_workers_agree(run):
    """Both workers hold the same trainable parameters: non-conv ones bit for bit,
    conv weights to float tolerance (rank 0 saves checkpoints, which reorders its
    oneDNN weight layout, and the update may then round differently in the last bit)."""
    params = [mx.nd.load(str(run / ('worker-%d.params' % r))) for r in range(2)]
    trainable = [k for k in params[0] if not k.endswith(('running_mean', 'running_var'))]
    assert len(trainable) == 10  # 3 conv/dense weights + biases, 2 BN gamma + beta
    conv_weights = {'0.weight', '4.weight'}
    for key in trainable:
        a, b = params[0][key].asnumpy(), params[1][key].asnumpy()
        if key in conv_weights:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)
    return params


@pytest.fixture(scope='module')
def sync_runs(job_data, tmp_path_factory):
    """AGREEMENT_RUNS 2-worker dist_sync jobs, run at the same time (cheaper, and the
    load makes the (fixed) race of the first step likelier): run 0 trains 2 epochs
    (for the data-part checks), the others 1 epoch of 5 iterations (the race struck in
    the first step). Returns [(run dir, completed job)]."""
    plugin, recs = job_data
    tmp = tmp_path_factory.mktemp('sync')
    runs = [tmp / ('run%d' % attempt) for attempt in range(AGREEMENT_RUNS)]
    jobs = [subprocess.Popen(_train_cmd(plugin, recs, run, epochs=2 if i == 0 else 1),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=ENV) for i, run in enumerate(runs)]
    outputs = [job.communicate(timeout=600) for job in jobs]
    return [(run, job.returncode, out, err) for run, job, (out, err) in zip(runs, jobs, outputs)]


def test_dist_sync_workers_agree_every_time_and_read_disjoint_parts(sync_runs):
    for run, code, _, stderr in sync_runs:
        assert code == 0, stderr[-3000:]
        params = _check_workers_agree(run)
        last = mx.nd.load(str(run / 'last.params'))   # rank 0 checkpointed what it trained
        for key in params[0]:
            if not key.endswith(('running_mean', 'running_var')):
                np.testing.assert_array_equal(params[0][key].asnumpy(), last[key].asnumpy())
    run, _, stdout, _ = sync_runs[0]
    assert stdout.count('part 1/2') == 1 and stdout.count('part 2/2') == 1
    labels = [np.load(str(run / ('worker-%d-labels.npy' % r))).astype(int) for r in range(2)]
    per_epoch = [lab.reshape(2, -1) for lab in labels]
    for epoch in range(2):
        a, b = set(per_epoch[0][epoch]), set(per_epoch[1][epoch])
        assert len(a) == len(b) == 20 and not a & b      # disjoint halves, no repeats
    assert set(per_epoch[0][0]) == set(per_epoch[0][1])  # each worker keeps its part


def test_dist_sync_resume_through_the_launcher_continues(job_data, sync_runs, tmp_path):
    import shutil
    plugin, recs = job_data
    done, code, _, stderr = sync_runs[1]     # a finished 1-epoch run (copied: left intact)
    assert code == 0, stderr[-3000:]
    run = tmp_path / 'run'
    shutil.copytree(str(done), str(run))
    resumed = _run(_train_cmd(plugin, recs, run, '--resume', str(run), epochs=3))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count('resumed %s at epoch 1' % run) == 2   # both workers
    record = json.loads((run / 'checkpoint.json').read_text())
    assert record['epoch'] == 2
    assert [row['epoch'] for row in record['metrics']] == [0, 1, 2]   # no gap, no repeat
    assert record['num_update'] == 3 * 5      # 5 iterations (20 images / 4) per epoch
    _check_workers_agree(run)


def test_dist_device_sync_and_dist_async_train(job_data, tmp_path):
    plugin, recs = job_data
    kinds = ('dist_device_sync', 'dist_async')
    jobs = [subprocess.Popen(_train_cmd(plugin, recs, tmp_path / kind, kvstore=kind, epochs=1),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=ENV) for kind in kinds]
    for kind, job in zip(kinds, jobs):
        _, stderr = job.communicate(timeout=600)
        assert job.returncode == 0, kind + ': ' + stderr[-3000:]
        run = tmp_path / kind
        record = json.loads((run / 'checkpoint.json').read_text())
        assert [row['epoch'] for row in record['metrics']] == [0]
        assert np.isfinite(record['metrics'][0]['train_loss'])
        if kind == 'dist_device_sync':
            _check_workers_agree(run)
        else:   # the server updated; both workers pulled finite weights
            params = [mx.nd.load(str(run / ('worker-%d.params' % r))) for r in range(2)]
            assert all(np.isfinite(p[k].asnumpy()).all() for p in params for k in p)


def _job_script(tmp_path, body):
    path = tmp_path / 'job.py'
    path.write_text('import os, sys, time, signal\n'
                    'if os.environ.get("DMLC_ROLE") == "worker":\n'
                    '    import mxnet as mx\n'
                    '    kv = mx.kv.create("dist_sync")\n' + body)
    return str(path)


def _launch(*args, timeout=300):
    return _run([sys.executable, '-m', 'gluon_nets.launch'] + [str(a) for a in args],
                timeout=timeout)


def test_launcher_kills_the_job_when_a_worker_fails(tmp_path):
    crashed, marker = tmp_path / 'crashed', tmp_path / 'survivor'
    # worker 0 crashes (os._exit: no ps-lite goodbye); the other would run for 600 s
    # and then touch the marker
    script = _job_script(tmp_path, '    if kv.rank == 0: open(%r, "w").close(); os._exit(3)\n'
                                   '    time.sleep(600); open(%r, "w").close()\n'
                         % (str(crashed), str(marker)))
    out = _launch('-n', 2, '-s', 1, '--', sys.executable, script)
    ended = time.time()
    assert out.returncode == 3, out.stderr[-3000:]
    assert re.search(r'launch: worker \d \(pid \d+\) exited with status 3; stopping the job',
                     out.stderr), out.stderr[-3000:]
    # bounded from the crash, not from the start: start-up under load is no part of it
    assert ended - os.path.getmtime(str(crashed)) < 30 and not marker.exists()


def test_a_sigkilled_worker_ends_the_job_with_a_clear_error(tmp_path):
    victim = tmp_path / 'victim'
    # both workers push-pull in lock step; the worker of rank 1 is SIGKILLed mid-job, so
    # the other would wait for its gradient forever
    script = _job_script(tmp_path, (
        '    kv.init(0, mx.nd.zeros(4))\n'
        '    out = mx.nd.zeros(4)\n'
        '    for step in range(100000):\n'
        '        if kv.rank == 1 and step == 20:\n'
        '            open(%r, "w").write(str(os.getpid())); os.kill(os.getpid(), signal.SIGKILL)\n'
        '        kv.push(0, mx.nd.ones(4)); kv.pull(0, out=out); out.wait_to_read()\n'
        % str(victim)))
    out = _launch('-n', 2, '-s', 1, '--', sys.executable, script)
    after_kill = time.time() - os.path.getmtime(str(victim))
    assert out.returncode == 128 + signal.SIGKILL, out.stderr[-3000:]
    # (ps-lite's rank need not be the launcher's worker number)
    assert re.search(r'launch: worker \d \(pid %s\) was killed by SIGKILL; stopping the job'
                     % victim.read_text(), out.stderr), out.stderr[-3000:]
    assert after_kill < 30, after_kill   # typically about 1 s (the survivors get SIGTERM)


def test_no_progress_timeout_kills_a_stuck_job(tmp_path):
    script = _job_script(tmp_path, '    time.sleep(600)\n')   # silent and stuck
    start = time.time()
    out = _launch('-n', 1, '-s', 1, '--timeout', 4, '--', sys.executable, script)
    assert out.returncode == 124, out.stderr[-3000:]
    assert 'launch: no progress: no output from any process for 4 s (--timeout)' in out.stderr
    assert time.time() - start < 300   # (the job itself would take 600 s)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open('/proc/%d/stat' % pid) as f:   # a zombie is dead, only not yet reaped
        return f.read().rsplit(')', 1)[1].split()[0] != 'Z'


class _Reader:
    """Reads a process's stdout and stderr on threads, so that waiting for a line
    never blocks past a deadline and stderr can be shown when a test fails."""

    def __init__(self, proc):
        import threading
        self.proc, self.lines, self.err = proc, [], []
        self._threads = [threading.Thread(target=self._read, args=(pipe, into), daemon=True)
                         for pipe, into in ((proc.stdout, self.lines), (proc.stderr, self.err))]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _read(pipe, into):
        for line in iter(pipe.readline, ''):
            into.append(line)

    def wait_for(self, condition, seconds):
        """True once ``condition(stdout lines)`` holds, False after ``seconds`` or when
        the process ended without it."""
        end = time.time() + seconds
        while time.time() < end:
            if condition(self.lines):
                return True
            if self.proc.poll() is not None:
                for thread in self._threads:
                    thread.join(5)
                return condition(self.lines)
            time.sleep(0.05)
        return False

    def report(self):
        return ('launcher exit status %s\n--- stdout\n%s--- stderr\n%s'
                % (self.proc.poll(), ''.join(self.lines[-20:]), ''.join(self.err)[-3000:]))


@pytest.mark.parametrize('signum', [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_launcher_leaves_no_child(tmp_path, signum):
    # SIGKILL: the kernel's parent-death signal; SIGTERM: the launcher's own handler
    script = _job_script(tmp_path, '    print("worker ready", flush=True); time.sleep(300)\n')
    launcher = subprocess.Popen([sys.executable, '-m', 'gluon_nets.launch', '-n', '2', '-s', '1',
                                 '--', sys.executable, script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    output, pids = _Reader(launcher), []
    try:
        # worker output reaches us via the launcher, whole lines (not "worker readyworker
        # ready": under PYTHONUNBUFFERED print writes text and newline apart, and the
        # two workers leave the start-up barrier together)
        ready = output.wait_for(lambda lines: lines.count('worker ready\n') >= 2, 240)
        assert ready, output.report()
        assert launcher.poll() is None, output.report()
        end = time.time() + 30   # (stderr is read by its own thread)
        while time.time() < end:
            pids = [int(line.split(' pid ')[1]) for line in output.err
                    if line.startswith('launch: ') and ' pid ' in line]
            if len(pids) == 4:
                break
            time.sleep(0.05)
        assert len(pids) == 4, output.report()   # scheduler, server, 2 workers
        os.kill(launcher.pid, signum)
        assert launcher.wait(timeout=60) == (-signum if signum == signal.SIGKILL else 128 + signum)
        end = time.time() + 30
        while any(_alive(p) for p in pids) and time.time() < end:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)]
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in pids:   # never leave a process behind, even when the test fails
            if _alive(pid) and _is_ours(pid, script):
                os.kill(pid, signal.SIGKILL)


def test_workers_output_reaches_the_launchers_stdout_in_whole_lines(tmp_path):
    # each worker writes 150 lines in two pieces with a pause between (what print does
    # under PYTHONUNBUFFERED, slowed down), then a last line without its newline; and the
    # heartbeat settings it was given (ENV sets the interval, the launcher the timeout)
    script = _job_script(tmp_path, (
        '    print("heartbeat %s %s" % (os.environ["PS_HEARTBEAT_INTERVAL"], '
        'os.environ["PS_HEARTBEAT_TIMEOUT"]))\n'
        '    for i in range(150):\n'
        '        sys.stdout.write("worker %d line %d" % (kv.rank, i)); sys.stdout.flush()\n'
        '        time.sleep(0.002)\n'
        '        sys.stdout.write("\\n"); sys.stdout.flush()\n'
        '    sys.stdout.write("worker %d end" % kv.rank); sys.stdout.flush()\n'))
    out = _run([sys.executable, '-m', 'gluon_nets.launch', '-n', '2', '-s', '1', '--',
                sys.executable, script])
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.replace('end', 'end\n').splitlines()
    expected = ['worker %d line %d' % (r, i) for r in range(2) for i in range(150)]
    assert sorted(lines) == sorted(expected + ['worker 0 end', 'worker 1 end']
                                   + ['heartbeat 1 60'] * 2)


def _is_ours(pid, script):
    """The pid still runs our job (not a process that reused the number)."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            cmdline = f.read().decode('utf-8', 'replace')
    except OSError:
        return False
    return script in cmdline or 'import mxnet' in cmdline


def test_an_unfinished_line_is_not_held_back_for_long(tmp_path):
    # 100 KB without a newline (past the 64 KiB cap), then a prompt-like "waiting"
    # (shown after 5 s): both reach us while the worker still runs
    script = _job_script(tmp_path, '    sys.stdout.write("x" * 100000); sys.stdout.flush()\n'
                                   '    time.sleep(1); sys.stdout.write("waiting"); '
                                   'sys.stdout.flush(); time.sleep(300)\n')
    launcher = subprocess.Popen([sys.executable, '-m', 'gluon_nets.launch', '-n', '1', '-s', '1',
                                 '--', sys.executable, script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=ROOT, env=ENV)
    received, err = [], []
    import threading
    threads = [threading.Thread(target=lambda: received.extend(iter(
                   lambda: os.read(launcher.stdout.fileno(), 65536), b'')), daemon=True),
               threading.Thread(target=lambda: err.append(launcher.stderr.read()), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        end = time.time() + 240
        while b''.join(received) != b'x' * 100000 + b'waiting' and time.time() < end:
            assert launcher.poll() is None, b''.join(err)[-3000:]
            time.sleep(0.1)
        assert b''.join(received) == b'x' * 100000 + b'waiting'
    finally:
        launcher.terminate()   # its handler stops the job
        assert launcher.wait(timeout=60) == 128 + signal.SIGTERM


def test_launcher_needs_a_command():
    out = subprocess.run([sys.executable, '-m', 'gluon_nets.launch', '-n', '2'], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 2 and 'give the worker command after --' in out.stderr
    usage = subprocess.run([sys.executable, '-m', 'gluon_nets.launch', '--help'],
                           capture_output=True, text=True, cwd=ROOT)
    assert 'for this many seconds (default 1800; 0: never)' in ' '.join(usage.stdout.split())
