"""The model registry: ``get_model`` / ``list_models`` / ``get_model_info``.

The bottom of the model stack: it imports no family. A family module
(``gluon_nets/models/<family>.py``) registers, next to its code::

    register_family('menet', paper=..., reference=..., data_config=..., classifier='output')

    @register_model('menet', reference=_REF + 'MENet.py')
    def menet228_12x1_g3(classes=1000, **kwargs):
        \"\"\"MENet-228 (12x1, g=3): 1.8 M params, 144 M MACs.\"\"\"
        return menet(classes, stage_channels=(228, 456, 912), ...)

    register_alias('oct_resnet152', 'oct_resnet152_v1f')

    @register_converter('menet')            # or models=[...] for some names only
    def _convert_menet(name, state_dict, **kwargs) -> ConversionPlan: ...

Every model name is a literal at one ``@register_model`` (grep finds it), every alias
at one ``register_alias``. Parameter and MAC counts are not written in code: they live
in the generated ``model_numbers.json`` beside this file (``python -m
gluon_nets.summary --regenerate`` rewrites it; a test checks it against measurement).

Families are discovered on first use by importing the package ``gluon_nets.models``;
a family module that fails to import leaves the registry as it was and the error
names the family.
"""
import contextlib
import copy
import difflib
import fnmatch
import importlib
import json
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from .utils.errors import mxnet_error_line

__all__ = ['register_model', 'register_alias', 'register_family', 'register_converter',
           'get_model', 'list_models', 'list_families', 'get_model_info', 'get_family',
           'ModelInfo', 'FamilyInfo', 'TrainingPlugin', 'ModelOption', 'ConversionPlan',
           'ConversionError', 'ModelConstructionError', 'pretrained_path', 'parse_model_kwargs',
           'cheapest_per_family', 'IMAGENET_DATA_CONFIG', 'NUMBERS_FILE', 'load_numbers',
           'resolve_data_config', 'model_record', 'read_model_record', 'build_model',
           'read_mxnet_params', 'get_model_list', 'default_model_root', 'find_model_info',
           'gluoncv_model_info', 'load_transfer_params',
           'canonical_kwargs', 'feature_net']

NUMBERS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'model_numbers.json')

#: the ImageNet recipe every family uses unless its entry says otherwise (timm's keys;
#: ``crop_ratio`` is GluonCV's name for timm's ``crop_pct``; mean/std on the 0-1 scale)
IMAGENET_DATA_CONFIG = dict(input_size=(3, 224, 224), crop_ratio=0.875,
                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                            interpolation='bilinear', num_classes=1000)


class ModelConstructionError(ValueError):
    """A model was asked for with keyword arguments it cannot be built with."""


class ConversionError(ValueError):
    """Reference weights that do not fit a model (names or shapes)."""


@dataclass
class ConversionPlan:
    """What a family's converter returns.

    net      : the (uninitialised) HybridBlock to load
    mapping  : {our structural parameter name: ref key | (tuple of ref keys, fn)}
    ignored  : reference keys that are deliberately not loaded (e.g. equal aliases)
    """
    net: object
    mapping: dict
    ignored: set = field(default_factory=set)


@dataclass(frozen=True)
class ModelOption:
    """A command-line option a family adds to the trainer.

    ``flags`` and ``argparse`` are passed to ``parser.add_argument``; ``kwarg`` names the
    model constructor keyword the value goes to (None: the family's training plugin reads
    it from ``args``). The trainer refuses the flag for models that do not take ``kwarg``.
    """
    flags: tuple
    argparse: dict
    kwarg: Optional[str] = None

    @property
    def dest(self):
        return self.argparse.get('dest') or self.flags[0].lstrip('-').replace('-', '_')


