"""Build a zoo model with its weights for export, evaluation and benchmarks.

This is the only part of :mod:`symbols` that needs gluon_nets (imported lazily), so
that :func:`symbols.load` keeps working where gluon_nets is not installed.
"""
import os

import numpy as np

__all__ = ['build_net', 'parse_model_kwargs', 'infer_classes', 'mx_message']


def parse_model_kwargs(text, alpha=None):
    """``--model-kwargs`` JSON (and ``--alpha``) -> a kwargs dict; ValueError if malformed."""
    from gluon_nets.model_zoo import parse_model_kwargs as parse
    kwargs = parse(text, '--model-kwargs', alpha)
    if 'classes' in kwargs:
        raise ValueError('give the class count with --classes, not in --model-kwargs')
    return kwargs


def mx_message(err):
    """The informative line of an MXNet error (they open with a C++ traceback)."""
    lines = [l.strip() for l in str(err).strip().splitlines() if l.strip()]
    for line in reversed(lines):
        if 'Check failed' in line or line.startswith(('MXNetError', 'ValueError', 'AssertionError')):
            return line
    useful = [l for l in lines if not l.startswith(('Traceback', 'File ', '[bt]', 'Stack trace'))
              and not l.startswith('at ')]
    return useful[-1] if useful else type(err).__name__


def _read_params(path):
    import mxnet as mx
    if not os.path.isfile(path):
        raise FileNotFoundError('parameters file %s does not exist' % path)
    try:
        loaded = mx.nd.load(path)
    except Exception as err:
        raise ValueError('%s is not an MXNet .params file (%s)' % (path, mx_message(err))) from None
    if not isinstance(loaded, dict) or not loaded:
        raise ValueError('%s holds no named parameters' % path)
    return loaded


def infer_classes(name, params_path, **kwargs):
    """Class count of the classifier stored in ``params_path`` for model ``name``: the
    output size of the last weight (in parameter order) whose output dim is the class
    count at classes=1000 and differs at classes=7."""
    import gluon_nets
    loaded = _read_params(params_path)
    at_1000 = gluon_nets.get_model(name, classes=1000, **kwargs)._collect_params_with_prefix()
    at_7 = gluon_nets.get_model(name, classes=7, **kwargs)._collect_params_with_prefix()
    for key in reversed(list(at_1000)):
        s1000, s7 = at_1000[key].shape, at_7[key].shape
        if s1000 and s7 and s1000[0] == 1000 and s7[0] == 7 and key in loaded:
            return int(loaded[key].shape[0])
    raise ValueError('cannot tell the class count of %s from %s; pass --classes'
                     % (name, params_path))


def build_net(name, params=None, classes=None, ctx=None, seed=0, **kwargs):
    """``gluon_nets.get_model(name, classes, **kwargs)`` with weights.

    params : str, optional
        An MXNet ``.params`` file of this model (``save_parameters`` format, as written
        by ``python -m gluon_nets.convert`` and ``train_imagenet.py``). Without it the
        net gets a seeded random initialisation (for graph checks and benchmarks).
    classes : int, optional
        Default: read from ``params``, else 1000.

    Returns (net, source) where ``source`` says where the weights came from.
    Raises ValueError / FileNotFoundError with the cause (unknown model, bad kwargs,
    missing file, wrong-shape or missing parameters).
    """
    import mxnet as mx
    import gluon_nets
    ctx = ctx or mx.cpu()
    gluon_nets.get_model_info(name)       # unknown names fail here, with suggestions
    if params is not None and classes is None:
        classes = infer_classes(name, params, **kwargs)
    net = gluon_nets.get_model(name, classes=classes or 1000, **kwargs)
    if params is None:
        mx.random.seed(seed)
        np.random.seed(seed)
        net.initialize(mx.init.Xavier(), ctx=ctx)
        return net, 'random initialisation (seed %d)' % seed
    _read_params(params)
    try:
        net.load_parameters(params, ctx=ctx)
    except (AssertionError, ValueError, RuntimeError, mx.base.MXNetError) as err:
        raise ValueError('%s does not fit %s(classes=%s, %s): %s'
                         % (params, name, classes, kwargs, mx_message(err))) from None
    return net, os.path.abspath(params)
