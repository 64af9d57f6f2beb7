"""Training throughput: our trainer vs GluonCV's training loop, and the data pipeline.

    python bench/train_throughput.py                 # batch 32, 2 threads, 224 px, resnet50_v1b
    python bench/train_throughput.py --size 112 --iters 6

Rows (same process, same threads, same data, the two loops alternated ``--rounds``
times; the median of the rounds is reported):

* ``train_imagenet.py`` loop: :func:`gluon_nets.training.run` on gluoncv's
  ``resnet50_v1b`` (registered under the name ``gluoncv_resnet50_v1b``) for
  ``--iters`` batches of the embedded set, hybridized (static), NAG; its steady-state
  img/s (the first two batches excluded).
* GluonCV loop: the per-iteration steps of GluonCV's
  ``scripts/classification/imagenet/train_imagenet.py`` (``--mode hybrid``):
  ``mx.io.ImageRecordIter`` with its augmentation on the same shards,
  ``split_and_load``, forward/backward under ``autograd.record``, ``trainer.step``,
  ``mx.metric.Accuracy.update`` -- restated here (not copied), timed the same way.
* data pipeline alone: our train loader, batches of the embedded set at ``--size``
  and at the embedded set's native 32 px, against the model's training img/s.

``--octave`` (a separate table): do OctConv's merged octave paths speed up training?
One training step (forward + backward under ``autograd.record``, ``Trainer.step``,
NAG, softmax loss; what ``train_imagenet.py`` runs per batch) of ``--octave-model``
at alpha 0, and at each ``--octave-alphas`` with the paths merged (the default
``OctConv2D(merge=True)``: h2l + l2l, and at stride 2 h2h + l2h, one convolution over
the concatenated inputs) and unmerged (``merge=False``: the reference's four
convolutions), every variant hybridized (static), timed in turns ``--rounds`` times,
process CPU time per image at ``--threads`` (use 1) and wall time::

    python bench/train_throughput.py --octave --threads 1 --size 112 --batch 16 --rounds 5
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

from common import ROOT, format_table, set_threads  # noqa: E402  (before mxnet)


def _register_gluoncv(name):
    from gluon_nets.model_zoo import _REGISTRY, register_model
    from gluon_nets._compat import import_gluoncv
    key = 'gluoncv_' + name
    if key not in _REGISTRY:
        def build(classes=1000, **kwargs):
            gcv = import_gluoncv()
            return gcv.model_zoo.get_model(name, classes=classes, **kwargs)
        build.__doc__ = 'gluoncv %s, (N, 3, H, W) -> (N, classes)' % name
        register_model('bench', name=key)(build)
    return key


def _tiny_val_rec(tmp):
    """32 records of the embedded validation set (the trainer validates after each epoch)."""
    from mxnet import recordio
    from gluon_nets.data import dataset_info
    src = dataset_info('fashion-mnist-mini')['val_rec']
    reader = recordio.MXIndexedRecordIO(src[:-4] + '.idx', src, 'r')
    writer = recordio.MXIndexedRecordIO(os.path.join(tmp, 'val.idx'), os.path.join(tmp, 'val.rec'), 'w')
    for i, key in enumerate(reader.keys[:32]):
        writer.write_idx(i, reader.read_idx(key))
    writer.close()
    return os.path.join(tmp, 'val.rec')


def ours(model, size, batch, iters, threads, tmp, val_rec):
    from gluon_nets.data import dataset_info
    from gluon_nets.training import build_parser, run
    train = ','.join(dataset_info('fashion-mnist-mini')['train_rec'])
    args = build_parser().parse_args([
        '--model', model, '--rec-train', train, '--rec-val', val_rec, '--num-classes', '10',
        '--input-size', str(size), '--batch-size', str(batch), '--num-epochs', '1',
        '--max-iters', str(iters), '-j', str(threads), '--save-dir', tempfile.mkdtemp(dir=tmp),
        '--no-progress', '--log-interval', '0', '--save-frequency', '0', '--logging-file', '',
        '--lr', '0.01'])
    import logging
    logging.getLogger('gluon_nets.train').disabled = True
    rows = run(args)
    logging.getLogger('gluon_nets.train').disabled = False
    return rows[-1]['train_img_per_s']


def gluoncv_loop(model, size, batch, iters, threads):
    """GluonCV train_imagenet.py's iteration (ImageRecordIter, --mode hybrid, nag)."""
    import math
    import mxnet as mx
    from mxnet import autograd, gluon
    from gluon_nets import get_model
    from gluon_nets.data import dataset_info
    info = dataset_info('fashion-mnist-mini')
    ctx = [mx.cpu()]
    net = get_model(model, classes=10)
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    mean = [255 * m for m in info['mean']]
    std = [255 * s for s in info['std']]
    # GluonCV's iterator reads one .rec; the embedded set's first shard has 6000 records
    rec = info['train_rec'][0]
    data = mx.io.ImageRecordIter(
        path_imgrec=rec, path_imgidx=rec[:-4] + '.idx', preprocess_threads=threads, shuffle=True,
        batch_size=batch, data_shape=(3, size, size), mean_r=mean[0], mean_g=mean[1],
        mean_b=mean[2], std_r=std[0], std_g=std[1], std_b=std[2], rand_mirror=True,
        random_resized_crop=True, max_aspect_ratio=4. / 3., min_aspect_ratio=3. / 4.,
        max_random_area=1, min_random_area=0.08, brightness=0.4, saturation=0.4, contrast=0.4,
        pca_noise=0.1)
    sched = mx.lr_scheduler.FactorScheduler(step=10 ** 9, factor=1.0, base_lr=0.01)
    trainer = gluon.Trainer(net.collect_params(), 'nag',
                            {'wd': 1e-4, 'momentum': 0.9, 'lr_scheduler': sched})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    metric = mx.metric.Accuracy()
    tic = None
    for i, b in enumerate(data):
        if i == iters:
            break
        xs = gluon.utils.split_and_load(b.data[0], ctx_list=ctx, batch_axis=0)
        ys = gluon.utils.split_and_load(b.label[0], ctx_list=ctx, batch_axis=0)
        with autograd.record():
            outs = [net(x.astype('float32', copy=False)) for x in xs]
            losses = [loss_fn(o, y.astype('float32', copy=False)) for o, y in zip(outs, ys)]
        for loss in losses:
            loss.backward()
        trainer.step(batch)
        metric.update(ys, outs)
        if i == 1:
            tic = time.time()
    assert not math.isnan(metric.get()[1])
    return batch * (iters - 2) / (time.time() - tic)


