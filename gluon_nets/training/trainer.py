"""The training loop behind ``train_imagenet.py``.

It follows GluonCV's ``scripts/classification/imagenet/train_imagenet.py`` (same
flags, per-iteration LR schedule from gluoncv's ``LRSequential``/``LRScheduler``,
NAG, mixup, label smoothing, distillation, no-wd) and adds what a long run needs:
resumable atomic checkpoints, exact schedule/RNG continuation, a NaN guard, a
progress bar, CSV/PNG metrics, sharded data for distributed workers, and LW-DNA's
search-then-train flow.
"""
import inspect
import json
import logging
import math
import os
import random
import sys
import time

import numpy as np

from .options import RESUME_OVERRIDABLE, UsageError, build_parser, check_args
from .checkpoint import RunDir, write_json_atomic

__all__ = ['main', 'run', 'TrainingError', 'NonFiniteLoss']

logger = logging.getLogger('gluon_nets.train')


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why."""


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite."""


# ----------------------------------------------------------------------------- setup
def _given_flags(argv):
    """Names of the flags present on the command line (for --resume overrides)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = None if action.dest == 'help' else __import__('argparse').SUPPRESS
    given, _ = parser.parse_known_args(argv)
    return vars(given)


def _resolve_resume(args, argv):
    """Replace ``args`` by the saved run's arguments (plus allowed overrides)."""
    run_dir = os.path.abspath(os.path.expanduser(args.resume))
    saved = os.path.join(run_dir, 'args.json')
    if not os.path.isfile(saved):
        raise UsageError('--resume %s: no run there (args.json missing)' % args.resume)
    with open(saved) as f:
        stored = json.load(f)
    namespace = build_parser().parse_args(['--model', stored.get('model') or 'x'])
    for key, value in stored.items():
        setattr(namespace, key, value)
    overrides = _given_flags(argv)
    ignored = []
    for key, value in overrides.items():
        if key in RESUME_OVERRIDABLE:
            setattr(namespace, key, value)
        elif value != stored.get(key):
            ignored.append('--' + key.replace('_', '-'))
    namespace.resume = run_dir
    namespace.save_dir = run_dir
    return namespace, ignored


def _contexts(args):
    import mxnet as mx
    if args.ctx:
        ctx = []
        for token in args.ctx.replace(' ', '').split(','):
            if token == 'cpu':
                ctx.append(mx.cpu())
            elif token.startswith('gpu') and token[3:].isdigit():
                ctx.append(mx.gpu(int(token[3:])))
            else:
                raise UsageError('--ctx: cannot read %r (use cpu or gpu0,gpu1,...)' % token)
    else:
        ctx = [mx.gpu(i) for i in range(args.num_gpus)] if args.num_gpus else [mx.cpu()]
    if any(c.device_type == 'gpu' for c in ctx):
        available = mx.context.num_gpus()
        wanted = max(c.device_id for c in ctx if c.device_type == 'gpu') + 1
        if wanted > available:
            raise UsageError('%d GPU(s) asked for, %d visible (this mxnet build: %s)'
                             % (wanted, available, 'CPU-only' if available == 0 else 'CUDA'))
    if args.dtype == 'float16' and all(c.device_type == 'cpu' for c in ctx):
        raise UsageError('--dtype float16 trains with multi-precision SGD on GPUs; on CPU use '
                         '--dtype float32 (MXNet\'s CPU float16 kernels are slow and inexact)')
    return ctx


def _seed_all(seed, epoch):
    """Every RNG the loop touches derives from (seed, epoch): a resumed run repeats them."""
    import mxnet as mx
    value = (int(seed) * 1000003 + int(epoch)) % (1 << 31)
    random.seed(value)
    np.random.seed(value)
    mx.random.seed(value)


def _import_plugins(modules):
    import importlib
    import importlib.util
    for name in modules or []:
        if name.endswith('.py'):
            spec = importlib.util.spec_from_file_location(os.path.basename(name)[:-3], name)
            if spec is None or not os.path.isfile(name):
                raise UsageError('--import-module %s: no such file' % name)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            importlib.import_module(name)


