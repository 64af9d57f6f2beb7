"""A registered model with its weights and its record, for the command lines that
export (``symbols.export``), evaluate (``gluon_nets.evaluation``) and bench
(``bench/deploy.py``).

This is the part of :mod:`symbols` that needs gluon_nets (imported when called), so
that :func:`symbols.load` keeps working where gluon_nets is not installed.
"""
import os

import numpy as np

from .checks import error_line
from .loaders import read_json

__all__ = ['build_net', 'parse_model_kwargs', 'parse_rgb', 'classes_in_params', 'read_params',
           'run_record']


def parse_model_kwargs(text, alpha=None):
    """``--model-kwargs`` JSON (and ``--alpha``) -> a kwargs dict; ValueError if malformed."""
    from gluon_nets.model_zoo import parse_model_kwargs as parse
    kwargs = parse(text, '--model-kwargs', alpha)
    if 'classes' in kwargs:
        raise ValueError('give the class count with --classes, not in --model-kwargs')
    return kwargs


def parse_rgb(text, flag):
    """``"r,g,b"`` (a ``--mean`` / ``--std`` value) -> three floats; ValueError naming
    ``flag`` otherwise."""
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        values = []
    if len(values) != 3:
        raise ValueError('%s must be three comma-separated numbers, got %r' % (flag, text))
    return values


def rgb_flags_to_unit_scale(args):
    """GluonCV's ``--rgb-mean``/``--rgb-std`` (0-255 scale, train_imagenet.py's flags)
    written into ``args.mean``/``args.std`` (the [0,1] scale of the data_config), so that
    every command line takes both spellings; ValueError naming the flags when both
    scales are given or a value is not three numbers."""
    for scaled, plain in (('rgb_mean', 'mean'), ('rgb_std', 'std')):
        text = getattr(args, scaled, None)
        if text is None:
            continue
        if getattr(args, plain) is not None:
            raise ValueError('--%s and --%s both given: give one' % (scaled.replace('_', '-'), plain))
        values = parse_rgb(text, '--' + scaled.replace('_', '-'))
        setattr(args, plain, ','.join(repr(v / 255.0) for v in values))


def run_record(params):
    """``(params file, record)`` for ``--params``: a ``train_imagenet.py`` run directory
    means its ``last.params``; the record is the run's ``model.json`` beside the file,
    read by ``model_zoo.read_model_record`` (model, kwargs, data_config, class_names,
    and the data the run validated on), or None when there is none."""
    from gluon_nets.model_zoo import read_model_record
    if os.path.isdir(params):
        params = os.path.join(params, 'last.params')
    path = os.path.join(os.path.dirname(os.path.abspath(params)), 'model.json')
    record = read_json(path, 'run record')
    if not isinstance(record, dict) or 'model' not in record:
        return params, None
    return params, read_model_record(record, where=path)


def read_params(path):
    """{structural name: NDArray} of an MXNet ``.params`` file; errors name the file."""
    import mxnet as mx
    if not os.path.isfile(path):
        raise FileNotFoundError('parameters file %s does not exist' % path)
    try:
        loaded = mx.nd.load(path)
    except Exception as err:
        raise ValueError('%s is not an MXNet .params file (%s)' % (path, error_line(err))) from None
    if not isinstance(loaded, dict) or not loaded:
        raise ValueError('%s holds no named parameters' % path)
    return loaded


def classes_in_params(name, params_path, loaded=None):
    """The class count of the weights in ``params_path`` for model ``name``: the output
    size of the model's classifier (``ModelInfo.classifier``, the attribute holding the
    final layer), read from the file; no net is built."""
    from gluon_nets.model_zoo import get_model_info
    classifier = get_model_info(name).classifier
    loaded = read_params(params_path) if loaded is None else loaded
    weights = [key for key in loaded if key.startswith(classifier + '.') and key.endswith('weight')]
    if not weights:
        raise ValueError('cannot tell the class count of %s from %s: it holds no weight of '
                         'the classifier %r; pass --classes' % (name, params_path, classifier))
    return int(loaded[weights[-1]].shape[0])


def build_net(name, params=None, classes=None, ctx=None, seed=0, **kwargs):
    """``gluon_nets.get_model(name, classes, **kwargs)`` with weights.

    params : str, optional
        An MXNet ``.params`` file of this model (``save_parameters`` format, as written
        by ``python -m gluon_nets.convert`` and ``train_imagenet.py``). Without it the
        net gets a seeded random initialisation (for graph checks and benchmarks).
    classes : int, optional
        Default: the classifier's output size in ``params`` (:func:`classes_in_params`),
        else 1000.

    Returns (net, source, classes): ``source`` says where the weights came from.
    Raises ValueError / FileNotFoundError with the cause (unknown model, bad kwargs,
    missing file, wrong-shape or missing parameters).
    """
    import mxnet as mx
    import gluon_nets
    ctx = ctx or mx.cpu()
    gluon_nets.get_model_info(name)       # unknown names fail here, with suggestions
    loaded = read_params(params) if params is not None else None
    if classes is None:
        classes = classes_in_params(name, params, loaded) if loaded is not None else 1000
    net = gluon_nets.get_model(name, classes=classes, **kwargs)
    if params is None:
        mx.random.seed(seed)
        np.random.seed(seed)
        net.initialize(mx.init.Xavier(), ctx=ctx)
        return net, 'random initialisation (seed %d)' % seed, classes
    try:
        net.load_parameters(params, ctx=ctx)
    except (AssertionError, ValueError, RuntimeError, mx.base.MXNetError) as err:
        raise ValueError('%s does not fit %s(classes=%s, %s): %s'
                         % (params, name, classes, kwargs, error_line(err))) from None
    return net, os.path.abspath(params), classes
