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
* ``ref``   the reference model, ``torch.set_num_threads(threads)``, eval, no_grad
* ``r50``   gluoncv ``resnet50_v1b`` (4.1 GMACs), hybridized the same way

Columns give img/s; ``ours/ref`` and ``ours/r50`` are ratios of img/s (> 1: ours faster).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (format_table, interleaved, optional_torch,  # noqa: E402
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
            secs = interleaved(steps, args.rounds)
            ips = {k: batch / v for k, v in secs.items()}
            rows.append([name, batch, threads, '%.1f' % ips['ours'],
                         '%.1f' % ips['ref'] if 'ref' in ips else '-',
                         '%.2f' % (ips['ours'] / ips['ref']) if 'ref' in ips else '-',
                         '%.1f' % ips['r50'] if 'r50' in ips else '-',
                         '%.2f' % (ips['ours'] / ips['r50']) if 'r50' in ips else '-'])
            print(format_table(['model', 'batch', 'threads', 'ours img/s', 'ref img/s',
                                'ours/ref', 'r50_v1b img/s', 'ours/r50'], rows[-1:]),
                  flush=True)
    print()
    print(format_table(['model', 'batch', 'threads', 'ours img/s', 'ref img/s', 'ours/ref',
                        'r50_v1b img/s', 'ours/r50'], rows))


if __name__ == '__main__':
    main()
