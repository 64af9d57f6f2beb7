"""Our generator of golden weights and inputs, written from the specification in
the reference project's ``golden.py`` (shared/reference/golden.py): every array is
derived from its reference parameter name alone, so any port can rebuild the
weights that produced a golden file's logits.
"""
import json
import zlib

import numpy as np

ROLES = ('weight', 'bias', 'gamma', 'beta', 'mean', 'var', 'count')


def name_seed(name):
    """RandomState seed of one parameter: CRC-32 of its name, 31 bits."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def golden_array(name, shape, role):
    """float32 array for one reference parameter (int64 zeros for BN counters).

    weight ~ N(0, 1/fan_in) with fan_in = prod(shape[1:]) (1 for vectors);
    bias ~ N(0, 0.01); gamma ~ U(0.5, 1); beta, mean ~ N(0, 0.1); var ~ U(0.5, 1.5).
    """
    shape = tuple(int(s) for s in shape)
    rng = np.random.RandomState(name_seed(name))
    if role == 'count':
        return np.zeros(shape, dtype=np.int64)
    if role == 'weight':
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        values = rng.normal(0.0, np.sqrt(1.0 / max(fan_in, 1)), shape)
    elif role == 'bias':
        values = rng.normal(0.0, 0.01, shape)
    elif role == 'gamma':
        values = rng.uniform(0.5, 1.0, shape)
    elif role in ('beta', 'mean'):
        values = rng.normal(0.0, 0.1, shape)
    elif role == 'var':
        values = rng.uniform(0.5, 1.5, shape)
    else:
        raise ValueError('unknown role %r for %s' % (role, name))
    return values.astype(np.float32)


def golden_weights(params):
    """{reference name: array} for a golden file's ``params`` list [[name, shape, role]]."""
    return {name: golden_array(name, shape, role) for name, shape, role in params}


def golden_input(shape, seed=0, scale=1.0):
    """(N, C, H, W) float32 input, U(-1, 1) from ``seed``, times ``scale``."""
    values = np.random.RandomState(seed).uniform(-1.0, 1.0, tuple(shape))
    return (values * scale).astype(np.float32)


def input_of(golden):
    spec = golden['input']
    return golden_input(spec['shape'], spec.get('seed', 0), spec.get('scale', 1.0))


def load(path):
    with open(path) as f:
        golden = json.load(f)
    golden['logits'] = np.asarray(golden['logits'], dtype=np.float32)
    return golden


def relative_error(port, ref):
    """max|port - ref| / max|ref| (float64)."""
    port = np.asarray(port, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(port - ref)) / max(np.max(np.abs(ref)), 1e-12))
