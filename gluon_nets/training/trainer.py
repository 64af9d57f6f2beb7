"""The training loop behind ``train_imagenet.py``.

It follows GluonCV's ``scripts/classification/imagenet/train_imagenet.py`` (same
flags, per-iteration LR schedule from gluoncv's ``LRSequential``/``LRScheduler``,
NAG, mixup, label smoothing, distillation, no-wd) and adds what a long run needs:
resumable atomic checkpoints, exact schedule/RNG continuation, a NaN guard, a
progress bar, CSV/PNG metrics and sharded data for distributed workers.

It knows no family: a family's flags come from its registry entry
(:mod:`.options`) and its own flow (LW-DNA's search before training) from its
:class:`~gluon_nets.model_zoo.TrainingPlugin`, which builds the net through a
:class:`~.session.TrainingSession`.

:func:`run` is a sequence of phases that share one :class:`_Run`: prepare (flags,
model check), connect (devices, workers), data config, run directory, data, model,
teacher, optimiser, the epochs, finish.
"""
import json
import logging
import math
import os
import random
import sys
import time

import numpy as np

from .options import (RESUME_OVERRIDABLE, RESUME_SCHEDULE_OVERRIDES, UsageError, build_parser,
                      check_args, constructor_kwargs, import_modules, set_threads_from_argv,
                      values_in_argv)
from ..utils.atomic import atomic_path
from ..utils.devices import DeviceError, check_dtype, parse_contexts
from ..utils.signals import Interrupted, StopSignals
from .checkpoint import (CheckpointError, RunDir, check_save_dir, check_saved_args, clear_run,
                         load_params, load_trainer_states, run_files)
from . import distributed
from .session import TrainingSession

__all__ = ['main', 'run', 'evaluate', 'TrainingError', 'NonFiniteLoss']

logger = logging.getLogger('gluon_nets.train')


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why."""


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite."""


class _Run:
    """What the phases of one run share; each phase fills in its part."""

    def __init__(self, args, info, kwargs, ignored):
        self.args, self.info, self.kwargs, self.ignored = args, info, kwargs, ignored
        self.ctx, self.kv, self.rank, self.num_workers, self.is_chief = None, None, 0, 1, True
        self.worker = None   # distributed.Worker: kvstore, rank, count
        self.data_config, self.class_names = None, None
        self.run_dir, self.record = None, None
        self.train_data, self.val_data, self.iters = None, None, 0
        self.net, self.net_name, self.net_kwargs, self.teacher = None, None, None, None
        self.trainer, self.update_on_kv = None, None
        self.start_epoch, self.rows, self.best = 0, [], -1.0
        self.seen_labels = []
        self.overrides = {}       # --resume schedule changes: {dest: [saved, new]}
        self.best_epoch = None
        self.warnings = []        # logged once the run's log exists

    @property
    def num_classes(self):
        return self.data_config['num_classes']

    @property
    def input_size(self):
        return self.data_config['input_size'][-1]


# ----------------------------------------------------------------------------- the run
def run(args, argv_for_resume=None):
    """Train with parsed ``args``; returns the list of per-epoch metric rows."""
    state = _prepare(args, argv_for_resume or [])
    try:
        _connect(state)
        _resolve_data_config(state)
        _prepare_run_dir(state)
        _load_data(state)
        _build_model(state)
        _build_teacher(state)
        _build_optimiser(state)
        _train_epochs(state)
        return _finish(state)
    except (Interrupted, OSError) as err:
        err.run_dir = state.run_dir     # main's message names the checkpoint that is kept
        raise


_STOP_SIGNALS = StopSignals()


# ---------------------------------------------------------------- phase 1: prepare
def _prepare(args, argv):
    """Final arguments (a resumed run's saved ones), every flag checked, the model's
    entry and constructor kwargs: any bad flag stops the run here, before any work."""
    ignored, overrides = [], {}
    if args.resume:
        args, ignored, overrides = _resolve_resume(args, argv)
    check_args(args, resolved=True)
    check_save_dir(args.save_dir, '--resume' if args.resume else '--save-dir')
    import_modules(getattr(args, 'import_module', None))
    from gluon_nets.model_zoo import find_model_info
    try:
        info = find_model_info(args.model)      # ours, else a gluoncv.model_zoo name
    except ValueError as err:   # unknown model: the message names close matches
        raise UsageError(str(err)) from None
    if args.teacher:
        try:
            find_model_info(args.teacher)
        except ValueError as err:
            raise UsageError('--teacher %s' % err) from None
    if getattr(args, 'init', 'default') == 'reference' and info.reference_init is None:
        raise UsageError('--init reference: family %s states no reference initialisation for '
                         '%s; use --init default, msra or xavier' % (info.family, info.name))
    kwargs = constructor_kwargs(args, info)
    try:
        info.training.check(args, info)
    except ValueError as err:
        raise UsageError(str(err)) from None
    state = _Run(args, info, kwargs, ignored)
    state.overrides = overrides
    return state


def _given_flags(argv):
    """Names of the flags present on the command line (for --resume overrides)."""
    import argparse
    parser = build_parser()
    for action in parser._actions:
        action.default = None if action.dest == 'help' else argparse.SUPPRESS
    given, _ = parser.parse_known_args(argv)
    return vars(given)


def _saved_args(run_dir):
    """The run's saved ``args.json`` (a dict), None when absent;
    :class:`CheckpointError` naming the file when it is not a JSON object."""
    path = os.path.join(run_dir, 'args.json')
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            stored = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError('%s is corrupt (%s)' % (path, err)) from None
    if not isinstance(stored, dict):
        raise CheckpointError('%s is corrupt (not a JSON object of arguments)' % path)
    modules = stored.get('import_module')
    if modules is not None and not (isinstance(modules, list)
                                    and all(isinstance(m, str) for m in modules)):
        raise CheckpointError('%s is corrupt: import_module is %r, not a list of modules'
                              % (path, modules))
    return stored


