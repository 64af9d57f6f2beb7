"""SIGTERM/SIGINT that stop a command cleanly (train_imagenet.py, eval.py).

The handlers raise :class:`Interrupted`, which the command turns into one line and
exit status 128 + signal. No MXNet at import.
"""
import contextlib
import os

__all__ = ['Interrupted', 'StopSignals']


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived (``signum``). A BaseException, as KeyboardInterrupt,
    so that no ``except Exception`` on the way swallows it."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """SIGTERM/SIGINT handlers that raise :class:`Interrupted`, except inside
    :meth:`deferred` (an epoch's commit), which raises it once the block is done.

    A handler's exception is lost when the signal lands while Python runs a
    ``__del__`` (e.g. ``MXDataIter.__del__`` at the end of an epoch: "Exception
    ignored in ..."), so the signal is also remembered in ``received`` and
    :meth:`check` raises it at the loop's next safe point."""

    def __init__(self):
        self.depth, self.pending, self.previous, self.pid = 0, None, {}, None
        self.received = None

    def install(self):
        import signal
        import threading
        if threading.current_thread() is not threading.main_thread() or self.previous:
            return
        self.pid = os.getpid()
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(signum) is signal.SIG_IGN:   # e.g. SIGINT of a `cmd &` job
                continue
            self.previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self):
        import signal
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous, self.pending, self.depth, self.received = {}, None, 0, None

    def _handle(self, signum, frame):
        if os.getpid() != self.pid:
            # a forked data worker inherited the handler: it dies as a worker should,
            # silently (its pool terminates it with SIGTERM at the end of every run)
            import signal
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        if self.depth:
            self.pending = signum
            return
        raise Interrupted(signum)

    def check(self):
        """Raise :class:`Interrupted` for a signal whose handler's exception was lost."""
        if self.received is not None and not self.depth:
            raise Interrupted(self.received)

    @contextlib.contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending is not None:
                signum, self.pending = self.pending, None
                raise Interrupted(signum)
