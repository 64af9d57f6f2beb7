"""LW-DNA speed: does wall-clock follow the MACs, and how long does shrink take?

Rows (one process, same threads, models timed round-robin so that load on a shared
machine hits them alike):

- ``lwdna_resnet50`` with the config that ``shrink`` finds on the golden weights
  (3.71 GMACs) vs GluonCV ``resnet50_v1b`` (4.09 GMACs), batch 1 and 32, median latency;
  our plain ``lwdna_resnet50`` (same MACs as resnet50_v1b) is a control row;
- ``shrink`` of an initialised ``hh_resnet50`` (width_mult 2, embedding_dim 2: the README
  recipe) on its own: threshold search + kernel generation + building the LW-DNA net.

Usage: ``python bench/lwdna.py [--threads 2] [--repeat 7] [--repeat-large 3]``. MXNet reads
``OMP_NUM_THREADS`` when it loads, so it is set here before the import.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, interleaved_times, set_threads  # noqa: E402  (before mxnet)

GOLDEN = os.path.join(ROOT, 'tests', 'data', 'golden', 'lwdna', 'resnet50_hh_wide2.json')


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=7, help='timed runs per model (batch < 8)')
    parser.add_argument('--repeat-large', type=int, default=3,
                        help='timed runs per model (batch >= 8)')
    parser.add_argument('--batches', '--batch-size', dest='batches', default='1,32')
    parser.add_argument('--skip-shrink', action='store_true')
    return parser.parse_args()


def main():
    args = parse()
    set_threads(args.threads)
    import mxnet as mx
    from gluon_nets import get_model
    from gluon_nets._compat import import_gluoncv
    from gluon_nets.models.lwdna import pad_widths, shrink
    from gluon_nets.profile import count_macs, count_params
    gluoncv = import_gluoncv()

    with open(GOLDEN) as f:
        config = json.load(f)['shrink']['config']
    shrunk = get_model('lwdna_resnet50', config=config)
    shrunk.initialize(mx.init.Xavier())
    models = [
        ('lwdna_resnet50, golden shrink config', shrunk),
        ('gluoncv resnet50_v1b', gluoncv.model_zoo.get_model('resnet50_v1b')),
        ('same, pad_widths(multiple=8)', pad_widths(shrunk, 8)),
        ('same, pad_widths(multiple=16)', pad_widths(shrunk, 16)),
        ('lwdna_resnet50, plain config (control)', get_model('lwdna_resnet50')),
    ]
    models[1][1].initialize(mx.init.Xavier())
    models[4][1].initialize(mx.init.Xavier())
    for _, net in models:
        net.hybridize(static_alloc=True, static_shape=True)
    macs = [count_macs(net) for _, net in models]
    params = [count_params(net) for _, net in models]

    rows = []
    for batch in [int(b) for b in args.batches.split(',')]:
        x = mx.nd.random.uniform(-1, 1, (batch, 3, 224, 224))
        # two warm-up calls each: graph build + allocation
        by_name = interleaved_times({name: (lambda net=net: net(x).wait_to_read())
                                     for name, net in models},
                                    args.repeat if batch < 8 else args.repeat_large, warmup=2)
        times = [by_name[name] for name, _ in models]
        medians = [statistics.median(t) for t in times]
        best = [min(t) for t in times]
        for i, (name, _) in enumerate(models):
            rows.append((name, batch, macs[i], params[i], medians[i], best[i],
                         medians[1] / medians[i], best[1] / best[i]))

    print('\nLW-DNA inference, %d threads, median of %d (batch 1) / %d (batch >= 8) runs, 224x224 '
          '(machine shared with other jobs: ratios within one run are what counts)\n'
          % (args.threads, args.repeat, args.repeat_large))
    print('| model | batch | GMACs | params (M) | ms / batch (median) | ms (min) | img/s (median) '
          '| speed vs resnet50_v1b (median) | (min) |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    for name, batch, m, p, t, tmin, ratio, ratio_min in rows:
        print('| %s | %d | %.3f | %.2f | %.1f | %.1f | %.1f | %.3fx | %.3fx |'
              % (name, batch, m / 1e9, p / 1e6, t * 1e3, tmin * 1e3, batch / t, ratio, ratio_min))

    if not args.skip_shrink:
        del models
        mx.random.seed(0)
        hh = get_model('hh_resnet50', width_mult=2, embedding_dim=2)
        start = time.perf_counter()
        hh.initialize()
        mx.nd.waitall()                    # initialisation runs asynchronously
        init_s = time.perf_counter() - start
        start = time.perf_counter()
        net, report = shrink(hh)
        shrink_s = time.perf_counter() - start
        print('\nshrink(hh_resnet50, width_mult=2, embedding_dim=2), %d threads: %.1f s '
              '(target < 60 s; initialising the 553 M-parameter net took %.1f s, not included); '
              'threshold %.4f after %d search steps, FLOPs ratio %.4f, %.3f GMACs'
              % (args.threads, shrink_s, init_s, report['prune_threshold'],
                 report['search_iterations'], report['flops_ratio'], report['macs'] / 1e9))


if __name__ == '__main__':
    main()