def _resolve_resume(args, argv):
    """Replace ``args`` by the saved run's arguments plus the allowed overrides;
    returns (namespace, ignored flags, {flag dest: [saved, new]} schedule changes)."""
    run_dir = os.path.abspath(os.path.expanduser(args.resume))
    if not os.path.isdir(run_dir):
        raise UsageError('--resume %s: %s' % (args.resume, 'a file, not a run directory'
                                              if os.path.exists(run_dir) else 'no such directory'))
    stored = _saved_args(run_dir)
    if stored is None:
        raise UsageError('--resume %s: no run there (args.json missing)' % args.resume)
    import_modules(stored.get('import_module'))   # their families' flags join the parser
    parser = build_parser()
    check_saved_args(stored, parser, os.path.join(run_dir, 'args.json'))
    namespace = parser.parse_args(['--model', stored.get('model') or 'x'])
    for key, value in stored.items():
        setattr(namespace, key, value)
    ignored, changes = [], {}
    given = _given_flags(argv)
    if given.get('overwrite'):
        raise UsageError('--overwrite and --resume contradict each other: give one')
    for key, value in given.items():
        if key in RESUME_OVERRIDABLE:
            setattr(namespace, key, value)
        elif key in RESUME_SCHEDULE_OVERRIDES:
            if value != stored.get(key):
                changes[key] = [stored.get(key), value]
            setattr(namespace, key, value)
        elif value != stored.get(key):
            ignored.append('--' + key.replace('_', '-'))
    namespace.resume = run_dir
    namespace.save_dir = run_dir
    namespace.overwrite = False
    return namespace, ignored, changes


# ---------------------------------------------------------------- phase 2: connect
def _connect(state):
    """Devices, and for a distributed run the kvstore, this worker's rank and count
    (:mod:`.distributed`)."""
    args = state.args
    state.ctx = _contexts(args)
    args.num_devices = len(state.ctx)
    horovod = getattr(args, 'horovod', False)
    if horovod and args.kvstore.startswith('dist'):
        raise UsageError('--horovod and --kvstore %s contradict each other: give one'
                         % args.kvstore)
    try:
        state.worker = distributed.connect(distributed.HOROVOD if horovod else args.kvstore)
    except ImportError as err:   # --horovod without the extra
        raise UsageError(str(err)) from None
    state.kv, state.rank, state.num_workers = (state.worker.kv, state.worker.rank,
                                               state.worker.num_workers)
    state.is_chief = state.worker.is_chief


def _contexts(args):
    """The devices of ``--ctx``/``--num-gpus`` and the ``--dtype`` rule, checked as
    eval.py and symbols.export check them (:mod:`gluon_nets.utils.devices`)."""
    try:
        ctx = parse_contexts(args.ctx, args.num_gpus)
        check_dtype(args.dtype, ctx)
    except DeviceError as err:
        raise UsageError(str(err))
    return ctx


# ---------------------------------------------------------- phase 3: data config
def _resolve_data_config(state):
    """The run's preprocessing, in the registry's ``data_config`` structure: the flags,
    else the embedded dataset's values, else the model's. The resolved values go back
    into ``args`` (and so into ``args.json``)."""
    from gluon_nets import data
    from gluon_nets.model_zoo import resolve_data_config
    args, info = state.args, state.info
    embedded = not (args.rec_train or args.data_dir)
    values = {}
    if embedded:
        args.dataset_given = bool(args.dataset) or bool(getattr(args, 'dataset_given', False))
        args.dataset = args.dataset or 'fashion-mnist-mini'
        dataset = data.dataset_info(args.dataset)
        values.update(dataset['data_config'])
        state.class_names = dataset['class_names']
    flags = dict(input_size=args.input_size, crop_ratio=args.crop_ratio,
                 mean=[m / 255.0 for m in args.rgb_mean] if args.rgb_mean else None,
                 std=[s / 255.0 for s in args.rgb_std] if args.rgb_std else None)
    values.update({k: v for k, v in flags.items() if v is not None})
    values['num_classes'] = data.class_count(args.num_classes,
                                             dataset=args.dataset if embedded else None,
                                             data_dir=args.data_dir,
                                             default=info.data_config['num_classes'])
    values['interpolation'] = data.INTERPOLATION   # what the loaders resize with
    if embedded and not args.dataset_given and (args.num_gpus > 0 or (args.input_size or 0) >= 160):
        state.warnings.append(
            'no data flag (--rec-train/--rec-val, --data-dir or --dataset): training on the '
            'embedded %s set (%s), although --num-gpus %d / --input-size %s look like an '
            'ImageNet run' % (args.dataset, '32-px, 10 classes', args.num_gpus, args.input_size))
    state.data_config = resolve_data_config(info.name, **values)
    args.num_classes, args.input_size = state.num_classes, state.input_size
    args.crop_ratio = state.data_config['crop_ratio']