class TrainingPlugin:
    """A family's hooks into ``train_imagenet.py`` (the trainer knows no family).

    ``options``: :class:`ModelOption` s the trainer adds to its parser.

    ``check(args, info)``: raise ``ValueError`` (one line, naming the flag) for flag
    values this model cannot train with; runs before any work.

    ``build(session)``: return a ``(net, name, kwargs)`` triple to train instead of the
    plain ``get_model(args.model, ...)`` net, or None for the plain build; a
    ``ValueError`` it raises stops the run (exit 1) with its message. ``session``
    (``gluon_nets.training.session.TrainingSession``) has: ``args`` (parsed flags),
    ``info`` (this ModelInfo), ``name``, ``kwargs`` (constructor kwargs from the flags),
    ``num_classes``, ``input_size`` (int), ``data_config``, ``ctx`` (list), ``train_data``
    (the loader; ``set_epoch`` and iteration), ``is_chief``, ``kvstore`` (None when
    local), ``resumed`` (a checkpoint exists; the trainer loads it over the returned
    net), ``log`` (a logger); the run directory through ``file(name)`` (a path),
    ``read_json(name)`` (None if absent), ``write_json(name, obj)`` and
    ``save_params(net, name)`` (atomic, chief only); ``make_net(name=None, kwargs=None,
    initialize=True)`` (built and initialised as the trainer would), ``seed(offset)``
    (reseed every RNG; plugins use offsets <= -2), ``set_arg(dest, value)`` (change a
    flag before the optimiser is built; recorded in ``args.json``) and ``barrier()``
    (wait for the distributed workers). A net it returns must be initialised.

    Options should default to None: only values the user gave reach the constructor. A
    ``kwarg`` option is refused for a model whose constructor signature does not name
    that keyword (a ``**kwargs`` catch-all does not count).
    """
    options = ()

    def check(self, args, info):
        return None

    def build(self, session):
        return None


@dataclass(frozen=True)
class FamilyInfo:
    """What the models of one family share (each model may override the first five)."""
    name: str
    paper: str = ''
    reference: str = ''
    data_config: dict = field(default_factory=dict)
    classifier: str = 'output'
    weights: str = ''
    training: TrainingPlugin = field(default_factory=TrainingPlugin)
    module: str = ''
    #: ``fn(model_name) -> mx.init.Initializer``: the authors' initialisation (the
    #: trainer's ``--init reference``); None when the family does not state one
    reference_init: Optional[Callable] = None


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry (numbers are for the default kwargs, classes=1000, at ``input_size``).

    ``data_config`` is the preprocessing the model is trained and evaluated with
    (input_size (C, H, W), crop_ratio, mean, std on the 0-1 scale, interpolation,
    num_classes); the trainer, ``eval.py`` and ``symbols.export`` read it and record it
    in run directories and exports. ``classifier`` is the attribute holding the final
    layer; ``weights`` says where weights come from and under which licence;
    ``alias_of`` names the entry an alias points to; ``source`` is ``file:line`` of the
    definition.
    """
    name: str
    family: str
    fn: Callable
    paper: str = ''
    reference: str = ''          # "owner/repo@commit:path/to/file.py"
    input_size: int = 224
    min_input_size: int = 32      # smallest square input the model accepts
    default_kwargs: dict = field(default_factory=dict)
    slow: bool = False            # excluded from the default every-model test run
    description: str = ''
    data_config: dict = field(default_factory=dict)
    classifier: str = 'output'
    weights: str = ''
    alias_of: Optional[str] = None
    source: str = ''

    @property
    def canonical_name(self):
        """The entry's own name (an alias resolved)."""
        return self.alias_of or self.name

    @property
    def params(self):
        """Learnable parameters (classes=1000), from ``model_numbers.json``; None if absent."""
        return load_numbers().get(self.canonical_name, {}).get('params')

    @property
    def macs(self):
        """MACs per image at ``input_size``, from ``model_numbers.json``; None if absent."""
        return load_numbers().get(self.canonical_name, {}).get('macs')

    @property
    def converter(self):
        """``fn(name, state_dict, **kwargs) -> ConversionPlan`` for the authors' checkpoints."""
        return _CONVERTERS.get(self.canonical_name) or _CONVERTERS.get(self.name) \
            or _CONVERTERS.get(self.family)

    @property
    def training(self):
        """The family's :class:`TrainingPlugin`."""
        return _FAMILIES[self.family].training if self.family in _FAMILIES else TrainingPlugin()

    @property
    def reference_init(self):
        """The authors' initialiser for this model (``mx.init.Initializer``), or None when
        the family registered none (``register_family(reference_init=...)``)."""
        family = _FAMILIES.get(self.family)
        make = family.reference_init if family is not None else None
        return make(self.canonical_name) if make is not None else None


_REGISTRY = OrderedDict()       # name -> ModelInfo (aliases included)
_FAMILIES = OrderedDict()       # name -> FamilyInfo
_CONVERTERS = {}                # family or model name -> converter
_LOCK = threading.RLock()


def _merged_data_config(*configs):
    out = dict(IMAGENET_DATA_CONFIG)
    for config in configs:
        out.update(config or {})
    out['input_size'] = tuple(int(v) for v in out['input_size'])
    out['mean'] = tuple(float(v) for v in out['mean'])
    out['std'] = tuple(float(v) for v in out['std'])
    return out


def _caller_source(depth=2):
    frame = sys._getframe(depth)
    return '%s:%d' % (_relative(frame.f_code.co_filename), frame.f_lineno)


