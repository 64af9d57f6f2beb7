"""Start a parameter-server training job on this machine (MXNet's ps-lite).

    python -m gluon_nets.launch -n 2 -s 1 -- python train_imagenet.py --kvstore dist_sync ...

starts one scheduler, ``-s`` servers and ``-n`` workers on the loopback interface
with the ``DMLC_*`` variables MXNet reads, on a free port. The workers run the
command after ``--``; the scheduler and servers are ``python -c 'import mxnet'``
(importing mxnet with ``DMLC_ROLE`` set to server/scheduler runs that role and
exits when the job ends).

The job never hangs and never outlives the launcher:

* any child that exits non-zero or is killed by a signal stops the job (every other
  child is killed) and the launcher exits with that status (128 + signal);
* ``--timeout`` (default 1800 s) is a *no progress* bound: when no child has written
  anything to its stdout/stderr for that long (a hung worker, a dead peer that a
  survivor waits on forever), the job is killed, exit status 124; ``--time-limit``
  bounds the whole job;
* every child runs in its own process group (killed with ``killpg``, so its data
  loader processes go too) and gets ``PR_SET_PDEATHSIG`` = SIGKILL: if the launcher
  itself is killed (even with SIGKILL), the kernel kills its children;
* ps-lite heartbeats are on (``PS_HEARTBEAT_INTERVAL`` / ``PS_HEARTBEAT_TIMEOUT``,
  defaults 5 s / 60 s unless set in the environment).

The children's output passes through the launcher (it is how progress is seen), in
whole lines: two workers' lines never merge into one.
MXNet's bundled ``tools/launch.py`` does not run on Python 3.11; this replaces its
``--launcher local`` mode. Several hosts: docs/distributed.md.
"""
import argparse
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ['free_port', 'launch', 'main', 'DEFAULT_TIMEOUT', 'HEARTBEAT_DEFAULTS']

#: seconds without any output from any child before the job is declared stuck
DEFAULT_TIMEOUT = 1800.0
#: ps-lite heartbeat settings given to every role unless already in the environment
HEARTBEAT_DEFAULTS = {'PS_HEARTBEAT_INTERVAL': '5', 'PS_HEARTBEAT_TIMEOUT': '60'}
_PR_SET_PDEATHSIG = 1
#: the scheduler ends as soon as the workers finalise ps-lite; workers still exiting
#: Python get this long before the job counts as stuck
_EXIT_GRACE = 60.0
#: an unfinished output line is held back this many seconds waiting for its end (a
#: progress bar redrawn with \r shows one redraw late), or until it is this long
_PARTIAL_LINE_WAIT, _PARTIAL_LINE_MAX = 5.0, 65536
#: one lock per output stream (stdout, stderr), held while a piece is written there
_OUTPUT_LOCKS = {}


def free_port(host='127.0.0.1'):
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent(parent_pid):
    """``preexec_fn`` of every child: SIGKILL when the launcher dies. (libc is looked
    up here, in the launcher; every child is forked before any output thread starts,
    so the forked child cannot inherit a lock held by one.)"""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):   # not Linux: the process group still applies
        return None

    def preexec():
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:   # the launcher died before prctl took effect
            os._exit(1)
    return preexec