# ------------------------------------------------------------ phase 4: run directory
def _prepare_run_dir(state):
    """The run directory, its log, and the committed checkpoint when resuming."""
    args = state.args
    path = os.path.abspath(os.path.expanduser(args.save_dir))
    removed = []
    if state.is_chief and not args.resume:
        found = run_files(path)
        if found and not args.overwrite:
            raise UsageError('--save-dir %s holds a run (%s): continue it with --resume %s, or '
                             'replace it with --overwrite' % (path, ', '.join(found[:4]), path))
        if found:   # --overwrite: the old run goes now (docs/training.md says so)
            removed = clear_run(path)
    state.run_dir = RunDir(path, args.model)
    _setup_logging(state.run_dir, args, state.is_chief)
    if removed:
        logger.warning('--overwrite: removed the previous run in %s (%d files)', path, len(removed))
    for flag in state.ignored:
        logger.warning('--resume: %s differs from the saved run and is ignored', flag)
    for message in state.warnings:
        logger.warning(message)
    if state.info.family == 'gluoncv':
        logger.info('--model %s is not a gluon_nets model: training GluonCV\'s %s '
                    '(gluoncv.model_zoo)', args.model, state.info.name)
    if state.is_chief:
        state.run_dir.remove_stale_temps()
    state.record = state.run_dir.load() if args.resume else None


# ----------------------------------------------------------------------- phase 5: data
def _load_data(state):
    """The loaders (every data file is checked before any checkpoint can be touched)."""
    from gluon_nets import data
    args, config = state.args, state.data_config
    batch = args.batch_size * max(1, args.num_devices)
    common = dict(batch_size=batch, input_size=state.input_size, mean=config['mean'],
                  std=config['std'], num_classes=state.num_classes)
    if args.rec_train:
        src_t = dict(rec_train=args.rec_train, rec_train_idx=args.rec_train_idx)
        src_v = dict(rec_val=args.rec_val, rec_val_idx=args.rec_val_idx)
    elif args.data_dir:
        src_t = src_v = dict(data_dir=args.data_dir)
    else:
        src_t = src_v = dict(dataset=args.dataset)
    # every image is decoded once here (train and val), before the first epoch: an
    # undecodable one would kill MXNet's reader with SIGFPE mid-run (gluon_nets.data.images)
    skip = bool(getattr(args, 'skip_bad_images', False))
    state.train_data = data.train_loader(num_workers=args.num_workers, num_parts=state.num_workers,
                                         part_index=state.rank, seed=args.seed,
                                         min_random_area=args.min_random_area,
                                         jitter=0.0 if getattr(args, 'no_jitter', False)
                                         else getattr(args, 'jitter', None),
                                         lighting=0.0 if getattr(args, 'no_lighting', False)
                                         else getattr(args, 'lighting', None),
                                         flip=not getattr(args, 'no_flip', False),
                                         skip_bad_images=skip, **src_t, **common)
    # a folder tree's validation labels are the training tree's class indices
    train_classes = getattr(state.train_data, 'classes', None)
    state.val_data = data.val_loader(num_workers=max(1, args.num_workers),
                                     crop_ratio=config['crop_ratio'], skip_bad_images=skip,
                                     class_names=train_classes if args.data_dir else None,
                                     **src_v, **common)
    for split, loader in (('training', state.train_data), ('validation', state.val_data)):
        if loader.skipped_images:
            logger.warning('--skip-bad-images: left out %d undecodable %s image(s): %s',
                           len(loader.skipped_images), split,
                           '; '.join(str(b) for b in loader.skipped_images[:5]))
    if args.data_dir and state.class_names is None:
        state.class_names = getattr(state.train_data, 'classes', None)
    state.iters = len(state.train_data) if not args.max_iters else min(args.max_iters,
                                                                       len(state.train_data))
    logger.info('data: %d training images (this worker: part %d/%d), %d validation, %d classes, '
                '%d px; %d iterations/epoch', state.train_data.num_samples * state.num_workers,
                state.rank + 1, state.num_workers, state.val_data.num_samples, state.num_classes,
                state.input_size, state.iters)


# ---------------------------------------------------------------------- phase 6: model
def _build_model(state):
    """The net to train: the family plugin's (``info.training.build``) or the plain
    registry build, then dtype, GluonCV-style start parameters, hybridisation, and
    ``model.json``."""
    from gluon_nets.model_zoo import ModelConstructionError
    args = state.args
    _seed_all(args.seed, -1)
    session = TrainingSession(args, state.info, state.kwargs, state.num_classes,
                              state.data_config, state.ctx, state.train_data, state.is_chief,
                              state.kv, resumed=state.record is not None,
                              run_dir=state.run_dir, seed_fn=_seed_all, log=logger)
    try:
        built = state.info.training.build(session)
    except ModelConstructionError:
        raise
    except (ValueError, ArithmeticError) as err:
        raise TrainingError(str(err)) from None
    if built is None:
        state.net, state.net_name, state.net_kwargs = session.make_net(), state.info.name, state.kwargs
    else:
        state.net, state.net_name, state.net_kwargs = built
    net = state.net
    if args.dtype != 'float32':
        net.cast(args.dtype)
    if args.resume_params and state.record is None:
        load_params(net, os.path.expanduser(args.resume_params), state.ctx, '--resume-params')
    if getattr(args, 'pretrained_params', None) and state.record is None:
        _load_pretrained_params(state, net)
    if args.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    if state.is_chief:
        state.run_dir.write_json('model.json', _model_record(state))


def _load_pretrained_params(state, net):
    """``--pretrained-params FILE``: every weight of FILE; a classifier of another class
    count is re-initialised (logged by the model zoo)."""
    from gluon_nets.model_zoo import load_transfer_params
    path = os.path.expanduser(state.args.pretrained_params)
    try:
        load_transfer_params(net, path, ctx=state.ctx, name=state.net_name,
                             classifier=getattr(net, 'classifier_name', state.info.classifier))
    except (ValueError, OSError) as err:
        raise UsageError('--pretrained-params %s' % err) from None
    logger.info('--pretrained-params: started from %s', path)