def _relative(path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.abspath(path)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


def register_family(name, paper='', reference='', data_config=None, classifier='output',
                    weights='', training=None, reference_init=None):
    """Declare a family before its models: what they share (see :class:`FamilyInfo`).

    ``data_config`` entries override :data:`IMAGENET_DATA_CONFIG`; ``training`` is the
    family's :class:`TrainingPlugin` (default: none); ``reference_init`` is
    ``fn(model_name) -> mx.init.Initializer``, the authors' initialisation.
    """
    with _LOCK:
        if name in _FAMILIES:
            raise ValueError('family %r is registered twice' % name)
        module = sys._getframe(1).f_globals.get('__name__', '')
        _FAMILIES[name] = FamilyInfo(name=name, paper=paper, reference=reference,
                                     data_config=dict(data_config or {}),
                                     classifier=classifier, weights=weights,
                                     training=training or TrainingPlugin(), module=module,
                                     reference_init=reference_init)
        return _FAMILIES[name]


def register_model(family, paper=None, reference=None, input_size=None, min_input_size=32,
                   slow=False, name=None, data_config=None, classifier=None, weights=None,
                   **default_kwargs):
    """Decorator registering ``fn(classes=1000, **kwargs) -> HybridBlock`` under its name.

    The name is ``fn.__name__`` or ``name`` (for names that are not identifiers, e.g.
    ``'shufflenet_1x_g3'``). ``family`` must be declared with :func:`register_family`;
    ``paper``, ``reference``, ``data_config`` (merged over the family's), ``classifier``
    and ``weights`` default to the family's. ``default_kwargs`` are bound when the model
    is built through :func:`get_model` (user kwargs override them); prefer writing them
    into the function.
    """
    for legacy in ('params', 'macs'):
        if legacy in default_kwargs:
            raise TypeError('register_model(%s=...): parameter and MAC counts live in '
                            'model_numbers.json (python -m gluon_nets.summary --regenerate)'
                            % legacy)

    def decorator(fn):
        model_name = (name or fn.__name__).lower()
        with _LOCK:
            if family not in _FAMILIES:
                raise ValueError('model %r: family %r is not declared (register_family first)'
                                 % (model_name, family))
            if model_name in _REGISTRY:
                raise ValueError('model %r is registered twice' % model_name)
            fam = _FAMILIES[family]
            config = _merged_data_config(fam.data_config, data_config)
            size = int(input_size or config['input_size'][-1])
            if input_size:
                config['input_size'] = (config['input_size'][0], size, size)
            doc = (fn.__doc__ or '').strip().splitlines()
            code = getattr(fn, '__code__', None) or getattr(fn.__init__, '__code__', None)
            _REGISTRY[model_name] = ModelInfo(
                name=model_name, family=family, fn=fn,
                paper=fam.paper if paper is None else paper,
                reference=fam.reference if reference is None else reference,
                input_size=size, min_input_size=min_input_size,
                default_kwargs=dict(default_kwargs), slow=slow,
                description=doc[0] if doc else '', data_config=config,
                classifier=fam.classifier if classifier is None else classifier,
                weights=fam.weights if weights is None else weights,
                source=('%s:%d' % (_relative(code.co_filename), code.co_firstlineno)
                        if code else ''))
        return fn
    return decorator


def register_alias(alias, target, **changes):
    """Register ``alias`` as another name of the registered model ``target`` (same
    constructor, defaults and numbers; ``changes`` may set e.g. ``slow``)."""
    alias = alias.lower()
    with _LOCK:
        if alias in _REGISTRY:
            raise ValueError('model %r is registered twice' % alias)
        if target not in _REGISTRY or _REGISTRY[target].alias_of:
            raise ValueError('alias %r: target %r is not a registered model' % (alias, target))
        _REGISTRY[alias] = replace(_REGISTRY[target], name=alias, alias_of=target,
                                   source=_caller_source(), **changes)


def register_converter(family, models=None):
    """Decorator: ``fn(name, state_dict, **kwargs) -> ConversionPlan`` for a family, or
    only for the registry names in ``models`` (which then take precedence over the
    family's converter)."""
    def decorator(fn):
        with _LOCK:
            for key in (models or [family]):
                _CONVERTERS[key] = fn
        return fn
    return decorator


def read_mxnet_params(path):
    """An ``mx.nd.save`` / ``save_parameters`` file -> {key: numpy array}, keys as stored
    (Symbol checkpoints keep their ``arg:``/``aux:`` prefixes). ``FileNotFoundError`` if
    absent, :class:`ConversionError` naming the file if it is not such a file. (Here, not
    in ``convert``, because family converters use it and may not import ``convert``.)"""
    if not os.path.isfile(path):
        raise FileNotFoundError('checkpoint %s does not exist' % path)
    import mxnet as mx
    try:
        loaded = mx.nd.load(path)
        return {k: v.asnumpy() for k, v in loaded.items()}
    except Exception as err:  # not an MXNet parameter file (or a list-saved one)
        raise ConversionError('cannot read %s as an MXNet .params file: %s'
                              % (path, mxnet_error_line(err))) from None


# --------------------------------------------------------------------- family discovery
_FAMILY_PACKAGE = 'gluon_nets.models'
_LOADED = False


@contextlib.contextmanager
def family_import(family_module):
    """Register what ``family_module`` registers, or nothing: on an exception the
    registry is restored and an ``ImportError`` naming the family is raised."""
    with _LOCK:
        saved = (OrderedDict(_REGISTRY), OrderedDict(_FAMILIES), dict(_CONVERTERS))
        try:
            yield
        except Exception as err:
            for table, old in zip((_REGISTRY, _FAMILIES, _CONVERTERS), saved):
                table.clear()
                table.update(old)
            raise ImportError('model family %s failed to import (%s: %s); the registry is '
                              'unchanged' % (family_module, type(err).__name__, err)) from err


def _load_families():
    """Import the family package once (its ``__init__`` imports every family module
    through :func:`family_import`)."""
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if not _LOADED:
            importlib.import_module(_FAMILY_PACKAGE)
            _LOADED = True


# --------------------------------------------------------------------------- look-ups
def list_models(pattern=None, family=None, exclude=None, include_aliases=True):
    """Sorted registered names.

    ``pattern``: an fnmatch pattern (``'oct_resnet*'``) or a list of them; a pattern with
    no wildcard that names a family lists that family (``list_models('octconv')``, as
    before). ``exclude``: patterns to leave out. ``family``: one family only.
    """
    _load_families()
    names = sorted(n for n, info in _REGISTRY.items()
                   if (family is None or info.family == family)
                   and (include_aliases or not info.alias_of))
    if pattern is not None:
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        keep = set()
        for pat in patterns:
            pat = pat.lower()
            if not any(c in pat for c in '*?[') and pat in _FAMILIES:
                keep.update(n for n in names if _REGISTRY[n].family == pat)
            else:
                keep.update(fnmatch.filter(names, pat))
        names = [n for n in names if n in keep]
    if exclude:
        excluded = [exclude] if isinstance(exclude, str) else list(exclude)
        names = [n for n in names if not any(fnmatch.fnmatch(n, p.lower()) for p in excluded)]
    return names


def list_families():
    """Sorted family names."""
    _load_families()
    return sorted(_FAMILIES)


def get_family(name):
    """The :class:`FamilyInfo` of family ``name``."""
    _load_families()
    if name not in _FAMILIES:
        raise ValueError('unknown family %r; families: %s' % (name, ', '.join(sorted(_FAMILIES))))
    return _FAMILIES[name]


def cheapest_per_family():
    """Sorted names of the cheapest non-slow model of each family (fewest MACs, then
    params, then name): the representatives that quick checks and benches use."""
    _load_families()
    best = {}
    for info in _REGISTRY.values():
        if info.slow or info.alias_of:
            continue
        key = (info.macs or 0, info.params or 0, info.name)
        if info.family not in best or key < best[info.family]:
            best[info.family] = key
    return sorted(key[2] for key in best.values())


def get_model_info(name):
    """The :class:`ModelInfo` of ``name``; ``ValueError`` naming close matches if unknown."""
    _load_families()
    key = str(name).lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=5, cutoff=0.5)
    hint = ('; did you mean %s?' % ', '.join(close)) if close else ''
    raise ValueError('unknown model %r%s (list_models() lists all %d)'
                     % (name, hint, len(_REGISTRY))) from None


