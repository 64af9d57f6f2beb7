"""Command-line flags of ``train_imagenet.py``: GluonCV's names and meanings
(``scripts/classification/imagenet/train_imagenet.py``) plus ours, and their checks.

The trainer knows no family: each family's :class:`~gluon_nets.model_zoo.ModelOption` s
(``get_family(name).training.options``) join the parser in an argument group of
their own, and :func:`constructor_kwargs` maps the ones with a ``kwarg`` to the
model constructor. Building the parser imports every family, hence MXNet: set the
thread count first (:func:`set_threads_from_argv`).
"""
import argparse
import importlib
import importlib.util
import inspect
import json
import os
from collections import OrderedDict
from dataclasses import dataclass

from ..model_zoo import ModelOption
from ..utils import threads

__all__ = ['build_parser', 'parse_args', 'set_threads_from_argv', 'UsageError',
           'GENERIC_MODEL_OPTIONS', 'family_options', 'constructor_kwargs', 'option_given',
           'import_modules', 'values_in_argv', 'RESUME_OVERRIDABLE', 'RESUME_SCHEDULE_OVERRIDES']


class UsageError(ValueError):
    """A flag combination that cannot run; the message says which flag."""


def _float_list(text):
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated numbers, got %r' % text) from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError('expected 3 numbers (R,G,B), got %r' % text)
    return values


def _json_dict(text):
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError('not valid JSON (%s): %r' % (err, text)) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object like \'{"ed": 4}\', got %r' % text)
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected an integer, got %r' % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError('must be >= 1, got %d' % value)
    return value


#: GluonCV's flags that are constructor keywords of many families' models. A model whose
#: signature names the keyword gets it; one without it is refused unless the signature
#: has ``**kwargs`` (the constructor then decides).
GENERIC_MODEL_OPTIONS = (
    ModelOption(('--use-se', '--use_se'), dict(dest='use_se', action='store_true',
                help='SE blocks (models whose constructor has use_se)'), kwarg='use_se'),
    ModelOption(('--final-drop',), dict(type=float, default=None,
                help='dropout before the classifier (models whose constructor has final_drop)'),
                kwarg='final_drop'),
    ModelOption(('--last-gamma',), dict(action='store_true',
                help='zero-init the last BN gamma of each residual block (models with last_gamma)'),
                kwarg='last_gamma'),
)


@dataclass(frozen=True)
class FamilyOption:
    """A :class:`ModelOption` and the families declaring it (identical declarations
    are merged)."""
    option: ModelOption
    families: tuple


def _comparable(option):
    return option.flags, option.kwarg, {k: v for k, v in option.argparse.items() if k != 'help'}


def family_options():
    """{dest: :class:`FamilyOption`} of every registered family, in family order.

    Two families may declare the same option (same flags, kwarg and argparse settings;
    the help text may differ): it is listed once. A flag two families declare
    differently is a registry bug: ``ValueError`` naming both."""
    from ..model_zoo import get_family, list_families
    merged = OrderedDict()
    owner_of_flag = {}
    for family in list_families():
        for option in get_family(family).training.options or ():
            known = merged.get(option.dest)
            if known is not None and _comparable(known.option) == _comparable(option):
                merged[option.dest] = FamilyOption(known.option, known.families + (family,))
                continue
            if known is not None:
                raise ValueError('families %s and %s both declare %s differently'
                                 % (known.families[0], family, '/'.join(option.flags)))
            for flag in option.flags:
                if flag in owner_of_flag:
                    raise ValueError('families %s and %s both declare %s differently'
                                     % (owner_of_flag[flag], family, flag))
                owner_of_flag[flag] = family
            merged[option.dest] = FamilyOption(option, (family,))
    return merged


