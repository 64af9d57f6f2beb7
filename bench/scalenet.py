"""ScaleNet inference speed: ours (hybridized) vs the authors' PyTorch code and vs
GluonCV's ``resnet50_v1b``, same threads, same batch.

    python bench/scalenet.py --ref-dir /tmp/ref_scalenet --threads 2 --batch 1,32

``--ref-dir`` is a checkout of Eli-YiLi/ScaleNet (never part of this repository; its
``pytorch/scalenet.py`` is imported from there); without it (or without torch) the
reference column is left out. The reference model gets its own random init and is
converted into ours with ``convert_state_dict``, so both compute the same function (the
relative difference of their logits is printed).

Variants, timed in interleaved rounds (median over rounds) so that the load of a shared
machine hits all of them alike:

* ``ours``  ``hybridize(static_alloc=True, static_shape=True)``
* ``opt``   ours after ``gluon_nets.inference.optimize(net, input_shape=x.shape)`` (what
            eval.py and ``symbols.export`` ship; exact to 1e-5); ``--no-opt`` leaves it out
* ``ref``   the reference model, ``torch.set_num_threads(threads)``, eval, no_grad
* ``r50``   gluoncv ``resnet50_v1b`` (4.1 GMACs), hybridized the same way

Columns give img/s from the median wall time and from the median process CPU time of the
rounds; ``/ref`` and ``/r50`` are ratios of img/s (> 1: ours faster). At ``--threads 1``
read the CPU columns (a loaded machine disturbs them least), at ``--threads 2`` the wall
columns.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (format_table, interleaved_wall_cpu, optional_torch,  # noqa: E402
                    set_threads)

_REF_FILE = os.path.join('pytorch', 'scalenet.py')


def torch_reference(name, ref_dir, **kwargs):
    """The authors' model for registry ``name`` (built from the checkout at ``ref_dir``,
    with our shipped copy of its structure file); the hook ``bench/throughput.py`` uses."""
    import importlib.util
    import warnings
    from gluon_nets.models import scalenet as ours
    if name not in ours.STRUCTURES:
        raise ValueError('%s has no counterpart in the reference code' % name)
    if set(kwargs) - {'classes'}:
        raise ValueError('the reference models take only classes (got %s)' % sorted(kwargs))
    path = os.path.join(ref_dir, _REF_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError('%s is not a ScaleNet checkout (no %s)' % (ref_dir, _REF_FILE))
    spec = importlib.util.spec_from_file_location('_scalenet_reference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SABlock.layer_idx = 0      # class-level row counter, never reset by the reference
    ctor = getattr(module, name.replace('_light', ''))
    structure = os.path.join(ours.STRUCTURE_DIR, name + '.json')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return ctor(structure, num_classes=kwargs.get('classes', 1000)).eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default='scalenet50',
                        help='comma-separated registry names (default scalenet50)')
    parser.add_argument('--batch', '--batch-size', dest='batch', default='1,32', help='comma-separated batch sizes')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--ref-dir', default=os.environ.get('SCALENET_REF'),
                        help='checkout of Eli-YiLi/ScaleNet (reference column)')
    parser.add_argument('--no-r50', action='store_true', help='leave out resnet50_v1b')
    parser.add_argument('--no-opt', action='store_true',
                        help='leave out the optimize()d form of ours')
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)

    import mxnet as mx
    import numpy as np
    from gluon_nets import get_model
    from gluon_nets.convert import convert_state_dict
    torch = optional_torch(threads, wanted=bool(args.ref_dir))

    r50 = None
    if not args.no_r50:
        from gluon_nets._compat import import_gluoncv
        import_gluoncv()
        from gluoncv.model_zoo import get_model as gcv_model
        r50 = gcv_model('resnet50_v1b')
        r50.initialize()
        r50.hybridize(static_alloc=True, static_shape=True)

    import statistics
    from gluon_nets.inference import optimize
    header = ['model', 'batch', 'threads', 'clock', 'ours img/s', 'opt img/s', 'ref img/s',
              'ours/ref', 'opt/ref', 'r50_v1b img/s', 'ours/r50', 'opt/r50']
    rows = []
    for name in args.models.split(','):
        reference = None
        if torch is not None:
            reference = torch_reference(name, args.ref_dir)
            net = convert_state_dict(name, reference.state_dict())
        else:
            net = get_model(name)
            net.initialize(mx.init.Xavier())
        net.hybridize(static_alloc=True, static_shape=True)
        for batch in [int(b) for b in args.batch.split(',')]:
            x_np = np.random.RandomState(0).uniform(-1, 1, (batch, 3, args.size, args.size))
            x = mx.nd.array(x_np)
            steps = {'ours': lambda: net(x).wait_to_read()}
            if not args.no_opt:
                fast = optimize(net, input_shape=x.shape)
                print('%s batch %d: optimize max rel err %.2g, backend %s'
                      % (name, batch, fast.optimize_report['max_rel_err'],
                         fast.optimize_report['backend']))
                steps['opt'] = lambda fast=fast: fast(x).wait_to_read()
            if reference is not None:
                xt = torch.from_numpy(x_np.astype(np.float32))

                def ref_step():
                    with torch.no_grad():
                        return reference(xt)
                out_ref = ref_step().numpy()
                out = net(x).asnumpy()
                print('%s batch %d: max|ours - ref| / max|ref| = %.2g'
                      % (name, batch, np.abs(out - out_ref).max() / np.abs(out_ref).max()))
                steps['ref'] = ref_step
            if r50 is not None:
                steps['r50'] = lambda: r50(x).wait_to_read()
            times = interleaved_wall_cpu(steps, args.rounds)
            for clock, index in (('wall', 0), ('CPU', 1)):
                ips = {k: batch / statistics.median(v[index]) for k, v in times.items()}

                def cell(key, fmt='%.1f'):
                    return fmt % ips[key] if key in ips else '-'

                def ratio(a, b):
                    return '%.2f' % (ips[a] / ips[b]) if a in ips and b in ips else '-'
                rows.append([name, batch, threads, clock, cell('ours'), cell('opt'),
                             cell('ref'), ratio('ours', 'ref'), ratio('opt', 'ref'),
                             cell('r50'), ratio('ours', 'r50'), ratio('opt', 'r50')])
            print(format_table(header, rows[-2:]), flush=True)
    print()
    print('threads=%d, %d px, median of %d interleaved rounds; load %s'
          % (threads, args.size, args.rounds, ' '.join('%.2f' % v for v in os.getloadavg())))
    print(format_table(header, rows))

if __name__ == '__main__':
    main()