def _model_kwargs(args, info):
    """Constructor kwargs from the flags; unsupported flags give a clear error."""
    params = inspect.signature(info.fn).parameters
    open_kwargs = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {}
    flags = [('alpha', args.alpha, '--alpha (the OctConv low-frequency ratio)'),
             ('use_se', True if args.use_se else None, '--use-se'),
             ('final_drop', args.final_drop, '--final-drop'),
             ('last_gamma', True if args.last_gamma else None, '--last-gamma'),
             ('width_mult', args.width_mult, '--width-mult'),
             ('embedding_dim', args.embedding_dim, '--embedding-dim')]
    for key, value, flag in flags:
        if value is None:
            continue
        if key not in params and key not in info.default_kwargs:
            if key == 'alpha' or not open_kwargs:
                from gluon_nets import list_models
                takers = [n for n in list_models() if _takes(n, key)]
                raise UsageError('%s: model %s does not take %s; models that do: %s'
                                 % (flag, info.name, key, ', '.join(takers[:12]) or 'none yet'))
        kwargs[key] = value
    kwargs.update(args.model_kwargs or {})
    return kwargs


def _takes(name, key):
    from gluon_nets import get_model_info
    info = get_model_info(name)
    return key in inspect.signature(info.fn).parameters or key in info.default_kwargs


def _lwdna_module():
    try:
        from gluon_nets.models import lwdna
        lwdna.search  # noqa: B018
    except (ImportError, AttributeError):
        raise UsageError('the LW-DNA search (gluon_nets.models.lwdna.search) is not available in '
                         'this version of gluon_nets') from None
    return lwdna


# ----------------------------------------------------------------------------- data
def _loaders(args, num_parts, part_index, num_classes, input_size, mean, std):
    from gluon_nets import data
    batch = args.batch_size * max(1, args.num_devices)
    common = dict(batch_size=batch, input_size=input_size, mean=mean, std=std,
                  num_classes=num_classes)
    if args.rec_train:
        src_t = dict(rec_train=args.rec_train, rec_train_idx=args.rec_train_idx)
        src_v = dict(rec_val=args.rec_val, rec_val_idx=args.rec_val_idx)
    elif args.data_dir:
        src_t = src_v = dict(data_dir=args.data_dir)
    else:
        src_t = src_v = dict(dataset=args.dataset)
    train = data.train_loader(num_workers=args.num_workers, num_parts=num_parts,
                              part_index=part_index, seed=args.seed,
                              min_random_area=args.min_random_area, **src_t, **common)
    val = data.val_loader(num_workers=max(1, args.num_workers), crop_ratio=args.crop_ratio,
                          **src_v, **common)
    return train, val