def _model_record(state):
    """``model.json``: the registry's record (model, kwargs, the run's data_config,
    class names) plus where the weights and the validation data are."""
    from gluon_nets.model_zoo import model_record
    args = state.args
    class_names = state.class_names
    if class_names and len(class_names) != state.num_classes:
        class_names = None
    return model_record(state.net_name, state.net_kwargs, state.data_config, class_names,
                        params='last.params', best_params='best.params', dataset=args.dataset,
                        rec_val=args.rec_val, data_dir=args.data_dir)


def _build_teacher(state):
    """The distillation teacher (converted weights), when ``--teacher`` is given."""
    from gluon_nets import get_model
    args = state.args
    if not args.teacher or args.hard_weight >= 1.0:
        return
    try:
        teacher = get_model(args.teacher, classes=state.num_classes, pretrained=True,
                            ctx=state.ctx, **(args.teacher_kwargs or {}))
    except FileNotFoundError:
        raise    # our converted weights are missing: the message says how to make them
    except Exception as err:   # GluonCV's download or weights failed
        raise TrainingError('--teacher %s: cannot load its pretrained weights: %s: %s' % (
            args.teacher, type(err).__name__, str(err).strip().splitlines()[0][:300]
            if str(err).strip() else '')) from None
    teacher.cast(args.dtype)
    if args.mode == 'hybrid':
        teacher.hybridize(static_alloc=True, static_shape=True)
    state.teacher = teacher


# ------------------------------------------------------------------ phase 7: optimiser
def _build_optimiser(state):
    """The gluon Trainer with GluonCV's per-iteration schedule; on resume its states,
    the parameters and the metrics so far; ``args.json`` for a new run."""
    import mxnet as mx
    args, net, kv = state.args, state.net, state.kv
    # finish deferred shape inference now: a parameter first initialised inside
    # trainer.step reaches a dist kvstore through a later, racy broadcast (seen: workers
    # ending with different classifier weights)
    for c in state.ctx:
        try:
            net(mx.nd.zeros((1, 3, state.input_size, state.input_size), ctx=c, dtype=args.dtype))
        except mx.base.MXNetError as err:   # e.g. a pooling window larger than the feature map
            from .checkpoint import _mxnet_message
            raise UsageError('--input-size %d: %s cannot run on %d-px inputs (its registry entry '
                             'says at least %d px): %s' % (
                                 state.input_size, state.net_name, state.input_size,
                                 getattr(state.info, 'min_input_size', 1),
                                 _mxnet_message(err))) from None
    if args.no_wd:
        for param in net.collect_params('.*beta|.*gamma|.*bias').values():
            param.wd_mult = 0.0
    _set_backbone_learning(state)
    state.update_on_kv = distributed.update_on_kvstore(args.kvstore, kv)
    # servers that update (dist_async) count every worker's push as one update
    updates_per_iter = state.num_workers if state.update_on_kv else 1
    scheduler = _lr_scheduler(args, state.iters * updates_per_iter)
    if state.update_on_kv:   # the servers unpickle it: a class that needs no gluoncv there
        scheduler = distributed.ServerSafeSchedule.from_gluoncv(scheduler)
    opt_params = {'wd': args.wd, 'momentum': args.momentum, 'lr_scheduler': scheduler}
    if args.optimizer == 'rmsprop':   # MXNet's RMSProp has no momentum (non-centred)
        opt_params = {'wd': args.wd, 'lr_scheduler': scheduler, 'gamma1': args.rmsprop_decay,
                      'epsilon': args.rmsprop_epsilon}
    if args.dtype != 'float32':
        opt_params['multi_precision'] = True
    trainer = distributed.make_trainer(state.worker, net.collect_params(), args.optimizer,
                                       opt_params, state.update_on_kv)
    record = state.record
    if record is not None:
        load_params(net, state.run_dir.file(record['params']), state.ctx, '--resume: checkpoint')
    if state.worker.is_distributed:
        if state.update_on_kv and record is not None:
            # the servers' optimiser (sent at kvstore init) continues the schedule
            done = state.iters * updates_per_iter * (record['epoch'] + 1)
            trainer._optimizer.begin_num_update = trainer._optimizer.num_update = done
        # every worker starts from rank 0's parameters before any gradient is pushed
        distributed.sync_initial_parameters(trainer, kv, distributed.step_batch_size(
            args.batch_size, len(state.ctx), state.worker, state.update_on_kv), state.worker.hvd)
    if record is not None:
        if record.get('states'):
            load_trainer_states(trainer, state.run_dir.file(record['states']),
                                trust=args.trust_checkpoint, what='--resume: checkpoint',
                                net=net)
            # the schedule is a pure function of the update count: a rebuilt one continues it
            # (and follows a --num-epochs given on --resume)
            trainer._optimizer.lr_scheduler = scheduler
        state.start_epoch, state.rows = record['epoch'] + 1, record['metrics']
        state.best = record.get('best_top1', -1.0)
        state.best_epoch = record.get('best_epoch')
        if state.is_chief:
            # a kill between the commit steps of the last epoch: redo the rest from the record
            # (only now that its parameters and states loaded: a damaged file is not spread)
            repaired = state.run_dir.finish_commit(record)
            if repaired:
                logger.warning('--resume: repaired %s from checkpoint.json (the previous run '
                               'was stopped while committing epoch %d)', ', '.join(repaired),
                               record['epoch'])
        logger.info('resumed %s at epoch %d (update %d, lr %.6g)', state.run_dir.path,
                    state.start_epoch, record.get('num_update', -1), trainer.learning_rate)
    elif args.resume_states:
        load_trainer_states(trainer, os.path.expanduser(args.resume_states),
                            trust=args.trust_checkpoint, what='--resume-states', net=net)
    if args.resume_epoch and record is None:
        state.start_epoch = args.resume_epoch
    if state.overrides:
        # the schedule above was built from the new values: from the current update count on,
        # the run follows them; the history says from which epoch
        args.history = list(getattr(args, 'history', None) or []) + [{
            'from_epoch': state.start_epoch,
            'changed': {'--' + k.replace('_', '-'): {'was': v[0], 'now': v[1]}
                        for k, v in sorted(state.overrides.items())}}]
        logger.warning('--resume: from epoch %d on %s', state.start_epoch, ', '.join(
            '--%s %s (was %s)' % (k.replace('_', '-'), v[1], v[0])
            for k, v in sorted(state.overrides.items())))
    if state.is_chief and not args.resume:
        state.run_dir.write_json('args.json', _saved_arguments(args))
    # resume overrides reach args.json with the first epoch they commit: a resume that
    # fails (diverges again, is stopped) leaves the run's saved arguments as they were
    state.args_pending = bool(state.overrides)
    state.trainer = trainer