def _add_family_options(parser):
    """One argument group per family with options (``--help`` lists them per family).
    ``ValueError`` for a family option that is already a trainer flag or destination."""
    taken_dests = {action.dest for action in parser._actions}
    groups = {}
    for entry in family_options().values():
        option, family = entry.option, entry.families[0]
        taken = [f for f in option.flags if f in parser._option_string_actions]
        if taken or option.dest in taken_dests:
            raise ValueError('family %s declares %s, which the trainer already has'
                             % (family, '/'.join(taken) or 'destination ' + option.dest))
        if family not in groups:
            groups[family] = parser.add_argument_group(
                '%s family options' % family, 'refused for models that do not take them')
        settings = dict(option.argparse)
        if len(entry.families) > 1:
            settings['help'] = '%s (families: %s)' % (settings.get('help', ''),
                                                     ', '.join(entry.families))
        groups[family].add_argument(*option.flags, **settings)
        taken_dests.add(option.dest)


def build_parser(with_families=True):
    """The trainer's parser: GluonCV's flags, ours and (``with_families``) every
    family's options. Building it with families imports them (and MXNet)."""
    p = argparse.ArgumentParser(
        prog='train_imagenet.py',
        description='Train a gluon_nets model on ImageNet-style data (RecordIO shards, an image '
                    'folder tree or the embedded fashion-mnist-mini set), GluonCV style.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group('data')
    d.add_argument('--dataset', default=None,
                   help='embedded dataset name (fashion-mnist-mini; default when no other data flag)')
    d.add_argument('--rec-train', default=None, help='training .rec: a file, a comma list or a glob of shards')
    d.add_argument('--rec-train-idx', default=None, help='their .idx files (default: beside each .rec)')
    d.add_argument('--rec-val', default=None, help='validation .rec (file, list or glob)')
    d.add_argument('--rec-val-idx', default=None, help='their .idx files (default: beside each .rec)')
    d.add_argument('--use-rec', action='store_true', help='accepted for GluonCV commands; --rec-train implies it')
    d.add_argument('--data-dir', default=None,
                   help='image-folder tree with train/<class>/* and val/<class>/*')
    d.add_argument('--data-backend', default='mxnet', choices=['mxnet'],
                   help='only the MXNet backend (GluonCV\'s DALI backends are not supported)')
    d.add_argument('--input-size', type=_positive_int, default=None,
                   help='training/validation crop size (default: the embedded dataset\'s, 32 '
                        'for fashion-mnist-mini, else the model\'s data_config: 224)')
    d.add_argument('--crop-ratio', type=float, default=None,
                   help='validation: resize to ceil(input_size/crop_ratio), centre crop '
                        '(default: the dataset\'s or the model\'s, 0.875)')
    d.add_argument('--min-random-area', type=float, default=None,
                   help='smallest random-resized-crop area (GluonCV 0.08; dataset default)')
    d.add_argument('--rgb-mean', type=_float_list, default=None,
                   help='R,G,B mean on the 0-255 scale (default: the dataset\'s, ImageNet\'s for own data)')
    d.add_argument('--rgb-std', type=_float_list, default=None, help='R,G,B std on the 0-255 scale')
    d.add_argument('--jitter', '--color-jitter', dest='jitter', type=float, default=None,
                   help='brightness/contrast/saturation jitter of the training images (0: none; '
                        'default: the dataset\'s recipe, GluonCV\'s 0.4 for own data)')
    d.add_argument('--no-jitter', action='store_true', help='no colour jitter (= --jitter 0)')
    d.add_argument('--lighting', '--pca-noise', dest='lighting', type=float, default=None,
                   help='PCA lighting noise (AlexNet\'s) of the training images (0: none; '
                        'default: the dataset\'s recipe, GluonCV\'s 0.1 for own data)')
    d.add_argument('--no-lighting', action='store_true', help='no PCA lighting (= --lighting 0)')
    d.add_argument('--no-flip', '--no-rand-mirror', dest='no_flip', action='store_true',
                   help='no random horizontal flip of the training images (default: flip)')
    d.add_argument('-j', '--num-data-workers', '--num-workers', dest='num_workers', type=int,
                   default=4,
                   help='decoding/augmentation threads (RecordIO) or processes (folders)')
    d.add_argument('--skip-bad-images', action='store_true',
                   help='leave out images that do not decode (counted in the log) instead of '
                        'stopping before the first epoch; list them with '
                        '`python -m gluon_nets.data.check PATH`')
    d.add_argument('--batch-size', type=_positive_int, default=32, help='batch size per device')
    d.add_argument('--num-gpus', type=int, default=0, help='number of GPUs (0: CPU)')
    d.add_argument('--ctx', default=None, help='devices, e.g. "cpu" or "gpu0,gpu1" (overrides --num-gpus)')
    d.add_argument('--num-training-samples', type=int, default=None,
                   help='accepted for GluonCV commands; the count is read from the data')

    m = p.add_argument_group('model')
    m.add_argument('--model', default=None, help='a name from gluon_nets.list_models()')
    m.add_argument('--num-classes', type=_positive_int, default=None,
                   help='classes (default: the class folders of --data-dir, the embedded '
                        'dataset\'s count, else the model\'s: 1000)')
    for option in GENERIC_MODEL_OPTIONS:
        m.add_argument(*option.flags, **option.argparse)
    m.add_argument('--model-kwargs', type=_json_dict, default={},
                   help='extra constructor kwargs as JSON, e.g. \'{"ed": 4}\'')
    m.add_argument('--dtype', default='float32', choices=['float32', 'float16'],
                   help='float16 = multi-precision SGD, GPU only')
    m.add_argument('--use-pretrained', action='store_true',
                   help='start from converted weights (python -m gluon_nets.convert; GluonCV\'s '
                        'for a GluonCV name); with --num-classes other than the checkpoint\'s, '
                        'every weight but the classifier\'s is loaded (fine-tuning)')
    m.add_argument('--pretrained-params', default=None, metavar='FILE',
                   help='start from these parameters (a run\'s best.params, converted weights); '
                        'a classifier of another class count is re-initialised (fine-tuning)')
    m.add_argument('--init', default='default', choices=['default', 'reference', 'msra', 'xavier'],
                   help='initialisation of a fresh net: default (the net\'s own, else '
                        'MSRA-PReLU as GluonCV), reference (the family\'s authors\'), msra, xavier')
    m.add_argument('--import-module', action='append', default=[], metavar='MODULE',
                   help='import a module or .py file first (it may register_model your own nets)')
    m.add_argument('--mode', default='hybrid', choices=['hybrid', 'imperative'],
                   help='hybrid: static graph (fast); imperative: debugging')

    o = p.add_argument_group('optimisation')
    o.add_argument('--optimizer', default='nag', choices=['sgd', 'nag', 'rmsprop'],
                   help='SGD with momentum, Nesterov (GluonCV uses nag), or RMSprop (MXNet\'s: '
                        '--rmsprop-decay, --rmsprop-epsilon; --momentum is not used)')
    o.add_argument('--rmsprop-decay', type=float, default=0.9,
                   help='RMSprop: decay of the squared-gradient average (gamma1)')
    o.add_argument('--rmsprop-epsilon', type=float, default=1e-8, help='RMSprop: epsilon')
    o.add_argument('--lr-mult-backbone', type=float, default=None, metavar='MULT',
                   help='fine-tuning: learning-rate multiplier of every parameter but the '
                        'classifier\'s (GluonCV\'s lr_mult; 0.1 is common)')
    o.add_argument('--freeze-backbone', action='store_true',
                   help='fine-tuning: train the classifier only (no gradient for the rest; BN '
                        'running statistics still follow the new data)')
    o.add_argument('--lr', type=float, default=0.1, help='base learning rate (for the whole batch)')
    o.add_argument('--momentum', type=float, default=0.9)
    o.add_argument('--wd', type=float, default=0.0001, help='weight decay')
    o.add_argument('--no-wd', action='store_true', help='no weight decay on BN beta/gamma and biases')
    o.add_argument('--lr-mode', default='step', choices=['step', 'cosine', 'poly', 'linear', 'constant'])
    o.add_argument('--lr-decay', type=float, default=0.1, help='step factor')
    o.add_argument('--lr-decay-period', type=int, default=0, help='decay every N epochs (0: use --lr-decay-epoch)')
    o.add_argument('--lr-decay-epoch', default='40,60', help='epochs at which the step mode decays')
    o.add_argument('--warmup-epochs', type=int, default=0, help='linear warm-up epochs')
    o.add_argument('--warmup-lr', type=float, default=0.0, help='learning rate at the start of warm-up')
    o.add_argument('--label-smoothing', action='store_true', help='smooth one-hot labels by 0.1')
    o.add_argument('--mixup', action='store_true', help='mixup training')
    o.add_argument('--mixup-alpha', type=float, default=0.2, help='mixup Beta(alpha, alpha)')
    o.add_argument('--mixup-off-epoch', type=int, default=0, help='last N epochs without mixup')
    o.add_argument('--teacher', default=None,
                   help='teacher model name for distillation: ours (converted weights) or a '
                        'gluoncv.model_zoo name (GluonCV\'s weights), e.g. resnet152_v1d')
    o.add_argument('--teacher-kwargs', type=_json_dict, default={}, help='teacher constructor kwargs (JSON)')
    o.add_argument('--temperature', type=float, default=20, help='distillation temperature')
    o.add_argument('--hard-weight', type=float, default=0.5, help='weight of the one-hot loss when distilling')

    r = p.add_argument_group('run')
    r.add_argument('--num-epochs', type=_positive_int, default=3)
    r.add_argument('--save-dir', default='params', help='checkpoints, metrics.csv, curves.png, log')
    r.add_argument('--save-frequency', type=int, default=10,
                   help='also keep a GluonCV-named copy every N epochs (0: never)')
    r.add_argument('--resume', default=None, metavar='DIR',
                   help='continue the run saved in DIR (its arguments, schedule, RNG and metrics)')
    r.add_argument('--resume-epoch', type=int, default=0, help='GluonCV style: first epoch to train')
    r.add_argument('--resume-params', default='', help='GluonCV style: parameters to start from')
    r.add_argument('--resume-states', default='', help='GluonCV style: trainer states to start from')
    r.add_argument('--overwrite', action='store_true',
                   help='replace the run already in --save-dir: its run files (JSON, params, '
                        'states, CSV, PNG, logs) are deleted when the new run starts; without '
                        'it (or --resume) such a directory is refused')
    r.add_argument('--trust-checkpoint', action='store_true',
                   help='load a legacy pickled .states file (MXNet\'s Trainer.save_states): '
                        'unpickling runs code from the file, so only for files you made')
    r.add_argument('--deterministic', action='store_true',
                   help='bit-identical runs for the same --seed on CPU: MXNet\'s NaiveEngine '
                        '(synchronous, slower); needs -j 0 or 1')
    r.add_argument('--debug', action='store_true',
                   help='show the traceback of a failure instead of the one-line error')
    r.add_argument('--log-interval', type=int, default=50, help='log every N batches (0: never)')
    r.add_argument('--logging-file', default='train_imagenet.log', help='log file name inside --save-dir')
    r.add_argument('--kvstore', default='device',
                   choices=['device', 'local', 'dist_sync', 'dist_device_sync', 'dist_async'])
    r.add_argument('--horovod', action='store_true',
                   help='distributed training with Horovod instead of a dist kvstore (the '
                        'horovod extra; start the workers with horovodrun): gradients are '
                        'all-reduced, rank 0\'s parameters broadcast (docs/distributed.md)')
    r.add_argument('--seed', type=int, default=0, help='seeds init, shuffling, augmentation and mixup')
    r.add_argument('--threads', type=int, default=None,
                   help='OMP_NUM_THREADS for MXNet (default: all cores)')
    r.add_argument('--no-progress', action='store_true', help='no tqdm bar (logs only)')
    r.add_argument('--save-worker-state', action='store_true',
                   help='every worker writes worker-<rank>.params and the labels it trained on '
                        '(checks that distributed workers agree and read disjoint data)')
    r.add_argument('--max-iters', type=int, default=0,
                   help='stop each epoch after N batches (smoke tests; 0: full epochs)')
    if with_families:
        _add_family_options(p)
    return p


# flags that may differ on --resume without changing the run's arithmetic
RESUME_OVERRIDABLE = {'resume', 'threads', 'num_workers', 'log_interval', 'no_progress', 'logging_file',
                      'save_frequency', 'num_epochs', 'trust_checkpoint', 'debug', 'deterministic'}
# flags that may differ on --resume and change the rest of the schedule (the way out of a
# diverged run): recorded in the run's history (args.json and checkpoint.json)
RESUME_SCHEDULE_OVERRIDES = ('lr', 'wd', 'lr_mode', 'warmup_epochs')


def set_threads_from_argv(argv):
    """Set OMP_NUM_THREADS from ``--threads N`` before MXNet loads (see
    :func:`gluon_nets.utils.threads.set_threads_from_argv`)."""
    return threads.set_threads_from_argv(argv, prog='train_imagenet.py')


def values_in_argv(argv, flag):
    """Every value of ``flag V`` / ``flag=V`` in ``argv`` (for flags needed before the
    parser exists: ``--import-module`` and ``--resume``)."""
    values = []
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif token.startswith(flag + '='):
            values.append(token.split('=', 1)[1])
    return values


_IMPORTED_FILES = {}   # absolute path -> module: a .py given twice is run once


def import_modules(modules):
    """Import ``--import-module`` values (module names or ``.py`` files) once each.

    They may register models and whole families (with their training options), so the
    trainer imports them before it builds its parser. :class:`UsageError` (one line)
    for a missing file or a module that fails to import."""
    for name in modules or []:
        if not name.endswith('.py'):
            try:
                importlib.import_module(name)
            except Exception as err:
                raise UsageError('--import-module %s: %s: %s' % (name, type(err).__name__, err)) from None
            continue
        path = os.path.abspath(os.path.expanduser(name))
        if path in _IMPORTED_FILES:
            continue
        if not os.path.isfile(path):
            raise UsageError('--import-module %s: no such file' % name)
        spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise UsageError('--import-module %s: %s: %s' % (name, type(err).__name__, err)) from None
        _IMPORTED_FILES[path] = module


def parse_args(argv=None):
    """Parse and check the flags; argparse errors exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except UsageError as err:
        parser.error(str(err))
    return args


def check_args(args, resolved=False):
    """Raise :class:`UsageError` for values the trainer cannot honour. A ``--resume``
    run is checked once its saved arguments are ``resolved`` (with the overrides)."""
    if args.resume and not resolved:
        if getattr(args, 'overwrite', False):
            raise UsageError('--overwrite and --resume contradict each other: give one')
        return
    if not args.model:
        raise UsageError('--model is required (see gluon_nets.list_models())')
    if args.dataset:
        from gluon_nets.data import list_datasets
        if args.dataset.lower().replace('_', '-') not in list_datasets():
            raise UsageError('--dataset %s: unknown; embedded datasets: %s'
                             % (args.dataset, ', '.join(list_datasets())))
    sources = [f for f, v in (('--dataset', args.dataset), ('--rec-train', args.rec_train),
                              ('--data-dir', args.data_dir)) if v]
    if len(sources) > 1:
        raise UsageError('give one data source, not %s' % ' and '.join(sources))
    if args.use_rec and not args.rec_train:
        raise UsageError('--use-rec needs --rec-train and --rec-val (there are no default paths)')
    if args.rec_train and not args.rec_val:
        raise UsageError('--rec-train needs --rec-val')
    if args.rec_val and not args.rec_train:
        raise UsageError('--rec-val needs --rec-train')
    if args.crop_ratio is not None and not 0 < args.crop_ratio <= 1:
        raise UsageError('--crop-ratio must be in (0, 1], got %g' % args.crop_ratio)
    if args.min_random_area is not None and not 0 < args.min_random_area <= 1:
        raise UsageError('--min-random-area must be in (0, 1], got %g' % args.min_random_area)
    import math
    for dest, value in sorted(vars(args).items()):   # nan/inf pass every range check below
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise UsageError('--%s must be a finite number, got %s'
                             % (dest.replace('_', '-'), value))
    if args.lr <= 0:
        raise UsageError('--lr must be > 0, got %g' % args.lr)
    if args.wd < 0 or args.momentum < 0:
        raise UsageError('--wd and --momentum must be >= 0')
    if args.warmup_epochs < 0 or args.warmup_epochs >= args.num_epochs:
        raise UsageError('--warmup-epochs must be in [0, --num-epochs), got %d' % args.warmup_epochs)
    if args.mixup_off_epoch < 0 or args.mixup_alpha <= 0:
        raise UsageError('--mixup-alpha must be > 0 and --mixup-off-epoch >= 0')
    if args.teacher and not 0 <= args.hard_weight < 1:
        raise UsageError('--hard-weight must be in [0, 1) for distillation, got %g' % args.hard_weight)
    if args.lr_decay_period < 0:
        raise UsageError('--lr-decay-period must be >= 0')
    try:
        [int(e) for e in args.lr_decay_epoch.split(',') if e.strip()]
    except ValueError:
        raise UsageError('--lr-decay-epoch must be comma-separated integers, got %r' % args.lr_decay_epoch) from None
    if args.num_workers < 0:
        raise UsageError('-j/--num-data-workers must be >= 0')
    if args.num_gpus < 0:
        raise UsageError('--num-gpus must be >= 0')
    if args.max_iters < 0:
        raise UsageError('--max-iters must be >= 0')
    for flag, value in (('--save-frequency', args.save_frequency),
                        ('--log-interval', args.log_interval),
                        ('--resume-epoch', args.resume_epoch), ('--warmup-lr', args.warmup_lr)):
        if value < 0:
            raise UsageError('%s must be >= 0, got %g' % (flag, value))
    if args.lr_decay <= 0:
        raise UsageError('--lr-decay must be > 0, got %g' % args.lr_decay)
    if args.teacher and args.temperature <= 0:
        raise UsageError('--temperature must be > 0, got %g' % args.temperature)
    if args.resume_epoch >= args.num_epochs:
        raise UsageError('--resume-epoch %d: the run has only --num-epochs %d'
                         % (args.resume_epoch, args.num_epochs))
    for flag, path in (('--resume-params', args.resume_params),
                       ('--resume-states', args.resume_states)):
        if path and not os.path.isfile(os.path.expanduser(path)):
            raise UsageError('%s %s: no such file' % (flag, path))
    _check_fine_tuning_args(args)
    if getattr(args, 'deterministic', False) and args.num_workers > 1:
        raise UsageError('--deterministic needs -j 0 or -j 1 (several decoding threads '
                         'finish their images in a varying order), got -j %d' % args.num_workers)


def _check_fine_tuning_args(args):
    """Fine-tuning, augmentation and optimiser flags (added after the first release:
    ``getattr`` keeps an older run's ``args.json`` resumable)."""
    pretrained_params = getattr(args, 'pretrained_params', None)
    if pretrained_params:
        if args.use_pretrained:
            raise UsageError('--pretrained-params and --use-pretrained both give start weights: '
                             'give one')
        if args.resume_params:
            raise UsageError('--pretrained-params and --resume-params both give start weights: '
                             'give one')
        if not os.path.isfile(os.path.expanduser(pretrained_params)):
            raise UsageError('--pretrained-params %s: no such file' % pretrained_params)
    mult = getattr(args, 'lr_mult_backbone', None)
    if mult is not None and not (mult >= 0 and mult < float('inf')):
        raise UsageError('--lr-mult-backbone must be a number >= 0, got %g' % mult)
    if mult is not None and getattr(args, 'freeze_backbone', False):
        raise UsageError('--freeze-backbone and --lr-mult-backbone contradict each other: give one')
    for flag, dest, switch in (('--jitter', 'jitter', 'no_jitter'),
                               ('--lighting', 'lighting', 'no_lighting')):
        value = getattr(args, dest, None)
        if value is not None and not (0 <= value < float('inf')):
            raise UsageError('%s must be a number >= 0, got %g' % (flag, value))
        if value and getattr(args, switch, False):
            raise UsageError('%s %g and --no-%s contradict each other' % (flag, value, dest))
    if getattr(args, 'optimizer', 'nag') == 'rmsprop':
        if not 0 <= args.rmsprop_decay < 1:
            raise UsageError('--rmsprop-decay must be in [0, 1), got %g' % args.rmsprop_decay)
        if not args.rmsprop_epsilon > 0:
            raise UsageError('--rmsprop-epsilon must be > 0, got %g' % args.rmsprop_epsilon)


# --------------------------------------------------------------- flags -> constructor kwargs
def _option_default(option):
    settings = option.argparse
    if 'default' in settings:
        return settings['default']
    return {'store_true': False, 'store_false': True}.get(settings.get('action'))


def option_given(args, option):
    """True when ``args`` holds a value for ``option`` other than its default."""
    return getattr(args, option.dest, None) != _option_default(option)


def _signature(info):
    """(explicit parameter names, has ``**kwargs``) of the model's constructor."""
    try:
        params = inspect.signature(info.fn).parameters
    except (TypeError, ValueError):   # a builtin or odd callable: assume it takes anything
        return set(), True
    named = {n for n, p in params.items()
             if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
    return named | set(info.default_kwargs), any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())


def _takers(kwarg):
    from ..model_zoo import get_model_info, list_models
    return [n for n in list_models(include_aliases=False) if kwarg in _signature(get_model_info(n))[0]]


def _listed(names, limit=12):
    if not names:
        return 'none'
    more = len(names) - limit
    return ', '.join(names[:limit]) + (' (and %d more)' % more if more > 0 else '')


def constructor_kwargs(args, info):
    """The model constructor's kwargs from the flags: generic GluonCV flags, family
    options with a ``kwarg``, then ``--model-kwargs`` on top.

    :class:`UsageError` (one line naming the flag and the models that take it) when a
    family option is given for a model whose constructor does not name its keyword, a
    family option without a keyword is given for a model of another family, or a
    generic flag is given for a constructor that neither names it nor has ``**kwargs``.
    """
    from ..model_zoo import list_models
    named, open_kwargs = _signature(info)
    kwargs = {}
    for option in GENERIC_MODEL_OPTIONS:
        if not option_given(args, option):
            continue
        if option.kwarg not in named and not open_kwargs:
            raise UsageError('%s: model %s does not take %s; models that do: %s'
                             % (option.flags[0], info.name, option.kwarg,
                                _listed(_takers(option.kwarg))))
        kwargs[option.kwarg] = getattr(args, option.dest)
    for entry in family_options().values():
        option = entry.option
        if not option_given(args, option):
            continue
        if option.kwarg is None:
            if info.family not in entry.families:
                raise UsageError('%s: an option of the %s family; model %s is of family %s '
                                 '(models that take it: %s)'
                                 % (option.flags[0], '/'.join(entry.families), info.name,
                                    info.family, _listed([n for f in entry.families for n in
                                                          list_models(family=f)])))
            continue
        if option.kwarg not in named:
            raise UsageError('%s: model %s does not take %s; models that do: %s'
                             % (option.flags[0], info.name, option.kwarg,
                                _listed(_takers(option.kwarg))))
        kwargs[option.kwarg] = getattr(args, option.dest)
    kwargs.update(args.model_kwargs or {})
    return kwargs
