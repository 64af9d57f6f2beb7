"""The readable line of an MXNet error, for one-line ``error: ...`` messages.

MXNet's exceptions carry a C++ traceback and stack trace around the message; users
get the failed check (or the last line that is not a frame). No MXNet at import.
"""

__all__ = ['mxnet_error_line']


def mxnet_error_line(err):
    """The line with 'Check failed' or 'MXNetError' of ``err``'s text, else the last
    line that is not a traceback frame, else the exception's type name."""
    text = str(err).split('Stack trace')[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if 'Check failed' in line or line.startswith('MXNetError'):
            return line
    useful = [line for line in lines if not line.startswith(('Traceback', 'File '))]
    return useful[-1] if useful else type(err).__name__
