"""OMP_NUM_THREADS before MXNet loads.

MXNet 1.9.1 reads ``OMP_NUM_THREADS`` once, when it is imported, and uses ONE thread
when it is unset. Every entry point (trainer, evaluator, exporter, benches) calls
:func:`set_threads` (or :func:`set_threads_from_argv`) before its first MXNet import.
"""
import os
import sys

__all__ = ['available_cores', 'set_threads', 'set_threads_from_argv', 'ThreadsError']


class ThreadsError(ValueError):
    """A thread count that is not a positive integer, or set after MXNet loaded."""


def available_cores():
    """Cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_threads(threads=None, strict=False):
    """Set OMP_NUM_THREADS (and MKL_NUM_THREADS if unset) and return the count.

    ``threads``: a positive int (or its string); default: ``OMP_NUM_THREADS`` if the
    environment has it, else :func:`available_cores`. With ``strict=True`` calling this
    after MXNet was imported raises :class:`ThreadsError` (the value would be ignored).
    """
    if threads is None:
        threads = os.environ.get('OMP_NUM_THREADS') or available_cores()
    try:
        count = int(threads)
        if count < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ThreadsError('--threads must be a positive integer, got %r' % (threads,)) from None
    if strict and 'mxnet' in sys.modules and os.environ.get('OMP_NUM_THREADS') != str(count):
        raise ThreadsError('set_threads(%d) must run before mxnet is imported' % count)
    os.environ['OMP_NUM_THREADS'] = str(count)
    os.environ.setdefault('MKL_NUM_THREADS', str(count))
    return count


def threads_in_argv(argv, flag='--threads'):
    """The value of ``--threads N`` / ``--threads=N`` in ``argv`` (last wins), or None."""
    value = None
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif token.startswith(flag + '='):
            value = token.split('=', 1)[1]
    return value


def set_threads_from_argv(argv, prog=None):
    """:func:`set_threads` from ``--threads`` in ``argv`` before argparse runs (MXNet may
    be imported while the parser is built). A bad value exits with status 2 and one
    ``error:`` line, as argparse would."""
    try:
        return set_threads(threads_in_argv(argv))
    except ThreadsError as err:
        sys.stderr.write('%s: error: %s\n' % (prog or os.path.basename(sys.argv[0]), err))
        raise SystemExit(2) from None
