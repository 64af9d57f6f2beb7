"""Output paths checked before the work that fills them, and one-line write errors.

A CLI that writes a report, an export or converted weights calls
:func:`check_output_path` on each target while parsing its flags, so that a path that
is a file (or lies under one) or an unwritable folder stops it before a long
evaluation or conversion; :func:`write_error_line` turns an ``OSError`` raised while
writing (a full disk, above all) into one line naming the file.
"""
import errno
import os

__all__ = ['OutputPathError', 'check_output_path', 'write_error_line', 'is_short_write',
           'short_write_line']


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names it (and the flag)."""


def check_output_path(path, flag, directory=False):
    """``path`` (user-expanded) if it can be written as a file (``directory``: a
    folder, created later if absent), else :class:`OutputPathError` naming ``flag``:
    the path or one of its parents is a file, the path is a folder where a file is
    wanted (or the reverse), or the nearest existing folder is not writable."""
    target = os.path.expanduser(os.fspath(path))
    if not target:
        raise OutputPathError('%s is empty' % flag)
    if os.path.exists(target):
        if directory and not os.path.isdir(target):
            raise OutputPathError('%s %s is a file, not a folder' % (flag, path))
        if not directory and os.path.isdir(target):
            raise OutputPathError('%s %s is a folder, not a file' % (flag, path))
    parent = target if directory else os.path.dirname(os.path.abspath(target))
    parent = os.path.abspath(parent)
    while not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    if not os.path.isdir(parent):
        raise OutputPathError('%s %s: %s is a file, so nothing can be written under it'
                              % (flag, path, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError('%s %s: no permission to write in %s' % (flag, path, parent))
    return target


def write_error_line(err, what=None):
    """One line for an ``OSError`` raised while writing ``what`` (default: the file
    the error names); a full disk says so, and that completed files are intact."""
    where = err.filename or what or 'a file'
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return ('cannot write %s: the disk is full (No space left on device); files '
                'written before are intact' % where)
    return 'cannot write %s: %s' % (where, err.strerror or err)


def is_short_write(err):
    """True for MXNet's error when a save stopped short (dmlc's ``FileStream.Write
    incomplete``): it does not carry errno, but it is a full disk (or quota)."""
    return 'Write incomplete' in str(err) or 'No space left' in str(err)


def short_write_line(path):
    """The line for an MXNet save of ``path`` that stopped short (:func:`is_short_write`)."""
    import shutil
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        free = '%.1f MB free in %s' % (shutil.disk_usage(folder).free / 1e6, folder)
    except OSError:
        free = 'free space unknown'
    return ('cannot write %s: the write stopped short, the disk is full (%s); files written '
            'before are intact' % (path, free))