def _set_backbone_learning(state):
    """``--freeze-backbone`` (no gradient but for the classifier) or
    ``--lr-mult-backbone M`` (GluonCV's ``lr_mult`` on every other parameter)."""
    args, net = state.args, state.net
    freeze, mult = getattr(args, 'freeze_backbone', False), getattr(args, 'lr_mult_backbone', None)
    if not freeze and mult is None:
        return
    try:
        head = set(net.get_classifier().collect_params().values())
    except (AttributeError, TypeError, ValueError) as err:
        raise UsageError('%s: cannot find the classifier of %s (%s)' % (
            '--freeze-backbone' if freeze else '--lr-mult-backbone', state.net_name, err)) from None
    backbone = [p for p in net.collect_params().values() if p not in head]
    for param in backbone:
        if freeze:
            param.grad_req = 'null'
        else:
            param.lr_mult = mult
    logger.info('%s: %d backbone parameters %s; classifier %r (%d parameters) trains at the '
                'full rate', '--freeze-backbone' if freeze else '--lr-mult-backbone',
                len(backbone), 'frozen' if freeze else 'at lr x %g' % mult,
                getattr(net, 'classifier_name', '?'), len(head))


def _saved_arguments(args):
    return {k: v for k, v in vars(args).items() if k != 'num_devices'}


def _lr_scheduler(args, iters):
    from gluon_nets._compat import import_gluoncv
    import_gluoncv()
    from gluoncv.utils import LRScheduler, LRSequential
    if args.lr_decay_period > 0:
        decay_epochs = list(range(args.lr_decay_period, args.num_epochs, args.lr_decay_period))
    else:
        decay_epochs = [int(e) for e in args.lr_decay_epoch.split(',') if e.strip()]
    decay_epochs = [e - args.warmup_epochs for e in decay_epochs]
    stages = []
    if args.warmup_epochs:
        stages.append(LRScheduler('linear', base_lr=args.warmup_lr, target_lr=args.lr,
                                  nepochs=args.warmup_epochs, iters_per_epoch=iters))
    stages.append(LRScheduler(args.lr_mode, base_lr=args.lr, target_lr=0,
                              nepochs=args.num_epochs - args.warmup_epochs, iters_per_epoch=iters,
                              step_epoch=decay_epochs, step_factor=args.lr_decay, power=2))
    return LRSequential(stages)


# --------------------------------------------------------------------- phase 8: epochs
class _Loss:
    """GluonCV's losses: sparse CE, or dense CE on smoothed / mixed labels, or
    distillation from the teacher's softened outputs."""

    def __init__(self, args, num_classes, distilling):
        from mxnet import gluon
        self.sparse = not (args.label_smoothing or args.mixup)
        if distilling:
            from gluon_nets._compat import import_gluoncv
            gcv = import_gluoncv()
            self.fn = gcv.loss.DistillationSoftmaxCrossEntropyLoss(
                temperature=args.temperature, hard_weight=args.hard_weight,
                sparse_label=self.sparse)
        else:
            self.fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=self.sparse)
        self.eta = 0.1 if args.label_smoothing else 0.0
        self.num_classes = num_classes

    def targets(self, labels, lam):
        """The per-device label arrays the loss takes (mixup weight ``lam``)."""
        if self.sparse:
            return labels
        return [self._dense(label, lam) for label in labels]

    def _dense(self, label, lam):
        eta, n = self.eta, self.num_classes
        y1 = label.one_hot(n, on_value=1 - eta + eta / n, off_value=eta / n)
        if lam >= 1:
            return y1
        y2 = label[::-1].one_hot(n, on_value=1 - eta + eta / n, off_value=eta / n)
        return lam * y1 + (1 - lam) * y2


def _train_epochs(state):
    """Every remaining epoch: train, validate, log, checkpoint."""
    loss = _Loss(state.args, state.num_classes, state.teacher is not None)
    for epoch in range(state.start_epoch, state.args.num_epochs):
        _STOP_SIGNALS.check()
        stats = _train_epoch(state, epoch, loss)
        _STOP_SIGNALS.check()
        _end_epoch(state, epoch, stats)
    _STOP_SIGNALS.check()