_NUMBERS = None


def load_numbers(path=None):
    """{model name: {'params', 'macs', 'input_size'}} from ``model_numbers.json``."""
    global _NUMBERS
    if path is not None:
        with open(path) as f:
            return json.load(f)
    if _NUMBERS is None:
        try:
            with open(NUMBERS_FILE) as f:
                _NUMBERS = json.load(f)
        except FileNotFoundError:
            _NUMBERS = {}
    return _NUMBERS


def parse_model_kwargs(text, flag='--model-kwargs', alpha=None):
    """A command line's JSON model kwargs (and ``--alpha``) -> dict; ``ValueError`` naming
    ``flag`` when the text is not a JSON object."""
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
            value = hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
        parts.append('%s%s' % (key, value))
    return ('_' + '_'.join(parts)) if parts else ''


def default_model_root():
    """Where converted weights live: ``$MXNET_HOME/models`` (GluonCV's rule), else
    ``~/.mxnet/models``."""
    return os.path.join(os.environ.get('MXNET_HOME') or os.path.join('~', '.mxnet'), 'models')


def _explicit_defaults(info):
    """The constructor's keyword defaults (signature and registered defaults)."""
    import inspect
    defaults = {k: p.default for k, p in inspect.signature(info.fn).parameters.items()
                if p.default is not inspect.Parameter.empty}
    defaults.update(info.default_kwargs)
    return defaults