# ----------------------------------------------------------------------------- the run
def run(args, argv_for_resume=None):
    """Train with parsed ``args``; returns the list of per-epoch metric rows."""
    import mxnet as mx
    from mxnet import autograd, gluon, nd
    from gluon_nets import data as gdata, get_model, get_model_info

    ignored = []
    if args.resume:
        args, ignored = _resolve_resume(args, argv_for_resume or [])
    check_args(args)
    _import_plugins(getattr(args, 'import_module', None))
    ctx = _contexts(args)
    args.num_devices = len(ctx)

    # distributed: which part of the data this worker reads, and the trainer's kvstore
    kv = None
    rank, num_workers = 0, 1
    if args.kvstore.startswith('dist'):
        kv = mx.kv.create(args.kvstore)
        rank, num_workers = kv.rank, kv.num_workers
    is_chief = rank == 0

    # dataset facts and defaults
    if args.rec_train or args.data_dir:
        info = gdata.dataset_info('imagenet')
        info['num_classes'] = args.num_classes or 1000
        if args.data_dir and not args.num_classes:
            root = os.path.join(os.path.expanduser(args.data_dir), 'train')
            root = root if os.path.isdir(root) else os.path.expanduser(args.data_dir)
            info['num_classes'] = len(gdata.check_folder(root))
    else:
        args.dataset = args.dataset or 'fashion-mnist-mini'
        info = gdata.dataset_info(args.dataset)
    num_classes = args.num_classes or info['num_classes']
    input_size = args.input_size or info['input_size']
    mean = [m / 255.0 for m in args.rgb_mean] if args.rgb_mean else info['mean']
    std = [s / 255.0 for s in args.rgb_std] if args.rgb_std else info['std']
    args.num_classes, args.input_size = num_classes, input_size

    run_dir = RunDir(args.save_dir, args.model)
    _setup_logging(run_dir, args, is_chief)
    for flag in ignored:
        logger.warning('--resume: %s differs from the saved run and is ignored', flag)
    if is_chief:
        run_dir.remove_stale_temps()
    record = run_dir.load() if args.resume else None

    # every data file is checked before any checkpoint can be touched
    train_data, val_data = _loaders(args, num_workers, rank, num_classes, input_size, mean, std)
    iters = len(train_data) if not args.max_iters else min(args.max_iters, len(train_data))
    logger.info('data: %d training images (this worker: part %d/%d), %d validation, %d classes, '
                '%d px; %d iterations/epoch', train_data.num_samples * num_workers, rank + 1,
                num_workers, val_data.num_samples, num_classes, input_size, iters)

    # the model (LW-DNA: search once, then train the searched net)
    model_info = get_model_info(args.model)
    kwargs = _model_kwargs(args, model_info)
    net_name = model_info.name
    lwdna_cfg_path = run_dir.file('lwdna_config.json')
    if args.lwdna_config and not os.path.isfile(lwdna_cfg_path):
        with open(args.lwdna_config) as f:
            cfg = json.load(f)
        if is_chief:
            write_json_atomic(lwdna_cfg_path, cfg)
    if (args.lwdna_ratio is not None or args.lwdna_config) and os.path.isfile(lwdna_cfg_path):
        with open(lwdna_cfg_path) as f:
            cfg = json.load(f)
        net_name = 'lwdna_' + net_name.split('_', 1)[1] if net_name.startswith('hh_') else net_name
        kwargs = {'config': cfg}
    _seed_all(args.seed, -1)
    net = get_model(net_name, classes=num_classes, pretrained=args.use_pretrained, ctx=ctx, **kwargs)
    searching = args.lwdna_ratio is not None and not os.path.isfile(lwdna_cfg_path)
    if not args.use_pretrained and not searching:  # the search initialises the hh net its way
        net.initialize(getattr(net, 'default_init', mx.init.MSRAPrelu()), ctx=ctx)
    elif num_classes != 1000:
        logger.warning('--use-pretrained with %d classes: the classifier is loaded as converted',
                       num_classes)
    if searching:
        net, net_name, kwargs = _lwdna_search(args, net, train_data, ctx, run_dir, is_chief, kv,
                                              input_size)
    elif args.lwdna_ratio is not None and record is None and os.path.isfile(run_dir.file('lwdna_search.params')):
        net.load_parameters(run_dir.file('lwdna_search.params'), ctx=ctx)
    if args.lwdna_ratio is not None and args.lr_mode != 'cosine':
        logger.info('LW-DNA: the searched net trains with a cosine schedule (--lr-mode %s ignored)',
                    args.lr_mode)
        args.lr_mode = 'cosine'
    if args.dtype != 'float32':
        net.cast(args.dtype)
    if args.resume_params and record is None:
        net.load_parameters(args.resume_params, ctx=ctx)
    if args.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    if is_chief:
        write_json_atomic(run_dir.file('model.json'), {
            'model': net_name, 'kwargs': kwargs, 'classes': num_classes, 'input_size': input_size,
            'crop_ratio': args.crop_ratio, 'mean': list(mean), 'std': list(std),
            'dataset': args.dataset, 'rec_val': args.rec_val, 'data_dir': args.data_dir,
            'params': 'last.params', 'best_params': 'best.params'})

    teacher = None
    if args.teacher and args.hard_weight < 1.0:
        teacher = get_model(args.teacher, classes=num_classes, pretrained=True, ctx=ctx,
                            **(args.teacher_kwargs or {}))
        teacher.cast(args.dtype)
        if args.mode == 'hybrid':
            teacher.hybridize(static_alloc=True, static_shape=True)

    # optimiser and the per-iteration schedule (GluonCV's)
    # finish deferred shape inference now: a parameter first initialised inside
    # trainer.step reaches a dist kvstore through a later, racy broadcast (seen: workers
    # ending with different classifier weights)
    for c in ctx:
        net(mx.nd.zeros((1, 3, input_size, input_size), ctx=c, dtype=args.dtype))
    if args.no_wd:
        for param in net.collect_params('.*beta|.*gamma|.*bias').values():
            param.wd_mult = 0.0
    scheduler = _lr_scheduler(args, iters)
    opt_params = {'wd': args.wd, 'momentum': args.momentum, 'lr_scheduler': scheduler}
    if args.dtype != 'float32':
        opt_params['multi_precision'] = True
    update_on_kv = True if args.kvstore == 'dist_async' else (False if kv is not None else None)
    trainer = gluon.Trainer(net.collect_params(), args.optimizer, opt_params,
                            kvstore=kv if kv is not None else args.kvstore,
                            update_on_kvstore=update_on_kv)
    start_epoch, rows, best = 0, [], -1.0
    if record is not None:
        net.load_parameters(run_dir.file(record['params']), ctx=ctx)
        if record.get('states'):
            trainer.load_states(run_dir.file(record['states']))
            # the schedule is a pure function of the update count: a rebuilt one continues it
            # (and follows a --num-epochs given on --resume)
            trainer._optimizer.lr_scheduler = scheduler
        start_epoch, rows, best = record['epoch'] + 1, record['metrics'], record.get('best_top1', -1.0)
        logger.info('resumed %s at epoch %d (update %d, lr %.6g)', run_dir.path, start_epoch,
                    record.get('num_update', -1), trainer.learning_rate)
    elif args.resume_states:
        trainer.load_states(args.resume_states)
    if args.resume_epoch and record is None:
        start_epoch = args.resume_epoch
    if is_chief and not args.resume:
        saved = {k: v for k, v in vars(args).items() if k != 'num_devices'}
        write_json_atomic(run_dir.file('args.json'), saved)

    # losses (GluonCV's: sparse CE, or dense CE on smoothed / mixed labels, or distillation)
    sparse = not (args.label_smoothing or args.mixup)
    if teacher is not None:
        from gluon_nets._compat import import_gluoncv
        gcv = import_gluoncv()
        loss_fn = gcv.loss.DistillationSoftmaxCrossEntropyLoss(
            temperature=args.temperature, hard_weight=args.hard_weight, sparse_label=sparse)
    else:
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=sparse)
    eta = 0.1 if args.label_smoothing else 0.0
    global_batch = args.batch_size * len(ctx)
    step_batch = global_batch * (num_workers if kv is not None and args.kvstore != 'dist_async' else 1)

    def dense(label, lam):
        y1 = label.one_hot(num_classes, on_value=1 - eta + eta / num_classes, off_value=eta / num_classes)
        if lam >= 1:
            return y1
        y2 = label[::-1].one_hot(num_classes, on_value=1 - eta + eta / num_classes,
                                 off_value=eta / num_classes)
        return lam * y1 + (1 - lam) * y2

    seen_labels = []
    for epoch in range(start_epoch, args.num_epochs):
        _seed_all(args.seed, epoch)
        train_data.set_epoch(epoch)
        tic = time.time()
        loss_sum, correct, seen = 0.0, 0.0, 0
        bar = _progress(args, epoch, iters, is_chief)
        btic, last_logged = time.time(), 0
        steady_tic, steady_seen = tic, 0
        for i, (x, y) in enumerate(train_data):
            if i >= iters:
                break
            xs = gluon.utils.split_and_load(x, ctx_list=ctx, batch_axis=0, even_split=False)
            ys = gluon.utils.split_and_load(y, ctx_list=ctx, batch_axis=0, even_split=False)
            lam = 1.0
            if args.mixup and epoch < args.num_epochs - args.mixup_off_epoch:
                lam = float(np.random.beta(args.mixup_alpha, args.mixup_alpha))
                xs = [lam * a + (1 - lam) * a[::-1] for a in xs]
            targets = ys if sparse else [dense(a, lam) for a in ys]
            if teacher is not None:
                soft = [nd.softmax(teacher(a.astype(args.dtype, copy=False)) / args.temperature)
                        for a in xs]
            with autograd.record():
                outs = [net(a.astype(args.dtype, copy=False)) for a in xs]
                if teacher is not None:
                    losses = [loss_fn(o.astype('float32', copy=False), t.astype('float32', copy=False),
                                      s.astype('float32', copy=False))
                              for o, t, s in zip(outs, targets, soft)]
                else:
                    losses = [loss_fn(o, t.astype(args.dtype, copy=False)) for o, t in zip(outs, targets)]
            autograd.backward(losses)
            trainer.step(step_batch)
            # one sync per iteration, as GluonCV's metric update: loss and hits together
            stats = nd.concat(*[nd.stack(l.astype('float32').sum(),
                                         (o.argmax(axis=1) == a.astype(o.dtype)).astype('float32').sum()).as_in_context(mx.cpu())
                                for l, o, a in zip(losses, outs, ys)], dim=0).asnumpy()
            batch_loss, batch_hits = float(stats[0::2].sum()), float(stats[1::2].sum())
            if not math.isfinite(batch_loss):
                if bar is not None:
                    bar.close()
                kept = run_dir.load()
                raise NonFiniteLoss(
                    'loss is %s at epoch %d, iteration %d (lr %.4g); stopped. The last good checkpoint '
                    '(%s) is kept: lower --lr or add --warmup-epochs, then --resume %s'
                    % (batch_loss, epoch, i, trainer.learning_rate,
                       'epoch %d' % kept['epoch'] if kept else 'none, no epoch completed', run_dir.path))
            n = x.shape[0]
            if i == 1:  # steady-state throughput leaves out the first two (graph-building) batches
                steady_tic, steady_seen = time.time(), seen + n
            if args.save_worker_state:
                seen_labels.append(y.asnumpy())
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
        val_loss, top1, top5 = evaluate(net, val_data, ctx, args.dtype)
        row = {'epoch': epoch, 'train_loss': round(loss_sum / max(seen, 1), 6),
               'train_acc': round(correct / max(seen, 1), 6), 'val_loss': round(val_loss, 6),
               'val_top1': round(top1, 6), 'val_top5': round(top5, 6),
               'lr': float('%.8g' % trainer.learning_rate), 'epoch_time_s': round(time.time() - tic, 2),
               'train_img_per_s': round(img_per_s * num_workers, 1)}
        rows.append(row)
        improved = top1 > best
        best = max(best, top1)
        logger.info('[Epoch %d] train loss %.4f acc %.4f | val loss %.4f top-1 %.4f top-5 %.4f | '
                    '%.1f s, %.0f img/s, lr %.5g%s', epoch, row['train_loss'], row['train_acc'],
                    val_loss, top1, top5, row['epoch_time_s'], row['train_img_per_s'], row['lr'],
                    ' (best)' if improved else '')
        if is_chief:
            states_ok = not (kv is not None and update_on_kv)
            if improved:
                run_dir.save_best(epoch, net, top1)
            run_dir.save_epoch(epoch, net, trainer if states_ok else None, {
                'epoch': epoch, 'metrics': rows, 'best_top1': best, 'model': net_name,
                'num_update': int(trainer._optimizer.num_update), 'seed': args.seed,
                'args': {k: v for k, v in vars(args).items() if k != 'num_devices'}},
                keep_copy=bool(args.save_frequency) and (epoch + 1) % args.save_frequency == 0)
            run_dir.write_metrics(rows)
    if args.save_worker_state:
        net.save_parameters(run_dir.file('worker-%d.params' % rank))
        np.save(run_dir.file('worker-%d-labels.npy' % rank),
                np.concatenate(seen_labels) if seen_labels else np.zeros(0))
    if rows and is_chief:
        logger.info('done: best val top-1 %.4f; parameters in %s (last.params, best.params)',
                    best, run_dir.path)
    return rows