def _train_epoch(state, epoch, loss):
    """One pass over this worker's training data; returns its totals and timings."""
    import mxnet as mx
    from mxnet import autograd, gluon, nd
    args, ctx, net, trainer, teacher = state.args, state.ctx, state.net, state.trainer, state.teacher
    step_batch = distributed.step_batch_size(args.batch_size, len(ctx), state.worker,
                                             state.update_on_kv)
    _seed_all(args.seed, epoch)
    state.train_data.set_epoch(epoch)
    tic = time.time()
    loss_sum, correct, seen = 0.0, 0.0, 0
    bar = _progress(args, epoch, state.iters, state.is_chief)
    btic, last_logged = time.time(), 0
    steady_tic, steady_seen = tic, 0
    for i, (x, y) in enumerate(state.train_data):
        _STOP_SIGNALS.check()
        if i >= state.iters:
            break
        xs = gluon.utils.split_and_load(x, ctx_list=ctx, batch_axis=0, even_split=False)
        ys = gluon.utils.split_and_load(y, ctx_list=ctx, batch_axis=0, even_split=False)
        lam = 1.0
        if args.mixup and epoch < args.num_epochs - args.mixup_off_epoch:
            lam = float(np.random.beta(args.mixup_alpha, args.mixup_alpha))
            xs = [lam * a + (1 - lam) * a[::-1] for a in xs]
        targets = loss.targets(ys, lam)
        if teacher is not None:
            soft = [nd.softmax(teacher(a.astype(args.dtype, copy=False)) / args.temperature)
                    for a in xs]
        with autograd.record():
            outs = [net(a.astype(args.dtype, copy=False)) for a in xs]
            if teacher is not None:
                losses = [loss.fn(o.astype('float32', copy=False), t.astype('float32', copy=False),
                                  s.astype('float32', copy=False))
                          for o, t, s in zip(outs, targets, soft)]
            else:
                losses = [loss.fn(o, t.astype(args.dtype, copy=False)) for o, t in zip(outs, targets)]
        autograd.backward(losses)
        trainer.step(step_batch)
        # one sync per iteration, as GluonCV's metric update: loss and hits together
        stats = nd.concat(*[nd.stack(l.astype('float32').sum(),
                                     (o.argmax(axis=1) == a.astype(o.dtype)).astype('float32').sum()
                                     ).as_in_context(mx.cpu())
                            for l, o, a in zip(losses, outs, ys)], dim=0).asnumpy()
        batch_loss, batch_hits = float(stats[0::2].sum()), float(stats[1::2].sum())
        if not math.isfinite(batch_loss):
            if bar is not None:
                bar.close()
            kept = state.run_dir.load()
            raise NonFiniteLoss(
                'loss is %s at epoch %d, iteration %d (lr %.4g); stopped. The last good checkpoint '
                '(%s) is kept: lower --lr or add --warmup-epochs, then --resume %s'
                % (batch_loss, epoch, i, trainer.learning_rate,
                   'epoch %d' % kept['epoch'] if kept else 'none, no epoch completed',
                   state.run_dir.path))
        n = x.shape[0]
        if i == 1:  # steady-state throughput leaves out the first two (graph-building) batches
            steady_tic, steady_seen = time.time(), seen + n
        if args.save_worker_state:
            state.seen_labels.append(y.asnumpy())
        loss_sum += batch_loss
        correct += batch_hits
        seen += n
        if bar is not None:
            bar.set_postfix_str('%.0f img/s loss %.3f lr %.4g' % (
                seen / (time.time() - tic), loss_sum / seen, trainer.learning_rate), refresh=False)
            bar.update(1)
        if args.log_interval and (i + 1) % args.log_interval == 0:
            logger.debug('Epoch[%d] Batch [%d]\tSpeed: %.1f samples/sec\tloss=%.4f\tacc=%.4f\tlr=%.6g',
                         epoch, i + 1, n * (i + 1 - last_logged) / (time.time() - btic),
                         loss_sum / seen, correct / seen, trainer.learning_rate)
            btic, last_logged = time.time(), i + 1
    if bar is not None:
        bar.close()
    train_time = time.time() - tic
    if seen > steady_seen:
        img_per_s = (seen - steady_seen) / (time.time() - steady_tic)
    else:
        img_per_s = seen / train_time
    return dict(tic=tic, loss_sum=loss_sum, correct=correct, seen=seen, img_per_s=img_per_s)


def _end_epoch(state, epoch, stats):
    """Validate, log the epoch's row and (on the chief) commit its checkpoint."""
    args, trainer = state.args, state.trainer
    val_loss, top1, top5 = evaluate(state.net, state.val_data, state.ctx, args.dtype)
    seen = max(stats['seen'], 1)
    row = {'epoch': epoch, 'train_loss': round(stats['loss_sum'] / seen, 6),
           'train_acc': round(stats['correct'] / seen, 6), 'val_loss': round(val_loss, 6),
           'val_top1': round(top1, 6), 'val_top5': round(top5, 6),
           'lr': float('%.8g' % trainer.learning_rate),
           'epoch_time_s': round(time.time() - stats['tic'], 2),
           'train_img_per_s': round(stats['img_per_s'] * state.num_workers, 1)}
    if not (math.isfinite(val_loss) and math.isfinite(row['train_loss'])):
        kept = state.run_dir.load()
        raise NonFiniteLoss(
            'validation loss is %s after epoch %d (train loss %s, lr %.4g); stopped before its '
            'checkpoint. The last good checkpoint (%s) is kept: lower --lr or add '
            '--warmup-epochs, then --resume %s with them'
            % (val_loss, epoch, row['train_loss'], trainer.learning_rate,
               'epoch %d' % kept['epoch'] if kept else 'none, no epoch completed',
               state.run_dir.path))
    state.rows.append(row)
    improved = top1 > state.best
    state.best = max(state.best, top1)
    if improved:
        state.best_epoch = epoch
    logger.info('[Epoch %d] train loss %.4f acc %.4f | val loss %.4f top-1 %.4f top-5 %.4f | '
                '%.1f s, %.0f img/s, lr %.5g%s', epoch, row['train_loss'], row['train_acc'],
                val_loss, top1, top5, row['epoch_time_s'], row['train_img_per_s'], row['lr'],
                ' (best)' if improved else '')
    if not state.is_chief:
        return
    states_ok = distributed.states_are_local(state.worker, state.update_on_kv)
    record = {'epoch': epoch, 'metrics': state.rows, 'best_top1': state.best,
              'best_epoch': state.best_epoch, 'model': state.net_name,
              'num_update': int(trainer._optimizer.num_update), 'seed': args.seed,
              'history': list(getattr(args, 'history', None) or []),
              'args': _saved_arguments(args)}
    with _STOP_SIGNALS.deferred():   # SIGTERM/SIGINT wait for the commit to finish
        state.run_dir.commit_epoch(
            epoch, state.net, trainer if states_ok else None, record,
            keep_copy=bool(args.save_frequency) and (epoch + 1) % args.save_frequency == 0)
        if getattr(state, 'args_pending', False):
            state.run_dir.write_json('args.json', _saved_arguments(args))
            state.args_pending = False


