"""Model registry: ``get_model`` / ``list_models`` in GluonCV's style, filled by a
``register_model`` decorator placed next to each model function (timm's idea).

Every entry carries metadata (family, paper, reference source, parameter count and
MACs at 224 px for the default kwargs) so that ``python -m gluon_nets.summary`` and
the registry test can check the numbers against :mod:`gluon_nets.profile`.
"""
import difflib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Optional

__all__ = ['register_model', 'get_model', 'list_models', 'get_model_info',
           'ModelInfo', 'pretrained_path', 'ModelConstructionError', 'parse_model_kwargs',
           'cheapest_per_family']


class ModelConstructionError(ValueError):
    """A model was asked for with keyword arguments it cannot be built with."""


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model (numbers are for the default kwargs)."""
    name: str
    family: str
    fn: Callable
    paper: str = ''
    reference: str = ''          # "owner/repo@commit:path/to/file.py"
    params: Optional[int] = None  # learnable parameters, classes=1000
    macs: Optional[int] = None    # multiply-accumulates per image at input_size
    input_size: int = 224
    min_input_size: int = 32      # smallest square input the model accepts
    default_kwargs: dict = field(default_factory=dict)
    slow: bool = False            # excluded from the default every-model test run
    description: str = ''


_REGISTRY = OrderedDict()


def register_model(family, paper='', reference='', params=None, macs=None,
                   input_size=224, min_input_size=32, slow=False, name=None,
                   **default_kwargs):
    """Decorator registering a model constructor ``fn(classes=1000, **kwargs)``.

    ``default_kwargs`` are bound when the model is built through :func:`get_model`
    (user kwargs override them), which lets one constructor serve several names.
    """
    def decorator(fn):
        model_name = name or fn.__name__
        if model_name in _REGISTRY:
            raise ValueError('model %r is registered twice' % model_name)
        doc = (fn.__doc__ or '').strip().splitlines()
        _REGISTRY[model_name] = ModelInfo(
            name=model_name, family=family, fn=fn, paper=paper, reference=reference,
            params=params, macs=macs, input_size=input_size,
            min_input_size=min_input_size, default_kwargs=dict(default_kwargs),
            slow=slow, description=doc[0] if doc else '')
        return fn
    return decorator


def list_models(family=None):
    """Sorted names of all registered models, optionally of one family."""
    _ensure_models_imported()
    return sorted(n for n, info in _REGISTRY.items()
                  if family is None or info.family == family)


def list_families():
    _ensure_models_imported()
    return sorted({info.family for info in _REGISTRY.values()})


def cheapest_per_family():
    """Sorted names of the cheapest non-slow model of each family (fewest MACs, then
    params, then name): the representatives that quick checks and benches use."""
    _ensure_models_imported()
    best = {}
    for info in _REGISTRY.values():
        if info.slow:
            continue
        key = (info.macs or 0, info.params or 0, info.name)
        if info.family not in best or key < best[info.family]:
            best[info.family] = key
    return sorted(key[2] for key in best.values())


def get_model_info(name):
    """The :class:`ModelInfo` of ``name``; ``ValueError`` naming close matches if unknown."""
    _ensure_models_imported()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=5, cutoff=0.5)
        hint = ('; did you mean %s?' % ', '.join(close)) if close else ''
        raise ValueError('unknown model %r%s (list_models() lists all %d)'
                         % (name, hint, len(_REGISTRY))) from None


def parse_model_kwargs(text, flag='--model-kwargs', alpha=None):
    """A command line's JSON model kwargs (and ``--alpha``) -> dict; ``ValueError`` naming
    ``flag`` when the text is not a JSON object."""
    import json
    try:
        kwargs = json.loads(text or '{}')
    except ValueError as err:
        raise ValueError('%s is not valid JSON (%s): %r' % (flag, err, text)) from None
    if not isinstance(kwargs, dict):
        raise ValueError('%s must be a JSON object, got %r' % (flag, text))
    if alpha is not None:
        kwargs['alpha'] = float(alpha)
    return kwargs


def _kwargs_tag(kwargs):
    """Stable file-name tag for the kwargs that change a model's weights."""
    parts = []
    for key in sorted(kwargs):
        value = kwargs[key]
        if isinstance(value, (dict, list, tuple)):
            import hashlib
            import json
            value = hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
        parts.append('%s%s' % (key, value))
    return ('_' + '_'.join(parts)) if parts else ''


def pretrained_path(name, root='~/.mxnet/models', **kwargs):
    """Where ``get_model(name, pretrained=True, **kwargs)`` looks for converted weights."""
    kwargs = {k: v for k, v in kwargs.items() if k != 'classes'}
    return os.path.join(os.path.expanduser(root), name + _kwargs_tag(kwargs) + '.params')


def get_model(name, classes=1000, pretrained=False, ctx=None, root='~/.mxnet/models',
              **kwargs):
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models` (case-insensitive).
    classes : int
        Number of output classes; the net maps (N, 3, H, W) images to (N, classes) logits.
    pretrained : bool
        Load converted weights from ``root`` (made with ``python -m gluon_nets.convert``);
        nothing is ever downloaded.
    ctx : mx.Context or list, optional
        Where pretrained weights are loaded (ignored otherwise; call ``initialize``).
    **kwargs
        Family options (``alpha`` for OctConv, ``config`` for LW-DNA, ...).

    Returns
    -------
    mxnet.gluon.HybridBlock, uninitialised unless ``pretrained``.
    """
    info = get_model_info(name)
    build_kwargs = dict(info.default_kwargs)
    build_kwargs.update(kwargs)
    try:
        net = info.fn(classes=classes, **build_kwargs)
    except ModelConstructionError:
        raise
    except TypeError as err:
        raise ModelConstructionError('%s: bad arguments %s (%s)'
                                     % (info.name, sorted(kwargs), err)) from None
    except (ValueError, AssertionError) as err:
        raise ModelConstructionError('%s: cannot be built with %s: %s'
                                     % (info.name, kwargs, err)) from None
    if pretrained:
        path = pretrained_path(info.name, root=root, **kwargs)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                'no converted weights for %s at %s; make them from the authors\' checkpoint with:\n'
                '  python -m gluon_nets.convert --model %s%s --checkpoint CHECKPOINT --out %s'
                % (info.name, path, info.name,
                   ''.join(' --%s %s' % (k.replace('_', '-'), v) for k, v in sorted(kwargs.items())
                           if k == 'alpha'),
                   path))
        import mxnet as mx
        net.load_parameters(path, ctx=ctx or mx.cpu())
    return net


_IMPORTED = False


def _ensure_models_imported():
    """Import every family module once so that their decorators have run."""
    global _IMPORTED
    if not _IMPORTED:
        _IMPORTED = True
        from . import models  # noqa: F401  (registers all families)