def evaluate(net, val_data, ctx, dtype='float32'):
    """(mean cross-entropy, top-1, top-5) of ``net`` over ``val_data``."""
    import mxnet as mx
    from mxnet import gluon, nd
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    total, loss_sum, hit1, hit5 = 0, 0.0, 0.0, 0.0
    for x, y in val_data:
        xs = gluon.utils.split_and_load(x, ctx_list=ctx, batch_axis=0, even_split=False)
        ys = gluon.utils.split_and_load(y, ctx_list=ctx, batch_axis=0, even_split=False)
        for a, b in zip(xs, ys):
            out = net(a.astype(dtype, copy=False)).astype('float32', copy=False)
            k = min(5, out.shape[1])
            top = nd.topk(out, k=k, axis=1, ret_typ='indices')
            match = (top == b.reshape((-1, 1))).astype('float32')
            s = nd.stack(loss_fn(out, b).sum(), match[:, 0].sum(), match.sum()).as_in_context(mx.cpu()).asnumpy()
            loss_sum, hit1, hit5 = loss_sum + float(s[0]), hit1 + float(s[1]), hit5 + float(s[2])
            total += a.shape[0]
    return loss_sum / max(total, 1), hit1 / max(total, 1), hit5 / max(total, 1)


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


def _lwdna_search(args, hh_net, train_data, ctx, run_dir, is_chief, kv, input_size):
    """Run the LW-DNA search on the training data; save its config and weights."""
    lwdna = _lwdna_module()
    _seed_all(args.seed, -2)
    train_data.set_epoch(-1)

    def batches():
        for x, y in train_data:
            yield x.as_in_context(ctx[0]), y.as_in_context(ctx[0])
    logger.info('LW-DNA search on %s: target MACs ratio %g', args.model, args.lwdna_ratio)
    try:
        net, report = lwdna.search(hh_net, batches(), ctx, target_flops_ratio=args.lwdna_ratio,
                                   lr=args.lr, momentum=args.momentum, wd=args.wd,
                                   input_size=input_size, log=logger.info)
    except (ValueError, FloatingPointError) as err:
        raise TrainingError('LW-DNA search failed: %s' % err) from None
    name = 'lwdna_' + args.model.split('_', 1)[1]
    if is_chief:
        from gluon_nets.convert import save_params_atomic
        save_params_atomic(net, run_dir.file('lwdna_search.params'))
        write_json_atomic(run_dir.file('lwdna_config.json'), report['config'])
    logger.info('LW-DNA search done: %s', {k: v for k, v in report.items() if k != 'config'})
    if kv is not None:
        kv.barrier() if hasattr(kv, 'barrier') else None
    return net, name, {'config': report['config']}


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


