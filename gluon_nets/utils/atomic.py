"""Atomic file writes: a temporary file beside the target, fsync, then ``os.replace``.

A killed process never leaves a half-written target, and the result has the mode an
ordinary ``open(path, 'w')`` would give (``0o666 & ~umask``): ``tempfile.mkstemp``
alone creates 0600 files, which other users of a shared run directory cannot read.
"""
import contextlib
import json
import os
import tempfile

__all__ = ['atomic_path', 'write_json_atomic', 'write_text_atomic', 'save_params_atomic',
           'TEMP_PREFIX']

TEMP_PREFIX = '.tmp-'


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The caller writes the complete file to the yielded path (by any means: ``open``,
    ``save_parameters``, ``nd.save``). If the block raises, ``path`` is untouched and
    the temporary file is removed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        # a failed write (a full disk, above all) names the file being written, not the
        # temporary: the caller's one-line error must say which file was not written
        if err.filename in (None, tmp):
            raise OSError(err.errno, err.strerror or str(err), path) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically (fsynced)."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(path, obj):
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + '\n')


def save_params_atomic(net, path):
    """``net.save_parameters(path)`` through a temporary file (never half-written)."""
    with atomic_path(path, suffix='.params') as tmp:
        net.save_parameters(tmp)