def pipeline(size, batch, threads, batches):
    from gluon_nets import data
    loader = data.train_loader(batch_size=batch, input_size=size, num_workers=threads)
    n, tic = 0, None
    for i, (x, y) in enumerate(loader):
        x.wait_to_read()
        if i == 1:
            tic = time.time()
        elif i > 1:
            n += x.shape[0]
        if i == batches + 1:
            break
    return n / (time.time() - tic)


def octave_steps(model, alphas, size, batch, rounds, threads):
    """{label: (wall s/img, cpu s/img)} of one training step of ``model`` per variant."""
    import mxnet as mx
    from mxnet import gluon
    from common import interleaved_wall_cpu, mxnet_training_step
    from gluon_nets import get_model
    variants = [('alpha 0', 0.0, True)]
    for alpha in alphas:
        variants += [('alpha %g merged' % alpha, alpha, True),
                     ('alpha %g unmerged' % alpha, alpha, False)]
    x = mx.nd.random.uniform(-1, 1, (batch, 3, size, size))
    y = mx.nd.array(list(range(batch)), dtype='float32') % 10
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    steps = {}
    for label, alpha, merge in variants:
        net = get_model(model, alpha=alpha, classes=10, oct_kwargs={'merge': merge})
        net.initialize(mx.init.MSRAPrelu())
        net.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), 'nag',
                                {'learning_rate': 0.01, 'momentum': 0.9, 'wd': 1e-4})
        steps[label] = mxnet_training_step(net, trainer, x, y, loss_fn)
    times = interleaved_wall_cpu(steps, rounds, warmup=2)
    return {label: (statistics.median(w) / batch, statistics.median(c) / batch)
            for label, (w, c) in times.items()}


def octave_main(args, threads):
    res = octave_steps(args.octave_model, [float(a) for a in args.octave_alphas.split(',')],
                       args.size, args.batch, args.rounds, threads)
    base_w, base_c = res['alpha 0']
    rows = [[label, '%.2f' % (1 / c), '%.2fx' % (base_c / c), '%.2f' % (1 / w),
             '%.2fx' % (base_w / w)] for label, (w, c) in res.items()]
    print('%s training step, batch %d, %d px, %d thread(s), median of %d interleaved rounds'
          % (args.octave_model, args.batch, args.size, threads, args.rounds))
    print(format_table(['variant', 'img/s (CPU time)', 'vs alpha 0', 'img/s (wall)',
                        'vs alpha 0'], rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='resnet50_v1b', help='a gluoncv model name')
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--iters', type=int, default=6, help='batches per timing (first 2 untimed)')
    parser.add_argument('--rounds', type=int, default=2, help='alternations of the two loops')
    parser.add_argument('--small-model', default='oct_resnet26_v1b',
                        help='zoo model whose 32-px training speed the pipeline is compared with')
    parser.add_argument('--octave', action='store_true',
                        help='only the OctConv table: merged vs unmerged octave paths')
    parser.add_argument('--octave-model', default='oct_resnet50_v1b')
    parser.add_argument('--octave-alphas', default='0.125,0.5')
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    sys.path.insert(0, ROOT)
    if args.octave:
        return octave_main(args, threads)
    model = _register_gluoncv(args.model)
    tmp = tempfile.mkdtemp(prefix='train_bench_')
    val_rec = _tiny_val_rec(tmp)
    ours_ips, gcv_ips = [], []
    for _ in range(args.rounds):
        ours_ips.append(ours(model, args.size, args.batch, args.iters, threads, tmp, val_rec))
        gcv_ips.append(gluoncv_loop(model, args.size, args.batch, args.iters, threads))
    o, g = statistics.median(ours_ips), statistics.median(gcv_ips)
    small = ours(args.small_model, 32, args.batch, max(args.iters, 12), threads, tmp, val_rec)
    pipe_big = pipeline(args.size, args.batch, threads, 30)
    pipe_small = pipeline(32, args.batch, threads, 100)
    rows = [
        ['train img/s, %s %dpx' % (args.model, args.size), '%.2f' % o, '%.2f' % g, '%.2fx' % (o / g)],
        ['data pipeline img/s at %dpx vs training' % args.size, '%.0f' % pipe_big, '%.2f' % o,
         '%.0fx' % (pipe_big / o)],
        ['data pipeline img/s at 32px vs %s training' % args.small_model, '%.0f' % pipe_small,
         '%.1f' % small, '%.0fx' % (pipe_small / small)],
    ]
    print('batch %d, %d threads, rounds: ours %s, gluoncv %s' % (
        args.batch, threads, ['%.2f' % v for v in ours_ips], ['%.2f' % v for v in gcv_ips]))
    print(format_table(['measure', 'ours', 'reference', 'ratio'], rows))


if __name__ == '__main__':
    main()
