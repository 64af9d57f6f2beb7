"""Inference throughput of zoo models (hybridized, static) and, where a family's bench
module offers one and the torch extra is installed, of the reference PyTorch model on
the same input, same threads, in the same run.

    python bench/throughput.py --models menet228_12x1_g3,scalenet50 --batch 1,8,32 --threads 2

A family bench module ``bench/<family>.py`` may define
``torch_reference(name, ref_dir, **kwargs) -> torch.nn.Module`` (built from the
authors' code checked out at ``--ref-dir``); its img/s then appears with the ratio.
"""
import argparse
import importlib
import json
import sys

from common import set_threads, format_table  # noqa: E402  (before mxnet)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', required=True, help='comma-separated registry names')
    parser.add_argument('--batch', '--batch-size', dest='batch', default='1,8,32', help='comma-separated batch sizes')
    parser.add_argument('--threads', type=int, default=None, help='default: all cores')
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224)
    parser.add_argument('--kwargs', default='{}', help='JSON model kwargs for every model')
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--ref-dir', default=None, help='checkout of the authors\' code')
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)

    import mxnet as mx
    from common import mxnet_step, throughput, torch_step
    from gluon_nets import get_model
    from gluon_nets.model_zoo import get_model_info

    kwargs = json.loads(args.kwargs)
    rows = []
    for name in args.models.split(','):
        info = get_model_info(name)
        net = get_model(name, **kwargs)
        net.initialize(mx.init.Xavier())
        net.hybridize(static_alloc=True, static_shape=True)
        reference = None
        if args.ref_dir:
            try:
                module = importlib.import_module(info.family)
                reference = module.torch_reference(name, args.ref_dir, **kwargs)
            except (ImportError, AttributeError) as err:
                print('# no reference runner for %s: %s' % (name, err), file=sys.stderr)
        for batch in [int(b) for b in args.batch.split(',')]:
            ours = throughput(mxnet_step(net, batch, args.size), batch, args.warmup, args.runs)
            ref = (throughput(torch_step(reference, batch, args.size, threads), batch,
                              args.warmup, args.runs) if reference is not None else None)
            rows.append((name, batch, threads, '%.1f' % ours,
                         '%.1f' % ref if ref else '-', '%.2fx' % (ours / ref) if ref else '-'))
    print(format_table(('model', 'batch', 'threads', 'ours img/s', 'reference img/s', 'ratio'),
                       rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
