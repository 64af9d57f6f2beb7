"""ED-Net inference speed: ours (hybridized) vs the authors' PyTorch code on the same
weights, and the cost of the ED path (ours vs ours ``ed=False``).

    python bench/ednet.py --ref-dir /tmp/ref_ednet --threads 2 --batch 1,32

``--ref-dir`` is a checkout of megvii-research/ED-Net (never part of this repository);
without it (or without torch) the reference columns are left out. The reference's weights
(its own init) are converted with ``gluon_nets.convert.convert_state_dict`` so both nets
compute the same function; the relative difference of their logits is printed.

Variants (each timed in interleaved rounds, median of the rounds, so that the load of a
shared machine hits all of them alike):

* ``ref``      the reference model, ``torch.set_num_threads(threads)``, eval, no_grad
* ``hyb``      ours, ``hybridize(static_alloc=True, static_shape=True)``
* ``opt``      ours after ``gluon_nets.inference.optimize(net, input_shape=x.shape)``
               (what eval.py and ``symbols.export`` ship; exact to 1e-5)
* ``fused``    ours, ``optimize_for(x, 'MKLDNN')`` (oneDNN folds conv+BN(+add)(+ReLU))
* ``*_noed``   the same with ``ed=False`` (the plain ResNet / ResNeXt baseline)

``--op-profile`` instead prints, per MXNet operator, the time of ours with and without the
ED path (MXNet profiler, bulk execution off), to show where the ED path's time goes.

Ratios: ``ours/ref`` = img/s of ours over the reference, by wall time and by process CPU
time (median of the rounds; at ``--threads 1`` the CPU column is the one a loaded machine
disturbs least, at ``--threads 2`` read the wall column); ``ED cost`` = wall time with
the ED path over time without it, minus one.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import format_table, interleaved_wall_cpu, set_threads  # noqa: E402  (before mxnet)

REF_CALLS = {'ed_resnet50': ('ed_resnet', 'resnet50_ed'),
             'ed_resnet101': ('ed_resnet', 'resnet101_ed'),
             'ed_resnet152': ('ed_resnet', 'resnet152_ed'),
             'ed_resnext50_32x4d': ('ed_resnext', 'resnext50_ed'),
             'ed_resnext101_32x4d': ('ed_resnext', 'resnext101_ed'),
             'ed_se_resnet50': ('ed_se_resnet', 'se_resnet50_ed'),
             'ed_se_resnet101': ('ed_se_resnet', 'se_resnet101_ed'),
             'ed_se_resnet152': ('ed_se_resnet', 'se_resnet152_ed'),
             'ed_se_resnext50_32x4d': ('ed_se_resnext', 'se_resnext50_ed'),
             'ed_se_resnext101_32x4d': ('ed_se_resnext', 'se_resnext101_ed'),
             'ed_se_resnext152_32x4d': ('ed_se_resnext', 'se_resnext152_ed')}


HEADER = ('model', 'batch', 'variant', 'img/s (wall)', 'img/s (CPU)', 'ours/ref (wall)',
          'ours/ref (CPU)', 'ED cost (wall)', 'rel diff')


def torch_reference(name, ref_dir, **kwargs):
    """The authors' model for registry ``name``, built from the checkout at ``ref_dir``
    (the hook ``bench/throughput.py`` looks for)."""
    import importlib
    if name not in REF_CALLS:
        raise ValueError('%s has no counterpart in the reference code' % name)
    if kwargs:
        raise ValueError('the reference models take no options (got %s)' % sorted(kwargs))
    if not os.path.isfile(os.path.join(ref_dir, 'ed_resnet.py')):
        raise FileNotFoundError('%s is not an ED-Net checkout (no ed_resnet.py)' % ref_dir)
    if ref_dir not in sys.path:
        sys.path.insert(0, ref_dir)
    module, call = REF_CALLS[name]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')       # the reference uses deprecated init names
        return getattr(importlib.import_module(module), call)().eval()


def op_profile(args, threads):
    """Per-operator milliseconds per forward of ours (hybridized) with / without the ED path."""
    import json
    import mxnet as mx
    from gluon_nets import get_model
    rows = []
    for name in args.models.split(','):
        for batch in [int(b) for b in args.batch.split(',')]:
            x = mx.nd.random.uniform(-1, 1, (batch, 3, args.size, args.size))
            per_op = {}
            for ed in (True, False):
                net = get_model(name, ed=ed)
                net.initialize(net.default_init)
                net.hybridize(static_alloc=True, static_shape=True)
                for _ in range(2):
                    net(x).wait_to_read()
                mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                                       filename=os.devnull)
                mx.profiler.set_state('run')
                for _ in range(args.rounds):
                    net(x).wait_to_read()
                mx.nd.waitall()
                mx.profiler.set_state('stop')
                stats = json.loads(mx.profiler.dumps(reset=True, format='json'))
                for op, entry in stats['Time']['operator'].items():
                    per_op.setdefault(op, {})[ed] = (entry['Count'] / args.rounds,
                                                     entry['Total'] / args.rounds)
            for op, by_ed in sorted(per_op.items(), key=lambda kv: -kv[1].get(True, (0, 0))[1]):
                with_ed, without = by_ed.get(True, (0, 0.0)), by_ed.get(False, (0, 0.0))
                rows.append((name, batch, op, '%d' % with_ed[0], '%.1f' % with_ed[1],
                             '%d' % without[0], '%.1f' % without[1],
                             '%+.1f' % (with_ed[1] - without[1])))
    print('threads=%d, ms per forward (MXNet profiler, bulk execution off, %d runs)'
          % (threads, args.rounds))
    print(format_table(('model', 'batch', 'operator', 'calls (ED)', 'ms (ED)', 'calls (ed=False)',
                        'ms (ed=False)', 'ED extra ms'), rows))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default='ed_resnet50,ed_resnext50_32x4d')
    parser.add_argument('--batch', '--batch-size', dest='batch', default='1,32')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--variants', default='ref,hyb,opt,hyb_noed,fused,fused_noed',
                        help='comma-separated subset of ref,hyb,opt,fused and their '
                             '*_noed forms (hyb_noed, opt_noed, fused_noed)')
    parser.add_argument('--ref-dir', default=None, help='checkout of megvii-research/ED-Net')
    parser.add_argument('--op-profile', action='store_true',
                        help='per-operator time with and without the ED path (no reference)')
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    if args.op_profile:
        os.environ['MXNET_EXEC_BULK_EXEC_INFERENCE'] = '0'   # one profiler entry per operator
        return op_profile(args, threads)

    import statistics
    import mxnet as mx
    import numpy as np
    from gluon_nets import get_model
    from gluon_nets.convert import convert_state_dict
    from gluon_nets.inference import optimize

    variants = args.variants.split(',')
    known = {'ref'} | {m + o for m in ('hyb', 'opt', 'fused') for o in ('', '_noed')}
    unknown = [v for v in variants if v not in known]
    if unknown:
        parser.error('--variants: unknown %s (known: %s)' % (','.join(unknown),
                                                             ','.join(sorted(known))))
    want_ref = 'ref' in variants
    torch = None
    if want_ref:
        if not args.ref_dir:
            print('note: no --ref-dir, reference columns left out', file=sys.stderr)
            variants.remove('ref')
        else:
            try:
                import torch
                torch.set_num_threads(threads)
            except ImportError:
                print('note: torch is not installed, reference columns left out',
                      file=sys.stderr)
                variants.remove('ref')

    rows = []
    for name in args.models.split(','):
        if 'ref' in variants:
            ref = torch_reference(name, args.ref_dir)
            state = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
        else:
            ref = None
            donor = get_model(name)
            donor.initialize(donor.default_init)
            from gluon_nets.models.ednet import reference_state_dict_name
            state = {reference_state_dict_name(k): p.data().asnumpy()
                     for k, p in donor._collect_params_with_prefix().items()}
        for batch in [int(b) for b in args.batch.split(',')]:
            x_np = np.random.RandomState(0).uniform(-1, 1, (batch, 3, args.size, args.size))
            x_np = x_np.astype(np.float32)
            x = mx.nd.array(x_np)
            steps, outputs = {}, {}
            for variant in variants:
                if variant == 'ref':
                    xt = torch.from_numpy(x_np)

                    def step(model=ref, xt=xt):
                        with torch.no_grad():
                            return model(xt)
                    outputs[variant] = step().numpy()
                    steps[variant] = step
                    continue
                mode, _, option = variant.partition('_')
                if option == 'noed':
                    net = get_model(name, ed=False)
                    net.initialize(net.default_init)
                else:
                    net = convert_state_dict(name, state)
                if mode == 'fused':
                    net.optimize_for(x, backend='MKLDNN', static_alloc=True, static_shape=True)
                elif mode == 'opt':
                    net = optimize(net, input_shape=x.shape)
                else:
                    net.hybridize(static_alloc=True, static_shape=True)

                def step(net=net):
                    out = net(x)
                    out.wait_to_read()
                    return out
                outputs[variant] = step().asnumpy()
                steps[variant] = step
            times = interleaved_wall_cpu(steps, args.rounds)
            wall = {k: statistics.median(v[0]) for k, v in times.items()}
            cpu = {k: statistics.median(v[1]) for k, v in times.items()}
            base = outputs.get('ref', outputs.get('hyb'))
            for variant in variants:
                err = ''
                if not variant.endswith('noed') and variant != 'ref' and base is not None:
                    err = '%.1e' % (np.abs(outputs[variant] - base).max()
                                    / max(np.abs(base).max(), 1e-12))
                mode = variant.split('_')[0]
                vs_ref = vs_ref_cpu = ''
                if 'ref' in wall and variant != 'ref':
                    vs_ref = '%.2fx' % (wall['ref'] / wall[variant])
                    vs_ref_cpu = '%.2fx' % (cpu['ref'] / cpu[variant])
                noed = '%s_noed' % mode
                ed_cost = ('%+.1f%%' % (100 * (wall[variant] / wall[noed] - 1))
                           if noed in wall and variant != noed and variant != 'ref' else '')
                rows.append((name, batch, variant, '%.2f' % (batch / wall[variant]),
                             '%.2f' % (batch / cpu[variant]), vs_ref, vs_ref_cpu, ed_cost, err))
            print(format_table(HEADER, rows[-len(variants):]), flush=True)
    print()
    print('threads=%d, input %d px, %d interleaved rounds (median); machine: %s; load %s'
          % (threads, args.size, args.rounds, os.uname().nodename,
             ' '.join('%.2f' % v for v in os.getloadavg())))
    print(format_table(HEADER, rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