# ---------------------------------------------------------------------- phase 9: finish
def _finish(state):
    """Per-worker state for distributed checks, the closing log line; the rows."""
    args, run_dir = state.args, state.run_dir
    if args.save_worker_state:
        run_dir.save_params(state.net, 'worker-%d.params' % state.rank)
        with atomic_path(run_dir.file('worker-%d-labels.npy' % state.rank)) as tmp:
            np.save(tmp, np.concatenate(state.seen_labels) if state.seen_labels else np.zeros(0))
    if state.rows and state.is_chief:
        logger.info('done: best val top-1 %.4f; parameters in %s (last.params, best.params)',
                    state.best, run_dir.path)
    return state.rows


# ------------------------------------------------------------------------ helpers
def evaluate(net, val_data, ctx, dtype='float32'):
    """(mean cross-entropy, top-1, top-5) of ``net`` over ``val_data`` (batches of
    (N, 3, H, W) images and (N,) labels)."""
    from mxnet import gluon
    from gluon_nets.utils.metrics import TopK
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    tally, loss_sum = TopK(5), 0.0
    for x, y in val_data:
        xs = gluon.utils.split_and_load(x, ctx_list=ctx, batch_axis=0, even_split=False)
        ys = gluon.utils.split_and_load(y, ctx_list=ctx, batch_axis=0, even_split=False)
        for a, b in zip(xs, ys):
            out = net(a.astype(dtype, copy=False)).astype('float32', copy=False)
            loss_sum += float(loss_fn(out, b).sum().asscalar())
            tally.update(out.asnumpy(), b.asnumpy())
    return loss_sum / max(tally.n, 1), tally.top1, tally.topk


def _seed_all(seed, epoch):
    """Every RNG the loop touches derives from (seed, epoch): a resumed run repeats them."""
    import mxnet as mx
    value = (int(seed) * 1000003 + int(epoch)) % (1 << 31)
    random.seed(value)
    np.random.seed(value)
    mx.random.seed(value)


def _progress(args, epoch, iters, is_chief):
    if args.no_progress or not is_chief:
        return None
    from tqdm import tqdm
    return tqdm(total=iters, desc='epoch %d/%d' % (epoch + 1, args.num_epochs), unit='batch',
                leave=False, mininterval=1.0, dynamic_ncols=True, file=sys.stderr)


class _TqdmHandler(logging.StreamHandler):
    """Console lines that do not break a running progress bar."""

    def __init__(self):
        super().__init__(sys.stdout)

    def emit(self, record):
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # pragma: no cover - fall back to a plain write
            super().emit(record)


class _QuietFileHandler(logging.FileHandler):
    """The run's log file. A line it cannot write (a full disk) is dropped without
    logging's "--- Logging error ---" traceback: the console has the line, and the
    checkpoint write that follows reports the full disk in one line."""

    def handleError(self, record):
        pass


def _setup_logging(run_dir, args, is_chief):
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    # the model zoo's lines (classifier re-initialised, GluonCV model built) go to the
    # run's log as well: 'gluon_nets' gets the same handlers (ours does not propagate)
    zoo_log = logging.getLogger('gluon_nets')
    for handler in list(zoo_log.handlers):
        if getattr(handler, '_gluon_nets_run', False):
            zoo_log.removeHandler(handler)
    zoo_log.setLevel(logging.INFO)
    stream = _TqdmHandler()
    # per-interval lines go to the log file; on the console the progress bar shows them,
    # unless there is no bar
    stream.setLevel(logging.DEBUG if args.no_progress and args.log_interval else logging.INFO)
    stream.setFormatter(logging.Formatter('%(message)s'))
    logger.addHandler(stream)
    if is_chief and args.logging_file:
        handler = _QuietFileHandler(run_dir.file(os.path.basename(args.logging_file)))
        handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))
        handler.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    for handler in logger.handlers:
        handler._gluon_nets_run = True
        zoo_log.addHandler(handler)


# ------------------------------------------------------------------------ entry point
def _modules_to_import(argv):
    """``--import-module`` values of ``argv`` and, with ``--resume DIR``, of the saved
    run: they may declare families whose options the parser must know."""
    modules = values_in_argv(argv, '--import-module')
    for run_dir in values_in_argv(argv, '--resume')[-1:]:
        try:
            stored = _saved_args(os.path.abspath(os.path.expanduser(run_dir))) or {}
        except ValueError:    # a corrupt args.json is reported by run()
            stored = {}
        modules += [m for m in stored.get('import_module') or [] if m not in modules]
    return modules


def _error(message, status):
    """One ``error:`` line on stderr; returns the exit status."""
    print('train_imagenet.py: error: %s' % message, file=sys.stderr)
    return status


