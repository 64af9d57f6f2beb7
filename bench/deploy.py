"""The deploy ladder: inference speed of each deployment form of zoo models, same
threads, one run, forms interleaved.

Forms (``--forms``; default: the ladder, every form that exists here):

===========  =================================================================
imperative   the Gluon net, not hybridized
hybridized   the Gluon net, ``hybridize(static_alloc, static_shape)`` (the baseline)
symbol       the exported Symbol graph, reloaded (``symbols.load``)
optimized    ``gluon_nets.inference.optimize(net, input_shape)`` (left out when that
             module does not exist in this checkout)
fused        the oneDNN-partitioned export (``symbols.export(format='fused')``; every
             export is of the optimized graph, as the export command line makes it)
int8         the calibrated INT8 export (oneDNN), as ``--int8-exclude`` says (default:
             the export's default, the first two convolutions kept float32)
int8_all     the INT8 export with every convolution quantized (``--int8-exclude none``:
             the default before issue 17), to compare both in one run
onnxruntime  the ONNX export run by onnxruntime
openvino     the same ONNX file run by OpenVINO's CPU runtime (``[openvino]`` extra)
===========  =================================================================

    python bench/deploy.py --models menet228_12x1_g3 --size 224 --batch 1,16 --threads 1
    python bench/deploy.py --models menet108_8x1_g3 --params run/last.params \\
        --dataset fashion-mnist-mini --agreement 2000    # + top-1 agreement vs fp32

Every call is timed twice: wall clock and the process's CPU time (user+sys, every
thread of the process, onnxruntime's and OpenVINO's included). On a shared machine
CPU time at ``--threads 1`` is the figure load does not inflate; at more threads wall
time is what a server sees. ``--metric`` picks the one tabulated (default: cpu at 1
thread, else wall); ``--json`` keeps both. img/s comes from the fastest of ``--runs``
interleaved rounds (every form once per round).

With ``--dataset`` and ``--agreement N``, each form also classifies the first N
validation images and the table gives its top-1 agreement with the hybridized float32
net (and each form's top-1 accuracy against the labels).
"""
import argparse
import sys
import tempfile

from common import format_table, interleaved_wall_cpu, set_threads  # noqa: E402  (before mxnet)

FORMS = ('imperative', 'hybridized', 'symbol', 'optimized', 'fused', 'int8', 'int8_all',
         'onnxruntime', 'openvino')
LADDER = ('hybridized', 'optimized', 'fused', 'int8', 'onnxruntime', 'openvino')
FP32_MXNET = ('hybridized', 'symbol', 'optimized', 'fused')   # "our MXNet form" vs onnxruntime
# each family's headline model (``--models headlines``): the models the papers sell
HEADLINES = ('ed_resnet50', 'menet228_12x1_g3', 'shufflenet_1x_g3', 'scalenet50', 'lwdna_resnet50',
             'oct_resnet50_v1b')
_EXPORTED = {'symbol': 'symbol', 'fused': 'fused', 'int8': 'int8', 'int8_all': 'int8_all',
             'onnxruntime': 'onnx',
             'openvino': 'onnx'}


def _optimizer():
    """``gluon_nets.inference.optimize``, or None when this checkout has none."""
    try:
        from gluon_nets.inference import optimize
    except ImportError:
        return None
    return optimize


