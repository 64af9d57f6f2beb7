"""Oct-ResNet-50 v1b inference speed: ours vs the reference Gluon code (same weights,
same threads, same process, interleaved), and ours at each alpha vs ours at alpha 0.

    python bench/octconv.py --ref-dir /tmp/ref_octconv --threads 2
    python bench/octconv.py --ref-dir /tmp/ref_octconv --batch 32 --size 112 --rounds 3

``--ref-dir`` is a checkout of facebookresearch/OctConv (its ``utils/gluon/utils`` is
imported from there; nothing of it is kept in this repository). Without it only our
columns are printed.

Method: every net is hybridized with ``static_alloc=True, static_shape=True``; after
two warm-up passes the nets of one alpha (reference, ours) and our alpha-0 net are
timed in turns, ``--rounds`` times, and each gets its fastest pass (the least
disturbed one on a shared machine); the CPU-time columns compare the least CPU
seconds a pass took (less sensitive to other jobs). Before timing, our output is checked against the
reference's imperative output on the same input (``rel diff`` column,
max|d|/max|ref|).
"""
import argparse
import os
import sys

from common import format_table, interleaved_wall_cpu, set_threads  # noqa: E402  (before mxnet)


def _reference_builder(ref_dir):
    gluon_dir = os.path.join(os.path.abspath(ref_dir), 'utils', 'gluon')
    if not os.path.isdir(os.path.join(gluon_dir, 'utils')):
        raise SystemExit('error: %s has no utils/gluon/utils (a facebookresearch/OctConv '
                         'checkout is expected)' % ref_dir)
    sys.path.insert(0, gluon_dir)
    from utils import resnetv1  # the reference's module, from the checkout
    return resnetv1.resnet50_v1b


def _hybridize(net):
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--ref-dir', default=None, help='facebookresearch/OctConv checkout')
    parser.add_argument('--alphas', default='0,0.125,0.25,0.5,0.75')
    parser.add_argument('--batch', '--batch-size', dest='batch', default='1,32', help='comma-separated batch sizes')
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224, help='input side (multiple of 32)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)

    import mxnet as mx
    import numpy as np
    from gluon_nets.convert import convert_state_dict
    from gluon_nets import get_model

    alphas = [float(a) for a in args.alphas.split(',')]
    if args.size % 32:
        raise SystemExit('error: --size must be a multiple of 32, got %d' % args.size)
    ref_fn = _reference_builder(args.ref_dir) if args.ref_dir else None

    rows = []
    for batch in [int(b) for b in args.batch.split(',')]:
        mx.random.seed(0)
        x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, args.size, args.size))
        base = _hybridize(get_model('oct_resnet50_v1b', alpha=0.0))
        base.initialize(mx.init.Xavier())
        base(x).wait_to_read()
        for alpha in alphas:
            nets, diff = {}, float('nan')
            if ref_fn is not None:
                ref = ref_fn(ratio=alpha)
                ref.initialize(mx.init.Xavier(magnitude=2.0))
                expected = ref(x).asnumpy()           # imperative (also sets deferred shapes)
                weights = {n: p.data().asnumpy() for n, p in ref.collect_params().items()}
                nets['ref'] = _hybridize(ref)
                ours = convert_state_dict('oct_resnet50_v1b', weights, alpha=alpha)
            else:
                ours = get_model('oct_resnet50_v1b', alpha=alpha)
                ours.initialize(mx.init.Xavier(magnitude=2.0))
            nets['ours'] = _hybridize(ours)
            outs = {k: n(x).asnumpy() for k, n in nets.items()}
            if 'ref' in outs:
                scale = np.abs(expected).max()
                diff = float(np.abs(outs['ours'] - expected).max() / scale)
                ref_diff = float(np.abs(outs['ref'] - expected).max() / scale)
                if ref_diff > 1e-5:
                    print('warning: alpha %g: the hybridized reference differs from its imperative '
                          'run by %.2g' % (alpha, ref_diff), file=sys.stderr)
            steps = {k: (lambda net=net: net(x).wait_to_read()) for k, net in nets.items()}
            steps['base'] = lambda: base(x).wait_to_read()
            # (wall, CPU) per pass, in turns: on a shared machine the CPU time is far
            # less disturbed by other jobs than the wall time
            times = interleaved_wall_cpu(steps, args.rounds, warmup=1)
            base_wall, base_cpu = times.pop('base')
            best = {k: min(v[0]) for k, v in times.items()}
            cpu = {k: min(v[1]) for k, v in times.items()}
            rows.append(dict(alpha=alpha, batch=batch, ref=best.get('ref'), ours=best['ours'],
                             base=min(base_wall), diff=diff,
                             ref_cpu=cpu.get('ref'), ours_cpu=cpu['ours'],
                             base_cpu=min(base_cpu)))
            del nets, ours

    header = ['alpha', 'batch', 'size', 'ref img/s', 'ours img/s', 'ours/ref',
              'ours / ours@a0', 'ours/ref (CPU s)', 'ours / ours@a0 (CPU s)', 'rel diff']
    table = []
    for r in rows:
        ips = r['batch'] / r['ours']
        table.append(['%.3f' % r['alpha'], r['batch'], args.size,
                      '%.1f' % (r['batch'] / r['ref']) if r['ref'] else '-',
                      '%.1f' % ips,
                      '%.2fx' % (r['ref'] / r['ours']) if r['ref'] else '-',
                      '%.2fx' % (r['base'] / r['ours']),
                      '%.2fx' % (r['ref_cpu'] / r['ours_cpu']) if r['ref'] else '-',
                      '%.2fx' % (r['base_cpu'] / r['ours_cpu']),
                      '%.1e' % r['diff'] if r['ref'] else '-'])
        if r['ref'] and r['diff'] > 1e-4:
            print('ERROR: alpha %g: our output differs from the reference by %.2g'
                  % (r['alpha'], r['diff']), file=sys.stderr)
    print('Oct-ResNet-50 v1b, %d threads, hybridized static, fastest of %d interleaved passes'
          % (threads, args.rounds))
    print(format_table(header, table))
    return 0


if __name__ == '__main__':
    sys.exit(main())
