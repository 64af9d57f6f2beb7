"""Start a parameter-server training job on this machine (MXNet's ps-lite).

    python -m gluon_nets.launch -n 2 -s 1 -- python train_imagenet.py --kvstore dist_sync ...

starts one scheduler, ``-s`` servers and ``-n`` workers on the loopback interface
with the ``DMLC_*`` variables MXNet reads, on a free port. The workers run the
command after ``--``; the scheduler and servers are ``python -c 'import mxnet'``
(importing mxnet with ``DMLC_ROLE`` set to server/scheduler runs that role and
exits when the job ends). If any process fails, or ``--timeout`` passes, every
child is killed by its PID (and its process group, so that data-loader
processes go too) and the launcher exits non-zero.

MXNet's bundled ``tools/launch.py`` does not run on Python 3.11; this replaces its
``--launcher local`` mode. For several hosts, see docs/training.md: run the same
roles on each host with ``DMLC_PS_ROOT_URI`` set to the scheduler's address (or use
dmlc-tracker's ssh/mpi launchers).
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

__all__ = ['free_port', 'launch', 'main']


def free_port(host='127.0.0.1'):
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _kill(procs, grace=5.0):
    """SIGTERM every live child's process group, then SIGKILL what is left."""
    for _, p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.time() + grace
    for _, p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    for _, p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()


def launch(command, num_workers, num_servers=1, host='127.0.0.1', port=None, timeout=None,
           env=None, verbose=True):
    """Run the job; returns the exit status (0 when every worker succeeded)."""
    if num_workers < 1 or num_servers < 1:
        raise ValueError('need at least one worker and one server (got -n %d -s %d)'
                         % (num_workers, num_servers))
    if not command:
        raise ValueError('no worker command given (put it after --)')
    base = dict(os.environ if env is None else env)
    base.update({'DMLC_PS_ROOT_URI': host, 'DMLC_PS_ROOT_PORT': str(port or free_port(host)),
                 'DMLC_NUM_WORKER': str(num_workers), 'DMLC_NUM_SERVER': str(num_servers),
                 'DMLC_NODE_HOST': host, 'PS_VERBOSE': base.get('PS_VERBOSE', '0')})
    role_cmd = [sys.executable, '-c', 'import mxnet']
    procs = []

    def start(role, cmd, index):
        child_env = dict(base, DMLC_ROLE=role)
        if role != 'worker':  # servers aggregate only: one thread is plenty
            child_env.setdefault('OMP_NUM_THREADS', '1')
        p = subprocess.Popen(cmd, env=child_env, start_new_session=True)
        procs.append(('%s %d' % (role, index), p))
        return p

    def on_signal(signum, _frame):
        _kill(procs)
        sys.exit(128 + signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        start('scheduler', role_cmd, 0)
        for i in range(num_servers):
            start('server', role_cmd, i)
        workers = [start('worker', command, i) for i in range(num_workers)]
        if verbose:
            print('launch: scheduler on %s:%s, %d server(s), %d worker(s): %s'
                  % (host, base['DMLC_PS_ROOT_PORT'], num_servers, num_workers,
                     ' '.join(command)), file=sys.stderr, flush=True)
        deadline = None if not timeout else time.time() + timeout
        early_exit = {}  # a scheduler/server that ended cleanly while workers still run
        while True:
            for name, p in procs:
                code = p.poll()
                if code is not None and code != 0:
                    print('launch: %s (pid %d) exited with status %d; stopping the job'
                          % (name, p.pid, code), file=sys.stderr, flush=True)
                    _kill(procs)
                    return code if code > 0 else 128 - code
                if code == 0 and p not in workers and any(w.poll() is None for w in workers):
                    # the scheduler ends as soon as the workers finalise ps-lite; workers
                    # still exiting Python get a grace period, hung ones do not
                    first = early_exit.setdefault(p.pid, time.time())
                    if time.time() - first > 60:
                        print('launch: %s (pid %d) ended 60 s before the workers; stopping the job'
                              % (name, p.pid), file=sys.stderr, flush=True)
                        _kill(procs)
                        return 1
            if all(w.poll() == 0 for w in workers):
                break
            if deadline and time.time() > deadline:
                print('launch: timeout after %g s; killing the job' % timeout, file=sys.stderr, flush=True)
                _kill(procs)
                return 124
            time.sleep(0.2)
        # workers are done: the scheduler and servers finish on their own
        others = [p for _, p in procs if p not in workers]
        end = time.time() + 30
        while any(p.poll() is None for p in others) and time.time() < end:
            time.sleep(0.2)
        _kill(procs)
        return 0
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if '--' in argv:
        cut = argv.index('--')
        own, command = argv[:cut], argv[cut + 1:]
    else:
        own, command = argv, []
    parser = argparse.ArgumentParser(
        prog='python -m gluon_nets.launch',
        description='Run a dist_sync/dist_async MXNet job (scheduler, servers, workers) on this machine.',
        epilog='example: python -m gluon_nets.launch -n 2 -s 1 -- python train_imagenet.py '
               '--kvstore dist_sync --model resnet... ')
    parser.add_argument('-n', '--num-workers', type=int, required=True, help='worker processes')
    parser.add_argument('-s', '--num-servers', type=int, default=1, help='server processes (default 1)')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default loopback)')
    parser.add_argument('--port', type=int, default=None, help='scheduler port (default: a free one)')
    parser.add_argument('--timeout', type=float, default=None, help='kill the job after this many seconds')
    args = parser.parse_args(own)
    if not command:
        parser.error('give the worker command after --, e.g. -- python train_imagenet.py ...')
    try:
        return launch(command, args.num_workers, args.num_servers, args.host, args.port, args.timeout)
    except ValueError as err:
        parser.error(str(err))


if __name__ == '__main__':
    sys.exit(main())
