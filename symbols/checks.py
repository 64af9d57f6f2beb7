"""What every export format shares: the error it raises, the input its checks run on,
the tolerance measure, and the readable line of an MXNet error.

Needs only numpy: the loaders use it where gluon_nets is not installed.
"""
import numpy as np

__all__ = ['ExportError', 'relative_error', 'check_input', 'error_line']


class ExportError(RuntimeError):
    """A model cannot be exported in the asked format (the message names why: the
    operator the exporter lacks, or the check the artefact failed)."""


def relative_error(ours, ref):
    """max |ours - ref| / max |ref| (the zoo's tolerance measure)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-12))


def check_input(batch, input_size, in_channels=3, seed=0):
    """The deterministic (batch, C, S, S) float32 input the export checks run on
    (uniform in [-2, 2], about the range of mean/std-normalised pixels)."""
    rng = np.random.RandomState(seed)
    return rng.uniform(-2.0, 2.0, (batch, in_channels, input_size, input_size)).astype(np.float32)


def error_line(err):
    """``'Type: message'``: the informative line of an exception. MXNet errors carry a
    C++ traceback and stack trace around the message; the failed check is what counts."""
    text = str(err).split('Stack trace')[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if 'Check failed' in line:
            return line
    useful = [line for line in lines
              if not line.startswith(('Traceback', 'File ', '[bt]', 'at '))]
    last = useful[-1] if useful else ''
    kind = type(err).__name__
    return last if last.startswith(kind) else '%s: %s' % (kind, last)
