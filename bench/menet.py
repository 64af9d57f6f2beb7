"""MENet inference speed: ours (hybridized) vs the authors' PyTorch code, same weights,
same threads, same batch.

    python bench/menet.py --ref-dir /tmp/ref_menet --threads 2 --batch 1,32

``--ref-dir`` is a checkout of clavichord93/MENet (never part of this repository; its
PyTorch 0.2 model code runs unchanged on torch 2.x). Without it, or without torch, the
reference rows are left out. The reference model's own random init is converted with
``convert_state_dict`` so both compute the same function; the relative difference of
their logits is printed per row.

Variants, timed in interleaved rounds (one forward of each per round, median over the
rounds, so that the load of a shared machine hits all of them alike):

* ``ref``     the reference, ``torch.set_num_threads(threads)``, eval, ``no_grad``
* ``hyb``     ours as built by ``get_model``, ``hybridize(static_alloc, static_shape)``
* ``folded``  ours after :func:`gluon_nets.models.menet.fold_batchnorm` (inference-only
              deployment form: every BN folded into its conv), hybridized likewise
* ``opt``     ours after ``gluon_nets.inference.optimize(net, input_shape=x.shape)`` (what
              eval.py and ``symbols.export`` ship: BN folded, odd widths padded, the
              oneDNN partitioner where it is faster; exact to 1e-5)
* ``mkldnn``  (``--mkldnn``) ours, ``hybridize(backend='MKLDNN')`` (oneDNN's own
              conv+BN(+add)(+ReLU) fusion), for comparison

Columns: img/s from the median wall time and from the median process CPU time of the
rounds, and ours/ref by both (at ``--threads 1`` read the CPU columns, which a loaded
machine disturbs least; at ``--threads 2`` the wall columns).

``OMP_NUM_THREADS`` is set before MXNet loads (MXNet reads it once).
"""
import argparse
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (format_table, interleaved_wall_cpu, optional_torch,  # noqa: E402
                    set_threads)


def _reference_config(name, ref_dir):
    """(constructor name, model_config dict) of registry ``name`` in the reference repo."""
    configs = os.path.join(ref_dir, 'config', 'imagenet', 'model-config')
    match = re.fullmatch(r'menet(\d+)_(\d+)x1_g(\d+)', name)
    if match:
        path = os.path.join(configs, 'menet', '%s-MENet-%sx1-group-%s.json' % match.groups())
    elif re.fullmatch(r'shufflenet_([\d.]+)x_g(\d+)', name):
        width, groups = re.fullmatch(r'shufflenet_([\d.]+)x_g(\d+)', name).groups()
        path = os.path.join(configs, 'shufflenet', 'ShuffleNet-%sx-group-%s.json' % (width, groups))
    elif re.fullmatch(r'mobilenet_([\d.]+)x', name):
        width = re.fullmatch(r'mobilenet_([\d.]+)x', name).group(1)
        path = os.path.join(configs, 'mobilenet', '%sx-MobileNet-224.json' % width)
    else:
        raise ValueError('%s has no counterpart in the reference code' % name)
    if not os.path.isfile(path):
        raise FileNotFoundError('%s is not a clavichord93/MENet checkout (no %s)' % (ref_dir, path))
    with open(path) as f:
        config = json.load(f)
    return config['name'], config


def torch_reference(name, ref_dir, **kwargs):
    """The authors' model for registry ``name`` built from the checkout at ``ref_dir``
    (also the hook ``bench/throughput.py`` looks for); eval mode."""
    if kwargs:
        raise ValueError('the reference configs take no options (got %s)' % sorted(kwargs))
    constructor, config = _reference_config(name, ref_dir)
    if ref_dir not in sys.path:
        sys.path.insert(0, ref_dir)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from pyvision.models import ImageNet as reference
    return getattr(reference, constructor)(config).eval()


