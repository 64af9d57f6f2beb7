"""Inference throughput of each deployment form of zoo models, same threads, one run:
imperative Gluon, hybridized (static), the exported Symbol graph, the oneDNN-fused
graph, INT8 (oneDNN, calibrated) and onnxruntime, at batch 1 and 32.

    python bench/deploy.py                                  # one cheap model per family, 224 px
    python bench/deploy.py --models menet108_8x1_g3,lwdna_resnet18 --size 224 --threads 2
    python bench/deploy.py --models lwdna_resnet18 --params run/last.params \\
        --dataset fashion-mnist-mini                        # a trained model at its own size

INT8 is calibrated on ``--dataset``'s training images when given, otherwise on random
images (its speed does not depend on the calibration; its accuracy does: see eval.py).
Ratios (fused / hybridized, int8 / hybridized, int8 / fused) come from the same run;
forms are timed in interleaved rounds and the fastest call of each counts, which is the
steadiest figure on a shared machine.
"""
import argparse
import sys
import tempfile

from common import format_table, interleaved_times, set_threads  # noqa: E402  (before mxnet)

FORMS = ('imperative', 'hybridized', 'symbol', 'fused', 'int8', 'onnxruntime')


def fastest_throughput(steps, batch, warmup, runs):
    """{form: img/s} from the fastest of ``runs`` interleaved timed calls per form
    (``common.interleaved_times``): the fastest call is the one least disturbed by
    load from other processes on a shared machine."""
    times = interleaved_times(steps, runs, warmup)
    return {form: batch / min(seconds) for form, seconds in times.items()}


def _bench_model(name, args, threads, workdir):
    import mxnet as mx
    import numpy as np
    import gluon_nets
    import symbols
    from symbols.deploy_record import export_data_config
    from symbols.zoo import build_net, parse_model_kwargs

    info = gluon_nets.get_model_info(name)
    kwargs = parse_model_kwargs(args.kwargs)
    classes, calib, overrides = None if args.params else 1000, None, {}
    if args.dataset:
        from gluon_nets.data import dataset_info
        from symbols.export import calibration_images
        dinfo = dataset_info(args.dataset)
        overrides = {k: dinfo['data_config'][k] for k in ('mean', 'std', 'crop_ratio')}
        overrides['input_size'] = dinfo['data_config']['input_size'][-1]
        classes = None if args.params else dinfo['data_config']['num_classes']
    if args.size:
        overrides['input_size'] = args.size
    config = export_data_config(info.name, **overrides)
    size = config['input_size'][-1]
    if args.dataset:
        calib = calibration_images(dataset=args.dataset, input_size=size,
                                   crop_ratio=config['crop_ratio'], mean=config['mean'],
                                   std=config['std'], limit=args.num_calib)
    net, source, classes = build_net(info.name, params=args.params, classes=classes, **kwargs)
    if calib is None:
        calib = np.random.RandomState(0).uniform(-2, 2, (args.num_calib, 3, size, size)) \
            .astype(np.float32)
    common = dict(data_config=config, model=info.name, weights=source)

    runners, notes = {}, []
    imperative, _, _ = build_net(info.name, params=args.params, classes=classes, **kwargs)
    runners['imperative'] = imperative
    for fmt in ('symbol', 'fused', 'onnx', 'int8'):
        try:
            out = symbols.export(net, workdir, info.name, format=fmt, calib_data=calib,
                                 num_calib_examples=args.num_calib, **common)
        except symbols.ExportError as err:
            notes.append('%s %s: %s' % (info.name, fmt, err))
            continue
        if fmt == 'onnx':
            runners['onnxruntime'] = symbols.load_onnx(out['files']['onnx'], threads=threads)
        else:
            runners[fmt] = symbols.load(out['files']['symbol'])
    net.hybridize(static_alloc=True, static_shape=True)
    runners['hybridized'] = net

    rows = []
    for batch in args.batch:
        x_np = np.random.RandomState(1).uniform(-2, 2, (batch, 3, size, size)).astype(np.float32)
        x = mx.nd.array(x_np)
        steps = {}
        for form in FORMS:
            runner = runners.get(form)
            if runner is None:
                continue
            if form == 'onnxruntime':
                def step(runner=runner):
                    runner(x_np)
            else:
                def step(runner=runner):
                    runner(x).wait_to_read()
            steps[form] = step
        speeds = fastest_throughput(steps, batch, args.warmup, args.runs)

        def ratio(a, b):
            return '%.2fx' % (speeds[a] / speeds[b]) if a in speeds and b in speeds else '-'
        rows.append([info.name, size, batch] +
                    ['%.1f' % speeds[f] if f in speeds else 'n/a' for f in FORMS] +
                    [ratio('fused', 'hybridized'), ratio('int8', 'hybridized'),
                     ratio('int8', 'fused')])
    return rows, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default=None,
                        help='comma-separated names (default: the cheapest model of each family)')
    parser.add_argument('--batch', default='1,32', help='comma-separated batch sizes')
    parser.add_argument('--size', type=int, default=None,
                        help='input side (default: the dataset\'s, else the model\'s)')
    parser.add_argument('--threads', type=int, default=None, help='default: all cores')
    parser.add_argument('--kwargs', default='{}', help='JSON model kwargs for every model')
    parser.add_argument('--params', default=None, help='trained weights (one model)')
    parser.add_argument('--dataset', default=None,
                        help='embedded dataset: its input size, mean/std, and int8 calibration')
    parser.add_argument('--num-calib', type=int, default=256)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--json', default=None, help='also write the rows to this file')
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    try:
        args.batch = [int(b) for b in args.batch.split(',')]
    except ValueError:
        parser.error('--batch must be comma-separated integers')

    import mxnet as mx  # noqa: F401  (after set_threads)
    from gluon_nets.model_zoo import cheapest_per_family
    names = args.models.split(',') if args.models else cheapest_per_family()
    if args.params and len(names) != 1:
        parser.error('--params applies to one model (--models NAME)')
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix='bench-deploy-') as workdir:
        for name in names:
            try:
                model_rows, model_notes = _bench_model(name, args, threads, workdir)
            except (ValueError, FileNotFoundError) as err:
                print('error: %s' % err, file=sys.stderr)
                return 2
            rows += model_rows
            notes += model_notes
    header = ['model', 'size', 'batch'] + ['%s img/s' % f for f in FORMS] + \
        ['fused/hybrid', 'int8/hybrid', 'int8/fused']
    print('# %d threads (OMP_NUM_THREADS); img/s from the fastest of %d interleaved runs '
          'after %d warm-up calls' % (threads, args.runs, args.warmup))
    print(format_table(header, rows))
    for note in notes:
        print('# not exported: %s' % note)
    if args.json:
        from gluon_nets.utils.atomic import write_json_atomic
        write_json_atomic(args.json, {'threads': threads, 'header': header, 'rows': rows,
                                      'notes': notes})
    return 0


if __name__ == '__main__':
    sys.exit(main())