def _runners(name, args, forms, threads, workdir, net, calib, common, size, build):
    """{form: callable(x_numpy) -> logits numpy} for every form of ``forms`` that could be
    built, and the notes saying why the others could not."""
    import mxnet as mx
    import symbols
    from symbols.export import parse_exclude
    runners, notes, exported = {}, [], {}

    def mxnet_runner(block):
        return lambda x: block(mx.nd.array(x)).asnumpy()

    for fmt in sorted({_EXPORTED[f] for f in forms if f in _EXPORTED}):
        try:
            # what ``python -m symbols.export`` ships by default: the optimized graph
            # (BN folded, exact rewrites), then the format's own passes
            exclude = [] if fmt == 'int8_all' else parse_exclude(args.int8_exclude)
            stem = name + '-int8-all' if fmt == 'int8_all' else None
            out = symbols.export(net, workdir, name, format=fmt.replace('_all', ''), stem=stem,
                                 calib_data=calib,
                                 num_calib_examples=args.num_calib, calib_mode=args.calib_mode,
                                 quantized_dtype=args.quantized_dtype, exclude_layers=exclude,
                                 partition=args.partition, optimize=True, **common)
            exported[fmt] = out['files']
            if fmt == 'fused':
                # which graph the fused export kept, and the times it decided on
                exported['fused_kept'] = {
                    key: out['checks'][key] for key in
                    ('fused_kept', 'fused_cpu_seconds', 'fused_partition_failed')
                    if key in out['checks']}
        except symbols.ExportError as err:
            notes.append('%s %s: %s' % (name, fmt, err))
    for form in forms:
        if form in ('symbol', 'fused', 'int8', 'int8_all') and form in exported:
            runners[form] = mxnet_runner(symbols.load(exported[form]['symbol']))
        elif form == 'onnxruntime' and 'onnx' in exported:
            runners[form] = symbols.load_onnx(exported['onnx']['onnx'], threads=threads)
        elif form == 'openvino' and 'onnx' in exported:
            try:
                from symbols.openvino import load_openvino
                runners[form] = load_openvino(exported['onnx']['onnx'], threads=threads)
            except ImportError as err:
                notes.append('%s openvino: %s' % (name, err))
        elif form == 'imperative':
            runners[form] = mxnet_runner(build()[0])
        elif form == 'optimized':
            optimize = _optimizer()
            if optimize is None:
                notes.append('%s optimized: gluon_nets.inference.optimize does not exist here'
                             % name)
                continue
            try:
                runners[form] = mxnet_runner(optimize(build()[0], input_shape=(1, 3, size, size)))
            except Exception as err:  # report, bench the other forms
                notes.append('%s optimized: %s: %s' % (name, type(err).__name__, err))
    if 'hybridized' in forms:
        net.hybridize(static_alloc=True, static_shape=True)
        runners['hybridized'] = mxnet_runner(net)
    return runners, notes, exported.get('fused_kept')


def _agreement(runners, args, config, size):
    """{form: (top-1 agreement with hybridized fp32, top-1 accuracy)} on the first
    ``args.agreement`` validation images of ``args.dataset``."""
    import numpy as np
    from gluon_nets import data
    loader = data.val_loader(dataset=args.dataset, batch_size=100, input_size=size,
                             crop_ratio=config['crop_ratio'], mean=config['mean'],
                             std=config['std'])
    preds = {form: [] for form in runners}
    labels, count = [], 0
    for images, label in loader:
        x = images.asnumpy()
        for form, run in runners.items():
            preds[form].append(np.argmax(run(x), axis=1))
        labels.append(label.asnumpy().astype(int))
        count += len(x)
        if count >= args.agreement:
            break
    labels = np.concatenate(labels)[:args.agreement]
    preds = {form: np.concatenate(p)[:args.agreement] for form, p in preds.items()}
    ref = preds['hybridized']
    return {form: (float(np.mean(p == ref)), float(np.mean(p == labels)))
            for form, p in preds.items()}


def _bench_model(name, args, threads, workdir):
    import numpy as np
    import gluon_nets
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

    def build():
        return build_net(info.name, params=args.params, classes=classes, **kwargs)
    net, source, classes = build()
    if calib is None:
        calib = np.random.RandomState(0).uniform(-2, 2, (args.num_calib, 3, size, size)) \
            .astype(np.float32)
    common = dict(data_config=config, model=info.name, weights=source)
    runners, notes, fused_kept = _runners(info.name, args, args.forms, threads, workdir, net,
                                          calib, common, size, build)
    agreement = _agreement(runners, args, config, size) \
        if args.dataset and args.agreement else {}

    results = []
    for batch in args.batch:
        x = np.random.RandomState(1).uniform(-2, 2, (batch, 3, size, size)).astype(np.float32)
        steps = {form: (lambda run=runners[form]: run(x)) for form in FORMS if form in runners}
        times = interleaved_wall_cpu(steps, args.runs, args.warmup)
        results.append({'model': info.name, 'size': size, 'batch': batch,
                        'kwargs': kwargs, 'agreement': agreement, 'fused': fused_kept,
                        'wall_img_s': {f: batch / min(t[0]) for f, t in times.items()},
                        'cpu_img_s': {f: batch / min(t[1]) for f, t in times.items()}})
    return results, notes


def table_rows(results, metric, forms):
    """Table rows (model, batch, img/s per form, each form / hybridized, the fastest form,
    fastest fp32 MXNet form / onnxruntime, agreement) of ``results``."""
    rows = []
    for res in results:
        speeds = res[metric + '_img_s']
        base = speeds.get('hybridized')
        present = [f for f in forms if f in speeds]
        best = max(present, key=lambda f: speeds[f]) if present else None
        mxnet = [f for f in FP32_MXNET if f in speeds]
        mxnet_best = max(mxnet, key=lambda f: speeds[f]) if mxnet else None
        row = [res['model'], res['size'], res['batch']]
        row += ['%.1f' % speeds[f] if f in speeds else 'n/a' for f in forms]
        row += ['%.2fx' % (speeds[f] / base) if f in speeds and base else '-'
                for f in forms if f != 'hybridized']
        row.append('%s %.2fx' % (best, speeds[best] / base) if best and base else '-')
        row.append('%s %.2fx' % (mxnet_best, speeds[mxnet_best] / speeds['onnxruntime'])
                   if mxnet_best and 'onnxruntime' in speeds else '-')
        agree = res.get('agreement') or {}
        row.append(', '.join('%s %.2f%%' % (f, 100 * agree[f][0]) for f in forms
                             if f in agree and f != 'hybridized') or '-')
        rows.append(row)
    return rows


