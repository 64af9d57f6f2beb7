"""Oct-ResNet-50 v1b inference speed: ours vs the reference Gluon code (same weights,
same threads, same process, interleaved), and ours at each alpha vs ours at alpha 0.

    python bench/octconv.py --ref-dir /tmp/ref_octconv --threads 2
    python bench/octconv.py --ref-dir /tmp/ref_octconv --batch 32 --size 112 --rounds 3

``--ref-dir`` is a checkout of facebookresearch/OctConv (its ``utils/gluon/utils`` is
imported from there; nothing of it is kept in this repository). Without it only our
columns are printed.

Variants: ``ref`` (the reference net), ``ours`` (hybridized), ``opt`` (ours after
``gluon_nets.inference.optimize(net, input_shape=x.shape)``: what eval.py and
``symbols.export`` ship; exact to 1e-5; ``--no-opt`` leaves it out) and ``base`` (ours at
alpha 0, hybridized; ``--no-base`` leaves it out).

Method: every net is hybridized with ``static_alloc=True, static_shape=True``; after
a warm-up pass the nets of one alpha and our alpha-0 net are timed in turns,
``--rounds`` times; each gets the median of its passes, by wall time and by process CPU
time (at ``--threads 1`` read the CPU columns, which other jobs on a shared machine
disturb least; at ``--threads 2`` the wall columns). Before timing, our output is
checked against the reference's imperative output on the same input (``rel diff``
column, max|d|/max|ref|).
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
    parser.add_argument('--no-opt', action='store_true', help='leave out the optimize()d form')
    parser.add_argument('--no-base', action='store_true', help='leave out ours at alpha 0')
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)

    import statistics
    import mxnet as mx
    import numpy as np
    from gluon_nets.convert import convert_state_dict
    from gluon_nets import get_model
    from gluon_nets.inference import optimize

    alphas = [float(a) for a in args.alphas.split(',')]
    if args.size % 32:
        raise SystemExit('error: --size must be a multiple of 32, got %d' % args.size)
    ref_fn = _reference_builder(args.ref_dir) if args.ref_dir else None

    rows = []
    for batch in [int(b) for b in args.batch.split(',')]:
        mx.random.seed(0)
        x = mx.nd.random.uniform(-1, 1, shape=(batch, 3, args.size, args.size))
        base = None
        if not args.no_base:
            base = _hybridize(get_model('oct_resnet50_v1b', alpha=0.0))
            base.initialize(mx.init.Xavier())
            base(x).wait_to_read()
        for alpha in alphas:
            nets, diff, opt_diff = {}, float('nan'), float('nan')
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
            if not args.no_opt:
                nets['opt'] = optimize(ours, input_shape=x.shape)
            outs = {k: n(x).asnumpy() for k, n in nets.items()}
            if ref_fn is None:
                expected = outs['ours']
            scale = np.abs(expected).max()
            diff = float(np.abs(outs['ours'] - expected).max() / scale)
            if 'opt' in outs:
                opt_diff = float(np.abs(outs['opt'] - expected).max() / scale)
            if 'ref' in outs:
                ref_diff = float(np.abs(outs['ref'] - expected).max() / scale)
                if ref_diff > 1e-5:
                    print('warning: alpha %g: the hybridized reference differs from its imperative '
                          'run by %.2g' % (alpha, ref_diff), file=sys.stderr)
            steps = {k: (lambda net=net: net(x).wait_to_read()) for k, net in nets.items()}
            if base is not None:
                steps['base'] = lambda: base(x).wait_to_read()
            # (wall, CPU) per pass, in turns: on a shared machine the CPU time is far
            # less disturbed by other jobs than the wall time
            times = interleaved_wall_cpu(steps, args.rounds, warmup=1)
            wall = {k: statistics.median(v[0]) for k, v in times.items()}
            cpu = {k: statistics.median(v[1]) for k, v in times.items()}
            rows.append(dict(alpha=alpha, batch=batch, wall=wall, cpu=cpu, diff=diff,
                             opt_diff=opt_diff, has_ref=ref_fn is not None))
            del nets, ours

    header = ['alpha', 'batch', 'size', 'clock', 'ref img/s', 'ours img/s', 'opt img/s',
              'ours/ref', 'opt/ref', 'ours / ours@a0', 'opt / ours@a0', 'rel diff ours',
              'rel diff opt']
    table = []
    for r in rows:
        for clock in ('wall', 'cpu'):
            t = r[clock]

            def ips(key):
                return '%.1f' % (r['batch'] / t[key]) if key in t else '-'

            def ratio(slow, fast):
                return '%.2fx' % (t[slow] / t[fast]) if slow in t and fast in t else '-'
            table.append(['%.3f' % r['alpha'], r['batch'], args.size,
                          'wall' if clock == 'wall' else 'CPU', ips('ref'), ips('ours'),
                          ips('opt'), ratio('ref', 'ours'), ratio('ref', 'opt'),
                          ratio('base', 'ours'), ratio('base', 'opt'),
                          '%.1e' % r['diff'] if r['has_ref'] else '-',
                          '%.1e' % r['opt_diff']])
        if r['has_ref'] and r['diff'] > 1e-4:
            print('ERROR: alpha %g: our output differs from the reference by %.2g'
                  % (r['alpha'], r['diff']), file=sys.stderr)
    print('Oct-ResNet-50 v1b, %d threads, hybridized static, median of %d interleaved passes, '
          'load %s' % (threads, args.rounds, ' '.join('%.2f' % v for v in os.getloadavg())))
    print(format_table(header, table))
    return 0


if __name__ == '__main__':
    sys.exit(main())