def canonical_kwargs(name, **kwargs):
    """``kwargs`` without the ones equal to the model's defaults (and without
    ``classes``): two spellings of the same model give the same dict."""
    defaults = _explicit_defaults(get_model_info(name))
    out = {}
    for key, value in kwargs.items():
        if key == 'classes':
            continue
        if key in defaults and _same_value(defaults[key], value):
            continue
        out[key] = value
    return out


def _same_value(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def pretrained_path(name, root=None, **kwargs):
    """Where ``get_model(name, pretrained=True, **kwargs)`` looks for converted weights:
    ``<root>/<canonical name><tag of the non-default kwargs>.params`` (aliases resolved,
    defaults dropped, so ``oct_resnet152`` and ``oct_resnet152_v1f, alpha=0.125`` are one
    file); ``root`` defaults to :func:`default_model_root`."""
    info = get_model_info(name)
    tag = _kwargs_tag(canonical_kwargs(info.name, **kwargs))
    return os.path.join(os.path.expanduser(root or default_model_root()),
                        info.canonical_name + tag + '.params')


def build_model(info, classes=1000, **kwargs):
    """Call the constructor of ``info`` with its default kwargs under ``kwargs``; bad
    kwargs become :class:`ModelConstructionError` naming the model. The net gets
    ``get_classifier()`` and ``reset_classifier(num_classes)`` (timm's names)."""
    build_kwargs = copy.deepcopy(info.default_kwargs)
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
    _attach_classifier_methods(net, info.classifier)
    return net


def _attach_classifier_methods(net, attr):
    import types
    from .nn import features

    def get_classifier(self):
        """The final layer (attribute ``%s`` of this model)."""
        return features.get_classifier(self, attr)

    def reset_classifier(self, num_classes, init=None, ctx=None):
        """Replace the final layer by a fresh one with ``num_classes`` outputs."""
        return features.reset_classifier(self, attr, num_classes, init=init, ctx=ctx)
    # plain attributes (functions are not Blocks, so Gluon does not register them)
    object.__setattr__(net, 'get_classifier', types.MethodType(get_classifier, net))
    object.__setattr__(net, 'reset_classifier', types.MethodType(reset_classifier, net))
    object.__setattr__(net, 'classifier_name', attr)
    if attr != CLASSIFIER_ATTR and not hasattr(net, CLASSIFIER_ATTR):
        net.__class__ = _with_classifier_alias(type(net), attr)


#: the one attribute name of the final layer on every model :func:`get_model` builds
#: (timm's most common name, and already the structural name of MENet, HH-ResNet and
#: the OctConv Symbol-API nets). Families whose checkpoints name it otherwise (``fc``:
#: ED-Net, ScaleNet, LW-DNA; ``classifer``: OctConv's Gluon API, as the authors spell
#: it) keep that structural name -- their ``.params`` files and converters are
#: unchanged -- and get ``classifier`` as an alias (:func:`_with_classifier_alias`).
CLASSIFIER_ATTR = 'classifier'
_ALIAS_CLASSES = {}


def _with_classifier_alias(cls, attr):
    """A subclass of ``cls`` whose ``classifier`` reads (and assigns) the block at
    attribute path ``attr``. A property, not a second child: the parameters keep their
    one structural name (``fc.weight``), so checkpoints save and load as before."""
    key = (cls, attr)
    if key in _ALIAS_CLASSES:
        return _ALIAS_CLASSES[key]
    from .nn import features

    def read(self):
        return features.get_classifier(self, attr)

    def assign(self, name, value):
        if name == CLASSIFIER_ATTR:        # net.classifier = Dense(...) replaces ``attr``
            parent, last = features._classifier_parent(self, attr)
            setattr(parent, last, value)
            return
        cls.__setattr__(self, name, value)

    alias = type(cls.__name__, (cls,), {
        CLASSIFIER_ATTR: property(read, doc='the final layer (structural name %r)' % attr),
        '__setattr__': assign, '__module__': cls.__module__,
        '__qualname__': getattr(cls, '__qualname__', cls.__name__),
        '__doc__': cls.__doc__})
    _ALIAS_CLASSES[key] = alias
    return alias


def _gluoncv_zoo():
    """``gluoncv.model_zoo`` or None (gluoncv missing or broken: its names are unknown)."""
    try:
        from ._compat import import_gluoncv
        return import_gluoncv().model_zoo
    except Exception:
        return None


def _gluoncv_names():
    zoo = _gluoncv_zoo()
    return {n.lower() for n in zoo.get_model_list()} if zoo is not None else set()


def _gluoncv_classifier(net):
    for attr in ('output', 'fc', 'classifier', 'head'):
        if hasattr(net, attr):
            return attr
    return None


_GLUONCV_INFOS = {}


def gluoncv_model_info(name):
    """A :class:`ModelInfo` (family ``'gluoncv'``, ImageNet's ``data_config``, the net's
    classifier attribute) for a ``gluoncv.model_zoo`` name that is not ours; None when
    GluonCV does not know ``name`` (or is not installed). Its ``fn(classes, **kwargs)``
    builds GluonCV's net: the trainer, ``eval.py`` and the run records use it as any
    entry."""
    key = str(name).lower()
    if key in _GLUONCV_INFOS:
        return _GLUONCV_INFOS[key]
    if key not in _gluoncv_names():
        return None
    zoo = _gluoncv_zoo()

    def build(classes=1000, **kwargs):
        return zoo.get_model(key, classes=classes, **kwargs)
    build.__name__ = key
    classifier = _gluoncv_classifier(zoo.get_model(key)) or 'output'
    info = ModelInfo(name=key, family='gluoncv', fn=build, paper='GluonCV model zoo',
                     reference='dmlc/gluon-cv: gluoncv.model_zoo.get_model(%r)' % key,
                     data_config=_merged_data_config(), classifier=classifier,
                     weights='GluonCV\'s pretrained weights (downloaded by GluonCV)',
                     description="GluonCV's %s (not a gluon_nets model)" % key)
    _GLUONCV_INFOS[key] = info
    return info


def find_model_info(name):
    """:func:`get_model_info`, or for a name only GluonCV knows its
    :func:`gluoncv_model_info`; the registry's ``ValueError`` (close matches) if neither
    knows ``name``."""
    try:
        return get_model_info(name)
    except ValueError:
        info = gluoncv_model_info(name)
        if info is None:
            raise
        return info


def _gluoncv_model(name, classes, pretrained, ctx, root, kwargs):
    """A GluonCV model zoo name that is not ours -> GluonCV's net (None if unknown).
    ``pretrained`` with another class count than GluonCV's 1000: its weights, then a
    fresh classifier (logged), as for our models."""
    if str(name).lower() not in _gluoncv_names():
        return None
    import logging
    zoo = _gluoncv_zoo()
    log = logging.getLogger('gluon_nets')
    log.info('%s is not a gluon_nets model: building GluonCV\'s %s (gluoncv.model_zoo)',
             name, name)
    args = dict(kwargs)
    transfer = pretrained and classes != 1000
    if classes != 1000 and not transfer:
        args['classes'] = classes
    if root is not None:
        args['root'] = root
    if ctx is not None:
        args['ctx'] = ctx
    net = zoo.get_model(str(name).lower(), pretrained=pretrained, **args)
    attr = _gluoncv_classifier(net)
    if attr is not None:
        _attach_classifier_methods(net, attr)
    if transfer:
        if attr is None:
            raise ModelConstructionError('%s: GluonCV\'s net has no classifier attribute to '
                                         're-initialise for %d classes' % (name, classes))
        import mxnet as mx
        net.reset_classifier(classes)
        net.get_classifier().initialize(mx.init.Xavier(), ctx=ctx or mx.cpu())
        log.info('%s: GluonCV\'s pretrained weights; classifier %r re-initialised for %d '
                 'classes (the checkpoint has 1000)', name, attr, classes)
    return net


def get_model(name, classes=1000, pretrained=False, ctx=None, root=None,
              features_only=False, out_indices=None, **kwargs):
    """Build a registered model (or, for a name only GluonCV knows, GluonCV's model).

    Parameters
    ----------
    name : str
        A name from :func:`list_models` (case-insensitive), or a ``gluoncv.model_zoo``
        name (logged: "building GluonCV's ...").
    classes : int
        Number of output classes; the net maps (N, 3, H, W) images to (N, classes) logits.
    pretrained : bool
        Load converted weights from ``root`` (made with ``python -m gluon_nets.convert``;
        nothing is ever downloaded). With ``classes`` different from the checkpoint's,
        every weight but the classifier's is loaded and the classifier is initialised
        afresh for ``classes`` (one log line says so): transfer learning.
    ctx : mx.Context or list, optional
        Where pretrained weights are loaded (ignored otherwise; call ``initialize``).
    root : str, optional
        Folder of converted weights (default ``$MXNET_HOME/models`` or ``~/.mxnet/models``).
    features_only : bool
        Return the backbone: a HybridBlock mapping (N, 3, H, W) to the list of stage
        feature maps (reductions 2, 4, 8, 16, 32 as the model has them), with
        ``feature_info`` (``num_chs``, ``reduction``, ``module`` per output). Its
        parameters are the classifier model's (same structural names), so a converted
        checkpoint loads with ``load_parameters(path, ignore_extra=True)``.
    out_indices : sequence of int, optional
        Which stage outputs ``features_only`` returns (default: all).
    **kwargs
        Family options (``alpha`` for OctConv, ``config`` for LW-DNA, ...).

    Returns
    -------
    mxnet.gluon.HybridBlock, uninitialised unless ``pretrained``; it has
    ``get_classifier()`` and ``reset_classifier(num_classes)``.
    """
    try:
        info = get_model_info(name)
    except ValueError:
        net = _gluoncv_model(name, classes, pretrained, ctx, root, kwargs)
        if net is None:
            raise
        return net
    net = build_model(info, classes=classes, **kwargs)
    if pretrained:
        _load_pretrained(net, info, classes, ctx, pretrained_path(info.name, root=root, **kwargs),
                         kwargs)
    if features_only:
        net = feature_net(net, info, out_indices=out_indices, **kwargs)
    return net


def _load_pretrained(net, info, classes, ctx, path, kwargs):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            'no converted weights for %s at %s; make them from the authors\' checkpoint with:\n'
            '  python -m gluon_nets.convert --model %s%s --checkpoint CHECKPOINT --out %s'
            % (info.name, path, info.canonical_name,
               ''.join(' --%s %s' % (k.replace('_', '-'), v) for k, v in sorted(kwargs.items())
                       if k == 'alpha'), path))
    load_transfer_params(net, path, ctx=ctx, classifier=info.classifier, name=info.name)