def table_header(metric, forms):
    return (['model', 'size', 'batch'] + ['%s img/s' % f for f in forms] +
            ['%s/hybrid' % f for f in forms if f != 'hybridized'] +
            ['fastest/hybrid', 'best fp32 MXNet/onnxruntime', 'top-1 agreement vs fp32'])


def plot_ladder(json_files, out_png):
    """A PNG of the ladder: per model, each form's speed over hybridized fp32 (bars, log
    scale; the fastest form's ratio written above the model), one panel per batch size,
    from ``--json`` files of this script (each with its own metric and thread count)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import json
    results, metrics, rounds = [], set(), set()
    for path in json_files:
        with open(path) as f:
            doc = json.load(f)
        metrics.add('img/s by %s at %d thread%s' % (
            'process CPU time' if doc['metric'] == 'cpu' else 'wall time', doc['threads'],
            '' if doc['threads'] == 1 else 's'))
        if doc.get('runs'):
            rounds.add('fastest of %d interleaved rounds' % doc['runs'])
        results += [dict(r, metric=doc['metric']) for r in doc['results']]
    batches = sorted({r['batch'] for r in results})
    forms = [f for f in LADDER if f != 'hybridized'
             and any(f in r[r['metric'] + '_img_s'] for r in results)]
    fig, axes = plt.subplots(1, len(batches), figsize=(5.8 * len(batches), 4.6), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        rows = [r for r in results if r['batch'] == batch]
        width = 0.8 / max(1, len(forms))
        for k, form in enumerate(forms):
            # a form that could not be built has no bar (0 cannot sit on a log axis)
            xs, values = [], []
            for i, r in enumerate(rows):
                speeds = r[r['metric'] + '_img_s']
                if speeds.get(form):
                    xs.append(i + (k - (len(forms) - 1) / 2) * width)
                    values.append(speeds[form] / speeds['hybridized'])
            ax.bar(xs, values, width, label=form)
        for i, r in enumerate(rows):
            speeds = r[r['metric'] + '_img_s']
            best = max(speeds, key=speeds.get)
            ax.annotate('%s\n%.1fx' % (best, speeds[best] / speeds['hybridized']),
                        (i, speeds[best] / speeds['hybridized']), xytext=(0, 3),
                        textcoords='offset points', ha='center', va='bottom', fontsize=6.5)
        ax.axhline(1.0, color='black', linewidth=0.8)
        ax.axhline(2.5, color='grey', linewidth=0.8, linestyle='--')
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r['model'] for r in rows], rotation=25, ha='right', fontsize=8)
        ax.set_title('batch %d, %d px' % (batch, rows[0]['size']), fontsize=10)
        ax.set_ylabel('img/s of the form / img/s of hybridized fp32')
        ax.set_yscale('log')
        ax.set_ylim(0.25, 11)
        ax.set_yticks([0.25, 0.5, 1, 2, 4, 8])
        ax.set_yticklabels(['0.25x', '0.5x', '1x', '2x', '4x', '8x'])
        ax.minorticks_off()
    axes[0][0].legend(fontsize=7, ncol=len(forms), loc='lower left')
    fig.suptitle('Deploy ladder: speed of each form over hybridized fp32 (1x, solid line); '
                 'dashed: the 2.5x target\n%s' % '; '.join(sorted(metrics) + sorted(rounds)),
                 fontsize=9)
    fig.tight_layout()
    from gluon_nets.utils.atomic import atomic_path
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format='png')
    plt.close(fig)


def main(argv=None):
    from symbols.fused import PARTITION_CHOICES
    from symbols.int8 import CALIB_MODES, DEFAULT_CALIB_MODE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default=None,
                        help='comma-separated names, or "headlines" (each family\'s headline '
                        'model: %s); default: the cheapest model of each family'
                        % ', '.join(HEADLINES))
    parser.add_argument('--forms', default=','.join(LADDER),
                        help='comma-separated, of: %s' % ', '.join(FORMS))
    parser.add_argument('--batch', '--batch-size', dest='batch', default='1,16', help='comma-separated batch sizes')
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=None,
                        help='input side (default: the dataset\'s, else the model\'s)')
    parser.add_argument('--threads', type=int, default=None, help='default: all cores')
    parser.add_argument('--metric', choices=('cpu', 'wall'), default=None,
                        help='tabulated time (default: cpu at 1 thread, else wall)')
    parser.add_argument('--kwargs', default='{}', help='JSON model kwargs for every model')
    parser.add_argument('--params', default=None, help='trained weights (one model)')
    parser.add_argument('--dataset', default=None,
                        help='embedded dataset: its input size, mean/std, and int8 calibration')
    parser.add_argument('--agreement', type=int, default=0,
                        help='with --dataset: top-1 agreement vs fp32 on this many val images')
    parser.add_argument('--num-calib', type=int, default=256)
    parser.add_argument('--calib-mode', choices=CALIB_MODES, default=DEFAULT_CALIB_MODE,
                        help='int8 calibration (as python -m symbols.export --calib-mode)')
    parser.add_argument('--int8-exclude', default=None, metavar='LAYERS',
                        help='int8 layers kept float32 (as python -m symbols.export '
                             '--int8-exclude; default: the export default)')
    parser.add_argument('--quantized-dtype', choices=('auto', 'int8', 'uint8'), default='auto')
    parser.add_argument('--partition', choices=PARTITION_CHOICES, default='auto',
                        help='the fused export: auto keeps the partitioned graph only where it '
                             'is faster than the plain one (as symbols.export --partition)')
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--json', default=None, help='also write the results to this file')
    parser.add_argument('--plot', default=None, metavar='PNG',
                        help='only draw the ladder chart of the --plot-from files')
    parser.add_argument('--plot-from', nargs='+', default=[], metavar='JSON')
    args = parser.parse_args(argv)
    if args.plot:
        if not args.plot_from:
            parser.error('--plot needs --plot-from JSON files of earlier runs')
        plot_ladder(args.plot_from, args.plot)
        return 0
    threads = set_threads(args.threads)
    try:
        args.batch = [int(b) for b in args.batch.split(',')]
    except ValueError:
        parser.error('--batch must be comma-separated integers')
    args.forms = [f for f in args.forms.split(',') if f]
    unknown = [f for f in args.forms if f not in FORMS]
    if unknown:
        parser.error('unknown form(s) %s (of: %s)' % (', '.join(unknown), ', '.join(FORMS)))
    if args.agreement and 'hybridized' not in args.forms:
        parser.error('--agreement compares with the hybridized form: keep it in --forms')
    metric = args.metric or ('cpu' if threads == 1 else 'wall')
    forms = [f for f in FORMS if f in args.forms]

    import mxnet as mx  # noqa: F401  (after set_threads)
    from gluon_nets.model_zoo import cheapest_per_family
    names = (list(HEADLINES) if args.models == 'headlines' else
             args.models.split(',') if args.models else cheapest_per_family())
    if args.params and len(names) != 1:
        parser.error('--params applies to one model (--models NAME)')
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix='bench-deploy-') as workdir:
        for name in names:
            try:
                model_results, model_notes = _bench_model(name, args, threads, workdir)
            except (ValueError, FileNotFoundError) as err:
                print('error: %s' % err, file=sys.stderr)
                return 2
            results += model_results
            notes += model_notes
            if args.json:   # what was measured so far survives a later model's crash
                _write(args.json, threads, metric, forms, results, notes, args.runs, args.warmup)
    print('# %d threads (OMP_NUM_THREADS); img/s by %s time from the fastest of %d interleaved '
          'rounds after %d warm-up calls' % (threads, 'process CPU' if metric == 'cpu' else 'wall',
                                             args.runs, args.warmup))
    print(format_table(table_header(metric, forms), table_rows(results, metric, forms)))
    for res in results:
        if res.get('fused') and res['batch'] == args.batch[0]:
            # which graph the fused export holds, and the export-time timing that chose it
            fused = res['fused']
            print('# %s fused export: the %s graph (at export, CPU s per call on the check '
                  'input: %s)' % (res['model'], fused.get('fused_kept'),
                                  ', '.join('%s %.4g' % kv for kv in
                                            sorted(fused.get('fused_cpu_seconds', {}).items()))
                                  or fused.get('fused_partition_failed', 'not timed')))
    for note in notes:
        print('# not measured: %s' % note)
    if args.json:
        _write(args.json, threads, metric, forms, results, notes, args.runs, args.warmup)
    return 0


def _write(path, threads, metric, forms, results, notes, runs=None, warmup=None):
    from gluon_nets.utils.atomic import write_json_atomic
    write_json_atomic(path, {'threads': threads, 'metric': metric, 'forms': forms,
                             'runs': runs, 'warmup': warmup, 'results': results,
                             'notes': notes})


if __name__ == '__main__':
    sys.exit(main())