def _ours(name, state_dict, variant, x):
    from gluon_nets.convert import convert_state_dict
    from gluon_nets.models.menet import fold_batchnorm
    net = convert_state_dict(name, state_dict)
    if variant == 'opt':
        from gluon_nets.inference import optimize
        fast = optimize(net, input_shape=x.shape)
        return fast, lambda: fast(x).wait_to_read()
    if variant == 'folded':
        fold_batchnorm(net)
    options = dict(static_alloc=True, static_shape=True)
    if variant == 'mkldnn':
        options['backend'] = 'MKLDNN'
    net.hybridize(**options)

    def step():
        return net(x).wait_to_read()
    return net, step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default='menet228_12x1_g3,menet456_24x1_g3')
    parser.add_argument('--batch', '--batch-size', dest='batch', default='1,32', help='comma-separated batch sizes')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=None,
                        help='timed rounds (default: 30 at batch 1, 6 otherwise)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--ref-dir', default=None, help='checkout of clavichord93/MENet')
    parser.add_argument('--variants', default='hyb,folded,opt',
                        help='comma-separated subset of hyb,folded,opt,mkldnn (ref is added '
                             'with --ref-dir)')
    parser.add_argument('--mkldnn', action='store_true', help='also time backend=MKLDNN')
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(',') if v]
    if args.mkldnn and 'mkldnn' not in variants:
        variants.append('mkldnn')
    unknown = sorted(set(variants) - {'hyb', 'folded', 'opt', 'mkldnn'})
    if unknown or not variants:
        parser.error('--variants: unknown or none: %s (known: hyb,folded,opt,mkldnn)'
                     % ','.join(unknown))
    threads = set_threads(args.threads)

    import numpy as np
    import mxnet as mx
    from gluon_nets import get_model
    torch = optional_torch(threads, wanted=bool(args.ref_dir))

    rows = []
    for name in args.models.split(','):
        reference = torch_reference(name, args.ref_dir) if torch is not None else None
        if reference is not None:
            state_dict = {k: v.numpy() for k, v in reference.state_dict().items()}
        else:   # no reference: time ours on deterministic random weights
            net = get_model(name)
            net.initialize(mx.init.Xavier())
            net(mx.nd.zeros((1, 3, 224, 224)))
            state_dict = None
        for batch in [int(b) for b in args.batch.split(',')]:
            rng = np.random.RandomState(0)
            x_np = rng.uniform(0, 1, (batch, 3, 224, 224)).astype(np.float32)
            x = mx.nd.array(x_np)
            steps, outputs = {}, {}
            for variant in variants:
                if state_dict is not None:
                    ours, steps[variant] = _ours(name, state_dict, variant, x)
                else:
                    ours, steps[variant] = _ours_from(net, name, variant, x)
                outputs[variant] = ours(x).asnumpy()
            if reference is not None:
                x_torch = torch.from_numpy(x_np)

                def ref_step(model=reference, inp=x_torch):
                    with torch.no_grad():
                        return model(inp)
                with torch.no_grad():
                    outputs['ref'] = reference(x_torch).numpy()
                steps['ref'] = ref_step
            rounds = args.rounds or (30 if batch == 1 else 6)
            times = interleaved_wall_cpu(steps, rounds, warmup=args.warmup)
            wall = {key: statistics.median(values[0]) for key, values in times.items()}
            cpu = {key: statistics.median(values[1]) for key, values in times.items()}
            base = outputs.get('ref', outputs[variants[0]])
            for key in steps:
                err = (np.abs(outputs[key] - base).max() / np.abs(base).max())
                ratio = ratio_cpu = '-'
                if 'ref' in wall:
                    ratio = '%.2fx' % (wall['ref'] / wall[key])
                    ratio_cpu = '%.2fx' % (cpu['ref'] / cpu[key])
                rows.append((name, batch, threads, key, '%.1f' % (batch / wall[key]),
                             '%.1f' % (batch / min(times[key][0])),
                             '%.1f' % (batch / cpu[key]), ratio, ratio_cpu, '%.1e' % err))
    print('threads=%d, 224 px, interleaved rounds (median); load %s'
          % (threads, ' '.join('%.2f' % v for v in os.getloadavg())))
    print(format_table(('model', 'batch', 'threads', 'variant', 'img/s (wall median)',
                        'img/s (wall best)', 'img/s (CPU median)', 'vs ref (wall)',
                        'vs ref (CPU)', 'rel. diff of logits'), rows))
    return 0


def _ours_from(net, name, variant, x):
    """Like :func:`_ours`, from a copy of an initialised net of ours (no reference)."""
    import mxnet as mx
    from gluon_nets import get_model
    from gluon_nets.models.menet import fold_batchnorm
    copy = get_model(name)
    copy.initialize()
    copy(mx.nd.zeros((1, 3, 224, 224)))
    source = net._collect_params_with_prefix()
    for key, param in copy._collect_params_with_prefix().items():
        param.set_data(source[key].data())
    if variant == 'opt':
        from gluon_nets.inference import optimize
        fast = optimize(copy, input_shape=x.shape)
        return fast, lambda: fast(x).wait_to_read()
    if variant == 'folded':
        fold_batchnorm(copy)
    copy.hybridize(static_alloc=True, static_shape=True,
                   **({'backend': 'MKLDNN'} if variant == 'mkldnn' else {}))
    return copy, lambda: copy(x).wait_to_read()


if __name__ == '__main__':
    sys.exit(main())