def load_transfer_params(net, path, ctx=None, classifier=None, name=None):
    """Load ``path`` (a ``save_parameters`` file) into ``net`` for transfer learning.

    Every parameter is loaded; when the classifier's shapes differ (another class count)
    every parameter but the classifier's is loaded and the classifier (attribute
    ``classifier``, default ``net.classifier_name``) is initialised afresh with Xavier,
    which one log line says. Returns the number of classifier parameters re-initialised
    (0: everything loaded). :class:`ConversionError` naming the file when other
    parameters are missing, unexpected or of another shape."""
    import logging

    import mxnet as mx
    from .nn import features
    ctx = ctx or mx.cpu()
    classifier = classifier or getattr(net, 'classifier_name', 'output')
    name = name or type(net).__name__
    loaded = read_mxnet_params(path)
    ours = net._collect_params_with_prefix()
    head = classifier + '.'
    skipped = []
    for key, value in loaded.items():
        param = ours.get(key)
        if key.startswith(head) and param is not None and param.shape is not None and \
                (len(param.shape) != len(value.shape) or
                 any(s and s != v for s, v in zip(param.shape, value.shape))):
            skipped.append((key, value.shape))
    if not skipped:
        try:
            net.load_parameters(path, ctx=ctx)
        except (AssertionError, mx.base.MXNetError, ValueError) as err:
            raise ConversionError('%s does not fit %s: %s'
                                  % (path, name, mxnet_error_line(err)[:400])) from None
        return 0
    loaded = {k: v for k, v in loaded.items() if k not in dict(skipped)}
    missing = sorted(set(ours) - set(loaded))
    if any(not k.startswith(head) for k in missing):
        raise ConversionError('%s does not fit %s: missing %s'
                              % (path, name, ', '.join(k for k in missing
                                                       if not k.startswith(head))[:300]))
    extra = sorted(set(loaded) - set(ours))
    if extra:
        raise ConversionError('%s does not fit %s: unexpected %s'
                              % (path, name, ', '.join(extra[:5])))
    for key, value in loaded.items():
        shape = ours[key].shape
        if shape is not None and all(shape) and tuple(shape) != tuple(value.shape):
            raise ConversionError('%s does not fit %s: %s has shape %s, the model %s'
                                  % (path, name, key, tuple(value.shape), tuple(shape)))
        ours[key]._load_init(mx.nd.array(value, dtype=ours[key].dtype or 'float32'), ctx)
    features.get_classifier(net, classifier).initialize(mx.init.Xavier(), ctx=ctx,
                                                        force_reinit=True)
    logging.getLogger('gluon_nets').info(
        '%s: loaded %d pretrained parameters from %s; classifier %r re-initialised for '
        '%s classes (the checkpoint has %s)', name, len(loaded), path, classifier,
        _out_units(net, classifier), skipped[0][1][0])
    return len(skipped)