def _setup_logging(run_dir, args, is_chief):
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    stream = _TqdmHandler()
    # per-interval lines go to the log file; on the console the progress bar shows them,
    # unless there is no bar
    stream.setLevel(logging.DEBUG if args.no_progress and args.log_interval else logging.INFO)
    stream.setFormatter(logging.Formatter('%(message)s'))
    logger.addHandler(stream)
    if is_chief and args.logging_file:
        handler = logging.FileHandler(run_dir.file(os.path.basename(args.logging_file)))
        handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))
        handler.setLevel(logging.DEBUG)
        logger.addHandler(handler)


def main(argv=None):
    """Entry point of ``train_imagenet.py``: parse, run, turn known failures into
    one-line errors with exit status 1 (bad flags: status 2)."""
    from gluon_nets.data import DataError
    from gluon_nets.model_zoo import ModelConstructionError
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.resume:
        try:
            check_args(args)
        except UsageError as err:
            parser.error(str(err))
    try:
        run(args, argv)
    except UsageError as err:
        parser.error(str(err))
    except (DataError, ModelConstructionError, TrainingError, FileNotFoundError) as err:
        print('train_imagenet.py: error: %s' % err, file=sys.stderr)
        return 1
    except ValueError as err:  # the registry's unknown-model error, a corrupt checkpoint.json
        if 'unknown model' in str(err):
            parser.error(str(err))
        print('train_imagenet.py: error: %s' % err, file=sys.stderr)
        return 1
    return 0