def _saved_flag(argv, dest):
    """The value of ``dest`` in the args.json of ``--resume DIR`` (None without one)."""
    for run_dir in values_in_argv(argv, '--resume')[-1:]:
        try:
            return (_saved_args(os.path.abspath(os.path.expanduser(run_dir))) or {}).get(dest)
        except ValueError:    # a corrupt args.json is reported by run()
            return None
    return None


#: what ``--deterministic`` sets before MXNet loads. MXNet's default ThreadedEngine makes
#: two identical CPU runs differ by ~3e-6 in the parameters after a few steps (3 runs in 4
#: on this tiny recipe, with or without MXNET_ENFORCE_DETERMINISM=1, one OMP thread, one
#: decoding thread); the synchronous NaiveEngine gives bit-identical runs.
DETERMINISTIC_ENV = {'MXNET_ENGINE_TYPE': 'NaiveEngine', 'MXNET_ENFORCE_DETERMINISM': '1',
                     'MXNET_CUDNN_AUTOTUNE_DEFAULT': '0'}


def _set_determinism(argv):
    """``--deterministic`` (given, or saved in the resumed run): MXNet's engine
    settings, which it reads once at import. False when MXNet was already imported
    with other settings (a warning is logged once the log exists)."""
    if '--deterministic' not in argv and not _saved_flag(argv, 'deterministic'):
        return True
    if 'mxnet' in sys.modules:
        return all(os.environ.get(k) == v for k, v in DETERMINISTIC_ENV.items())
    os.environ.update(DETERMINISTIC_ENV)
    return True


def _os_error_message(err, run_dir):
    """One line for a failed file operation: the file, the reason, what is kept."""
    import errno
    where = ' %s' % err.filename if err.filename else ''
    kept = ''
    if run_dir is not None:
        try:
            record = run_dir.load()
        except ValueError:
            record = None
        kept = ('; the last complete checkpoint (epoch %d) in %s is intact'
                % (record['epoch'], run_dir.path) if record else '; no epoch was committed')
    if err.errno == errno.ENOSPC:
        return 'no space left on the device writing%s%s' % (where, kept)
    return '%s%s: %s%s' % (type(err).__name__, where, err.strerror or err, kept)


def main(argv=None):
    """Entry point of ``train_imagenet.py``: parse, run, turn every failure into one
    ``error:`` line naming the file or flag: status 2 for bad flags, paths, data and
    checkpoint files (argparse's own errors add its usage line) and for failures while
    running (divergence, a full disk), 1 only for an internal error (a bug: the line says
    to run with --debug), 128 + the signal for SIGTERM (143) / SIGINT (130).
    ``--debug`` shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # from the first moment: a signal while MXNet and the families import (seconds) is a
    # clean stop too, not a KeyboardInterrupt traceback or a silent SIGTERM death
    _STOP_SIGNALS.install()
    try:
        return _main(argv)
    except Interrupted as stop:
        print('train_imagenet.py: %s' % _stopped_message(stop), file=sys.stderr)
        return 128 + stop.signum
    finally:
        _STOP_SIGNALS.uninstall()


def _main(argv):
    """:func:`main` inside its signal handlers (they raise :class:`Interrupted`)."""
    # the parser holds every family's options, and importing the families imports
    # MXNet, which reads OMP_NUM_THREADS (and its engine type) once: those first
    set_threads_from_argv(argv)
    deterministic_ok = _set_determinism(argv)
    debug = '--debug' in argv
    from gluon_nets.data import DataError
    from gluon_nets.model_zoo import ModelConstructionError
    try:
        import_modules(_modules_to_import(argv))
        parser = build_parser()
    except UsageError as err:
        return _error(err, 2)
    except (ImportError, ValueError) as err:   # a family that fails to import or clashes
        return _error(err, 1)
    args = parser.parse_args(argv)
    if not deterministic_ok:
        logger.warning('--deterministic: MXNet was imported before the trainer could set %s; '
                       'this run may not be bit-identical', DETERMINISTIC_ENV)
    try:
        if not args.resume:
            check_args(args)
        run(args, argv)
    except (UsageError, CheckpointError) as err:
        return _maybe_raise(debug) or _error(err, 2)
    except (DataError, ModelConstructionError) as err:   # bad input: data files, model kwargs
        return _maybe_raise(debug) or _error(err, 2)
    except TrainingError as err:     # divergence (it names the flags to change), a failed run
        return _maybe_raise(debug) or _error(err, 2)
    except OSError as err:           # a full disk, a file that cannot be written: it is named
        return _maybe_raise(debug) or _error(_os_error_message(err, getattr(err, 'run_dir', None)), 2)
    except ValueError as err:        # the registry's unknown-model error, a family's check
        return _maybe_raise(debug) or _error(err, 2)
    except Exception as err:
        return _maybe_raise(debug) or _error('internal error: %s: %s (run with --debug for the '
                                             'traceback)' % (type(err).__name__, err), 1)
    return 0


def _maybe_raise(debug):
    """Re-raise the exception being handled when ``--debug`` asks for tracebacks."""
    if debug:
        raise
    return 0


def _stopped_message(stop):
    import signal
    name = signal.Signals(stop.signum).name
    run_dir = getattr(stop, 'run_dir', None)
    if run_dir is None:
        return 'stopped by %s before the run directory was set up; nothing was written' % name
    try:
        record = run_dir.load()
    except ValueError:
        record = None
    if record is None:
        return 'stopped by %s; no epoch was committed in %s' % (name, run_dir.path)
    return ('stopped by %s; the last complete checkpoint (epoch %d) in %s is intact: continue '
            'with --resume %s' % (name, record['epoch'], run_dir.path, run_dir.path))