def _out_units(net, classifier):
    from .nn import features
    layer = features.get_classifier(net, classifier)
    units = getattr(layer, '_units', None) or getattr(layer, '_channels', None)
    return units if units is not None else '?'


def feature_net(net, info=None, out_indices=None, input_size=None, **kwargs):
    """The backbone of ``net`` (see ``get_model(features_only=True)``)."""
    from .nn.features import FeatureNet, find_stage_outputs
    size = input_size or (info.input_size if info else 224)
    stages = find_stage_outputs(net, (1, 3, size, size))
    if out_indices is not None:
        try:
            stages = [stages[i] for i in out_indices]
        except (IndexError, TypeError):
            raise ModelConstructionError('%s: out_indices %r; the model has %d stage outputs '
                                         '(reductions %s)' % (
                                             info.name if info else type(net).__name__,
                                             out_indices, len(stages),
                                             [r for _, _, r in stages])) from None
    head = (info.classifier if info else getattr(net, 'classifier_name', '')).split('.')[0]
    return FeatureNet(net, stages, exclude=(head,))


def get_model_list():
    """All registered names (GluonCV's spelling of :func:`list_models`)."""
    return list_models()


# ----------------------------------------------------------- the one preprocessing record
def resolve_data_config(name=None, **overrides):
    """The ``data_config`` of model ``name`` (or ImageNet's) with ``overrides`` applied.

    Keys: ``input_size`` (C, H, W) -- an int gives (3, n, n) --, ``crop_ratio``, ``mean``
    and ``std`` (RGB, 0-1 scale), ``interpolation`` ('bilinear', 'bicubic', ...),
    ``num_classes``. Overrides whose value is None are ignored.
    """
    base = find_model_info(name).data_config if name else IMAGENET_DATA_CONFIG
    config = dict(base)
    for key, value in overrides.items():
        if key not in IMAGENET_DATA_CONFIG:
            raise ValueError('unknown data_config key %r (keys: %s)'
                             % (key, ', '.join(sorted(IMAGENET_DATA_CONFIG))))
        if value is None:
            continue
        if key == 'input_size' and isinstance(value, int):
            value = (3, value, value)
        config[key] = value
    return _merged_data_config(config)


