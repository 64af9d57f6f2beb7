"""LW-DNA speed: does wall-clock follow the MACs, how does ours compare with the authors'
PyTorch model, and how long does shrink take?

Rows (one process, same threads, models timed round-robin so that load on a shared
machine hits them alike; ``--rows`` picks a subset):

- ``golden``: ``lwdna_resnet50`` with the config that ``shrink`` finds on the golden
  weights (3.71 GMACs), hybridized (static alloc/shape);
- ``opt``: the same net after ``gluon_nets.inference.optimize`` (what eval.py and
  ``symbols.export`` ship: BN folded, widths padded to the SIMD multiple; exact to 1e-5);
- ``ref`` (with ``--ref-dir``, a checkout of ofsoundof/Heterogeneity_Hypothesis): the
  authors' LW-DNA model as their evaluation builds it (``model/resnet_imagenet.py``:
  torchvision's ResNet-50, the LW-DNA tensors loaded into it by position), holding the
  golden net's weights (its logits are compared with ours); eval, no_grad,
  ``torch.set_num_threads(threads)``;
- ``r50``: GluonCV ``resnet50_v1b`` (4.09 GMACs); ``pad8``/``pad16``: the golden net after
  ``pad_widths(multiple=8/16)``; ``plain``: our plain ``lwdna_resnet50`` (same MACs as
  resnet50_v1b), a control row;
- ``shrink`` of an initialised ``hh_resnet50`` (width_mult 2, embedding_dim 2: the README
  recipe) on its own: threshold search + kernel generation + building the LW-DNA net.

img/s come from the median wall time and from the median process CPU time of the rounds
(at ``--threads 1`` read the CPU columns, which a loaded machine disturbs least; at
``--threads 2`` the wall columns); ratios are of img/s (> 1: the row is faster).

Usage: ``python bench/lwdna.py [--threads 2] [--repeat 7] [--repeat-large 3]
[--ref-dir /tmp/ref_lwdna --rows golden,opt,ref,r50 --skip-shrink]``. MXNet reads
``OMP_NUM_THREADS`` when it loads, so it is set here before the import.
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, interleaved_wall_cpu, set_threads  # noqa: E402  (before mxnet)

GOLDEN = os.path.join(ROOT, 'tests', 'data', 'golden', 'lwdna', 'resnet50_hh_wide2.json')
ROWS = ('golden', 'opt', 'ref', 'r50', 'pad8', 'pad16', 'plain')
TITLES = {'golden': 'lwdna_resnet50, golden shrink config',
          'opt': 'same, inference.optimize',
          'ref': 'reference (torchvision ResNet, LW-DNA tensors)',
          'r50': 'gluoncv resnet50_v1b',
          'pad8': 'same, pad_widths(multiple=8)',
          'pad16': 'same, pad_widths(multiple=16)',
          'plain': 'lwdna_resnet50, plain config (control)'}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=7, help='timed runs per model (batch < 8)')
    parser.add_argument('--repeat-large', type=int, default=3,
                        help='timed runs per model (batch >= 8)')
    parser.add_argument('--batches', '--batch-size', '--batch', dest='batches', default='1,32')
    parser.add_argument('--rows', default='golden,opt,ref,r50,pad8,pad16,plain',
                        help='comma-separated subset of %s (ref needs --ref-dir)' % ','.join(ROWS))
    parser.add_argument('--ref-dir', default=None,
                        help='checkout of ofsoundof/Heterogeneity_Hypothesis (ref row)')
    parser.add_argument('--skip-shrink', action='store_true')
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(',') if r]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown or not rows:
        parser.error('--rows: unknown or none: %s (known: %s)' % (','.join(unknown),
                                                                 ','.join(ROWS)))
    if 'ref' in rows and not args.ref_dir:
        print('note: no --ref-dir, the ref row is left out', file=sys.stderr)
        rows.remove('ref')
    if args.ref_dir and not os.path.isfile(os.path.join(args.ref_dir, 'model',
                                                        'resnet_imagenet.py')):
        parser.error('--ref-dir: %s is not a Heterogeneity_Hypothesis checkout (no '
                     'model/resnet_imagenet.py)' % args.ref_dir)
    args.rows = rows
    return args


def _torchvision_models():
    """``torchvision.models``. Where the installed torchvision's compiled ops do not load
    beside this torch (a CUDA wheel beside the CPU torch fails with 'operator
    torchvision::nms does not exist'), its pure-Python model code is loaded without the
    package's ``__init__`` (which registers those ops): the ResNet needs none of them."""
    import importlib
    import importlib.util
    import types
    try:
        import torchvision
        return torchvision.models
    except (ImportError, RuntimeError) as err:
        for key in [k for k in sys.modules if k == 'torchvision' or k.startswith('torchvision.')]:
            del sys.modules[key]
        spec = importlib.util.find_spec('torchvision')
        if spec is None or not spec.submodule_search_locations:
            raise
        print('note: torchvision does not import here (%s); loading its model code only'
              % str(err).splitlines()[0], file=sys.stderr)
        stub = types.ModuleType('torchvision')
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules['torchvision'] = stub
        stub.models = importlib.import_module('torchvision.models')
        return stub.models


def torch_reference(name, ref_dir, config=None, net=None):
    """The authors' LW-DNA model for registry ``name`` (``lwdna_resnet*``), as their
    evaluation builds it: ``make_model`` of ``model/resnet_imagenet.py`` in the checkout
    at ``ref_dir`` (torchvision's ResNet) and its positional ``load_state_dict``, given the
    tensors of our initialised LW-DNA ``net`` (default: a Xavier-initialised net of
    ``config``) in torchvision order; eval mode."""
    import importlib.util
    import types
    import mxnet as mx
    import torch
    from gluon_nets import get_model
    from gluon_nets.models.lwdna.conversion import _torchvision_name
    if not name.startswith('lwdna_resnet'):
        raise ValueError('%s has no counterpart in the reference code' % name)
    if net is None:
        net = get_model(name, config=config)
        net.initialize(mx.init.Xavier())
        net(mx.nd.zeros((1, 3, 64, 64)))
    path = os.path.join(ref_dir, 'model', 'resnet_imagenet.py')
    if not os.path.isfile(path):
        raise FileNotFoundError('%s is not a Heterogeneity_Hypothesis checkout (no %s)'
                                % (ref_dir, path))
    _torchvision_models()       # the reference does `from torchvision import models`
    spec = importlib.util.spec_from_file_location('_lwdna_reference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    depth = int(name[len('lwdna_resnet'):])
    model = module.make_model([types.SimpleNamespace(depth=depth)])
    ours = {_torchvision_name(k): p.data().asnumpy()
            for k, p in net._collect_params_with_prefix().items()}
    current = model.state_dict()
    missing = sorted(set(ours) - set(current))
    if missing:
        raise ValueError('our parameters %s have no torchvision counterpart' % missing[:3])
    state = {k: (torch.from_numpy(ours[k]) if k in ours else v) for k, v in current.items()}
    with contextlib.redirect_stdout(io.StringIO()):     # it prints a line per tensor
        model.load_state_dict(state)
    module.set_channels(model)
    return model.eval()


def main(argv=None):
    args = parse(argv)
    set_threads(args.threads)
    import mxnet as mx
    import numpy as np
    from gluon_nets import get_model
    from gluon_nets._compat import import_gluoncv
    from gluon_nets.inference import optimize
    from gluon_nets.models.lwdna import pad_widths, shrink
    from gluon_nets.profile import count_macs, count_params
    gluoncv = import_gluoncv()

    with open(GOLDEN) as f:
        config = json.load(f)['shrink']['config']
    shrunk = get_model('lwdna_resnet50', config=config)
    shrunk.initialize(mx.init.Xavier())
    shrunk(mx.nd.zeros((1, 3, 64, 64)))
    nets = {'golden': shrunk}
    if 'r50' in args.rows:
        nets['r50'] = gluoncv.model_zoo.get_model('resnet50_v1b')
        nets['r50'].initialize(mx.init.Xavier())
    if 'pad8' in args.rows:
        nets['pad8'] = pad_widths(shrunk, 8)
    if 'pad16' in args.rows:
        nets['pad16'] = pad_widths(shrunk, 16)
    if 'plain' in args.rows:
        nets['plain'] = get_model('lwdna_resnet50')
        nets['plain'].initialize(mx.init.Xavier())
    for net in nets.values():
        net.hybridize(static_alloc=True, static_shape=True)
    macs = {k: count_macs(net) for k, net in nets.items()}
    params = {k: count_params(net) for k, net in nets.items()}
    reference = torch = None
    if 'ref' in args.rows:
        import torch
        torch.set_num_threads(args.threads)
        try:
            reference = torch_reference('lwdna_resnet50', args.ref_dir, net=shrunk)
        except ImportError as err:
            print('error: the ref row needs torchvision (the reference builds its ResNet '
                  'with it): %s' % err, file=sys.stderr)
            return 2
        macs['ref'], params['ref'] = macs['golden'], params['golden']
    macs['opt'], params['opt'] = macs['golden'], params['golden']

    rows = []
    for batch in [int(b) for b in args.batches.split(',')]:
        x_np = np.random.RandomState(0).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
        x = mx.nd.array(x_np)
        steps = {k: (lambda net=net: net(x).wait_to_read()) for k, net in nets.items()}
        if 'opt' in args.rows:
            fast = optimize(shrunk, input_shape=x.shape)
            print('batch %d: optimize max rel err %.2g, backend %s, rewrites %s'
                  % (batch, fast.optimize_report['max_rel_err'], fast.optimize_report['backend'],
                     fast.optimize_report['rewrites']), flush=True)
            steps['opt'] = lambda fast=fast: fast(x).wait_to_read()
        if reference is not None:
            xt = torch.from_numpy(x_np)

            def ref_step():
                with torch.no_grad():
                    return reference(xt)
            out_ref = ref_step().numpy()
            out = shrunk(x).asnumpy()
            print('batch %d: max|ours - ref| / max|ref| = %.2g'
                  % (batch, np.abs(out - out_ref).max() / np.abs(out_ref).max()), flush=True)
            steps['ref'] = ref_step
        steps = {k: steps[k] for k in args.rows if k in steps}
        # two warm-up calls each: graph build + allocation
        times = interleaved_wall_cpu(steps, args.repeat if batch < 8 else args.repeat_large,
                                     warmup=2)
        wall = {k: statistics.median(v[0]) for k, v in times.items()}
        cpu = {k: statistics.median(v[1]) for k, v in times.items()}
        for key in steps:
            def ratio(other, clock):
                return ('%.3fx' % (clock[other] / clock[key])) if other in clock else '-'
            rows.append((TITLES[key], batch, macs[key], params[key], wall[key],
                         min(times[key][0]), batch / wall[key], batch / cpu[key],
                         ratio('r50', wall), ratio('r50', cpu),
                         ratio('ref', wall) if key != 'ref' else '',
                         ratio('ref', cpu) if key != 'ref' else ''))

    print('\nLW-DNA inference, %d threads, median of %d (batch 1) / %d (batch >= 8) interleaved '
          'runs, 224x224, load %s (machine shared with other jobs: ratios within one run are '
          'what counts)\n' % (args.threads, args.repeat, args.repeat_large,
                               ' '.join('%.2f' % v for v in os.getloadavg())))
    print('| model | batch | GMACs | params (M) | ms / batch (wall median) | ms (wall min) '
          '| img/s (wall) | img/s (CPU) | vs resnet50_v1b (wall) | (CPU) | vs reference (wall) '
          '| (CPU) |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for name, batch, m, p, t, tmin, ips, ips_cpu, r50_wall, r50_cpu, ref_wall, ref_cpu in rows:
        print('| %s | %d | %.3f | %.2f | %.1f | %.1f | %.1f | %.1f | %s | %s | %s | %s |'
              % (name, batch, m / 1e9, p / 1e6, t * 1e3, tmin * 1e3, ips, ips_cpu, r50_wall,
                 r50_cpu, ref_wall, ref_cpu))

    if not args.skip_shrink:
        del nets, shrunk
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
    sys.exit(main())