class _Child:
    """One role process; its output is copied to ours, whole lines at a time."""

    def __init__(self, name, cmd, env, parent_pid):
        self.name = name
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent(parent_pid))
        self.pid = self.proc.pid
        self.last_output = time.time()
        self._pumps = [threading.Thread(target=self._pump, args=(pipe, out), daemon=True)
                       for pipe, out in ((self.proc.stdout, sys.stdout),
                                         (self.proc.stderr, sys.stderr))]

    def copy_output(self):
        """Start copying its output to ours (after every child is started)."""
        self.last_output = time.time()
        for pump in self._pumps:
            pump.start()

    def _pump(self, pipe, out):
        """Copy ``pipe`` to ``out`` in whole lines. Every child's pipe has its own
        thread, and a child's line can reach the pipe in pieces (``print`` makes two
        writes, text then newline, under ``PYTHONUNBUFFERED``): copying raw chunks
        let two workers' pieces interleave into ``worker Aworker B\n\n``. A line
        still unfinished after ``_PARTIAL_LINE_WAIT`` s, or longer than
        ``_PARTIAL_LINE_MAX`` bytes, is copied as it is."""
        fd = pipe.fileno()
        poller = select.poll()   # (select.select fails on descriptors past 1023)
        poller.register(fd, select.POLLIN)
        pending = b''
        while True:
            if pending:
                if not poller.poll(_PARTIAL_LINE_WAIT * 1000):   # a line that stays unfinished
                    _write_whole(out, pending)
                    pending = b''
                    continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.last_output = time.time()
            pending += chunk
            cut = max(pending.rfind(b'\n'), pending.rfind(b'\r')) + 1
            if len(pending) - cut > _PARTIAL_LINE_MAX:
                cut = len(pending)
            if cut:
                _write_whole(out, pending[:cut])
                pending = pending[cut:]
        if pending:
            _write_whole(out, pending)

    def poll(self):
        """Its exit status (negative: killed by that signal), or None while it runs.
        The exited process is *not* reaped (``WNOWAIT``): its pid, and so its process
        group id, stays ours until :func:`_kill` has signalled the group; a reaped
        pid could be reused by an unrelated process (pid_max may be 32768)."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self.proc.poll()
        if info is None:
            return None
        if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
            return -info.si_status
        return info.si_status

    def drain(self, timeout=2.0):
        """Wait (briefly) until its output has been copied."""
        for pump in self._pumps:
            if pump.is_alive():
                pump.join(timeout)


def _write_whole(out, data):
    """Write ``data`` (bytes) to the text stream ``out`` in one piece: no other pump
    writes to ``out`` in the middle of it. (A lock per stream: a reader that drains
    only our stdout must not stall it behind a full stderr pipe.)"""
    with _OUTPUT_LOCKS.setdefault(id(out), threading.Lock()):
        try:
            raw = getattr(out, 'buffer', None)
            if raw is None:   # a replaced stream (e.g. under pytest): text only
                out.write(data.decode('utf-8', 'replace'))
            else:
                out.flush()   # text the launcher itself wrote first
                view = memoryview(data)
                while view:   # an unbuffered (-u) stream may write only a part
                    written = raw.write(view)
                    view = view[written if written is not None else len(view):]
                raw.flush()
            out.flush()
        except (OSError, ValueError):
            pass


def _describe(code):
    if code < 0:
        try:
            return 'was killed by %s' % signal.Signals(-code).name
        except ValueError:
            return 'was killed by signal %d' % -code
    return 'exited with status %d' % code


def _kill(children, grace=5.0):
    """SIGTERM every live child's process group, then SIGKILL every group whose
    leader is not reaped yet (a group may outlive its leader: data-loader
    processes), then reap the leaders."""
    pending = [c for c in children if c.proc.returncode is None]
    for child in pending:
        if child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.time() + grace
    while any(c.poll() is None for c in pending) and time.time() < deadline:
        time.sleep(0.05)
    for child in pending:   # the leader's pid is still held (alive or a zombie): safe
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for child in pending:
        child.proc.wait()


def _say(message):
    _write_whole(sys.stderr, ('launch: %s\n' % message).encode('utf-8'))


def launch(command, num_workers, num_servers=1, host='127.0.0.1', port=None,
           timeout=DEFAULT_TIMEOUT, time_limit=None, env=None, verbose=True):
    """Run the job; returns the exit status (0 when every worker succeeded, the
    failing child's status, 128 + signal for a killed child, 124 on a timeout).

    ``timeout``: seconds without output from any child (None or 0: no bound);
    ``time_limit``: seconds for the whole job (None: no bound)."""
    if num_workers < 1 or num_servers < 1:
        raise ValueError('need at least one worker and one server (got -n %d -s %d)'
                         % (num_workers, num_servers))
    if not command:
        raise ValueError('no worker command given (put it after --)')
    base = dict(os.environ if env is None else env)
    for key, value in HEARTBEAT_DEFAULTS.items():
        base.setdefault(key, value)
    base.update({'DMLC_PS_ROOT_URI': host, 'DMLC_PS_ROOT_PORT': str(port or free_port(host)),
                 'DMLC_NUM_WORKER': str(num_workers), 'DMLC_NUM_SERVER': str(num_servers),
                 'DMLC_NODE_HOST': host, 'PS_VERBOSE': base.get('PS_VERBOSE', '0')})
    # a dist_async server unpickles the optimiser: it must find gluon_nets' classes
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    role_cmd = [sys.executable, '-c', 'import mxnet']
    children, workers, me = [], [], os.getpid()

    def start(role, cmd, index):
        child_env = dict(base, DMLC_ROLE=role)
        if role != 'worker':  # servers aggregate only: one thread is plenty
            child_env.setdefault('OMP_NUM_THREADS', '1')
            child_env['PYTHONPATH'] = os.pathsep.join(
                p for p in (package_root, child_env.get('PYTHONPATH')) if p)
        child = _Child('%s %d' % (role, index), cmd, child_env, me)
        children.append(child)
        if verbose:
            _say('%s pid %d' % (child.name, child.pid))
        return child

    def stop(status, message):
        _say(message)
        _kill(children)
        for child in children:
            child.drain(0.5)
        return status

    def on_signal(signum, _frame):
        _kill(children)
        sys.exit(128 + signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        start('scheduler', role_cmd, 0)
        for i in range(num_servers):
            start('server', role_cmd, i)
        workers = [start('worker', command, i) for i in range(num_workers)]
        for child in children:
            child.copy_output()
        if verbose:
            _say('scheduler on %s:%s, %d server(s), %d worker(s), no-progress timeout %s: %s'
                 % (host, base['DMLC_PS_ROOT_PORT'], num_servers, num_workers,
                    '%g s' % timeout if timeout else 'none', ' '.join(command)))
        started = time.time()
        early_exit = {}  # a scheduler/server that ended cleanly while workers still run
        while True:
            for child in children:
                code = child.poll()
                if code is not None and code != 0:
                    return stop(code if code > 0 else 128 - code,
                                '%s (pid %d) %s; stopping the job'
                                % (child.name, child.pid, _describe(code)))
                if code == 0 and child not in workers and any(w.poll() is None for w in workers):
                    first = early_exit.setdefault(child.pid, time.time())
                    if time.time() - first > _EXIT_GRACE:
                        return stop(1, '%s (pid %d) ended %g s before the workers; stopping the job'
                                    % (child.name, child.pid, _EXIT_GRACE))
            if all(w.poll() == 0 for w in workers):
                break
            now = time.time()
            quiet = now - max(c.last_output for c in children)
            if timeout and quiet > timeout:
                return stop(124, 'no progress: no output from any process for %g s (--timeout); '
                                 'killing the job' % timeout)
            if time_limit and now - started > time_limit:
                return stop(124, 'time limit of %g s reached (--time-limit); killing the job'
                            % time_limit)
            time.sleep(0.1)
        # workers are done: the scheduler and servers finish on their own
        others = [c for c in children if c not in workers]
        end = time.time() + 30
        while any(c.poll() is None for c in others) and time.time() < end:
            time.sleep(0.1)
        for child in children:
            child.drain()
        _kill(children)
        return 0
    finally:
        _kill(children, grace=1.0)
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
        description='Run a dist_sync/dist_device_sync/dist_async MXNet job (scheduler, servers, '
                    'workers) on this machine. Several hosts: docs/distributed.md.',
        epilog='example: python -m gluon_nets.launch -n 2 -s 1 -- python train_imagenet.py '
               '--kvstore dist_sync --model resnet... ')
    parser.add_argument('-n', '--num-workers', type=int, required=True, help='worker processes')
    parser.add_argument('-s', '--num-servers', type=int, default=1, help='server processes (default 1)')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default loopback)')
    parser.add_argument('--port', type=int, default=None, help='scheduler port (default: a free one)')
    parser.add_argument('--timeout', type=float, default=DEFAULT_TIMEOUT,
                        help='kill the job when no process has printed anything for this many '
                             'seconds (default %g; 0: never)' % DEFAULT_TIMEOUT)
    parser.add_argument('--time-limit', type=float, default=None,
                        help='kill the job after this many seconds in all (default: none)')
    args = parser.parse_args(own)
    if not command:
        parser.error('give the worker command after --, e.g. -- python train_imagenet.py ...')
    try:
        return launch(command, args.num_workers, args.num_servers, args.host, args.port,
                      args.timeout, args.time_limit)
    except ValueError as err:
        parser.error(str(err))


if __name__ == '__main__':
    sys.exit(main())