def model_record(name, kwargs, data_config, class_names=None, **extra):
    """The JSON-able description of a trained or exported net that run directories
    (``model.json``) and exports (``*-deploy.json``) both write: ``model`` (canonical
    registry name), ``kwargs``, ``data_config`` (as :func:`resolve_data_config`),
    ``class_names`` (list or None) and any ``extra`` keys."""
    config = _merged_data_config(data_config)
    record = dict(extra)
    record.update(model=find_model_info(name).canonical_name if name else None,
                  kwargs=dict(kwargs or {}),
                  data_config={k: list(v) if isinstance(v, tuple) else v
                               for k, v in config.items()},
                  class_names=list(class_names) if class_names else None)
    return record


def read_model_record(record, where='model record'):
    """A record from :func:`model_record` (or an older ``model.json`` with top-level
    ``classes``/``input_size``/``mean``/``std``/``crop_ratio``) -> the same dict with a
    complete ``data_config`` (tuples). ``ValueError`` naming ``where`` if malformed."""
    if not isinstance(record, dict):
        raise ValueError('%s is not a JSON object' % where)
    record = dict(record)
    config = record.get('data_config')
    if config is None:   # written by gluon_nets 0.1
        config = {}
        if record.get('input_size'):
            config['input_size'] = (3, int(record['input_size']), int(record['input_size']))
        for old, new in (('classes', 'num_classes'), ('crop_ratio', 'crop_ratio'),
                         ('mean', 'mean'), ('std', 'std')):
            if record.get(old) is not None:
                config[new] = record[old]
    if not isinstance(config, dict):
        raise ValueError('%s: data_config is not an object' % where)
    try:
        record['data_config'] = _merged_data_config(config)
    except (TypeError, ValueError) as err:
        raise ValueError('%s: bad data_config (%s)' % (where, err)) from None
    record.setdefault('kwargs', {})
    record.setdefault('class_names', None)
    return record
