"""``python eval.py`` / ``gluon-nets-eval``: evaluate a zoo model, exported Symbol
graphs (plain, fused or int8) and ONNX files on the same validation data: top-1,
top-5, cross-entropy loss and images/s.

    python eval.py --model menet108_8x1_g3 --params menet108.params --rec-val val.rec
    python eval.py --params run/                 # a train_imagenet.py run: its model.json
    python eval.py --symbol deploy/m deploy/m-int8 --dataset fashion-mnist-mini
    python eval.py --onnx deploy/m.onnx --data-dir ~/imagenet --per-class report/ --json r.json
    python eval.py --model menet108_8x1_g3 --params x.params --npy photos.npy   # top-5 per image

Several artefacts in one run (``--model`` + ``--symbol A B`` + ``--onnx C``) see the same
batches, so their numbers compare directly (e.g. int8 next to float32).

Data: exactly one of ``--dataset`` (embedded, default ``fashion-mnist-mini``),
``--rec-val``, ``--data-dir`` or ``--npy`` (an (N, 3, H, W) float32 array already
preprocessed; labels from ``--npy-labels`` if any). GluonCV's validation transform:
shorter side to ceil(size / crop_ratio), centre crop, (x/255 - mean) / std, with the
``data_config`` of the flags, else of the artefact's record (the run's ``model.json``,
the deployer JSON), else the dataset's recipe over the model's registry entry.

Exit status 0, or 2 with ``error: ...`` (one line; ``--debug`` shows the traceback) on
bad flags, weights, data or output paths. Output paths (``--json``, ``--per-class``)
are checked before anything is evaluated. Every image is decoded once before the
evaluation starts: an undecodable one is an error naming its file and record, unless
``--skip-bad-images`` leaves it out (the count is printed). An image folder is
labelled by the run's (or the deployer JSON's) class names, matched by folder name.
"""
import argparse
import os
import sys
import time

from ..utils.threads import ThreadsError, set_threads, threads_in_argv
from .inputs import class_names, open_batches, resolve_preprocessing
from .loop import EvalError, evaluate
from .options import INTERPOLATIONS, MultiCrop, check_dtype, parse_contexts
from .predictors import load_predictors
from .reports import per_class_rows, print_per_class, print_results, result, write_per_class

__all__ = ['main', 'run', 'build_parser']


def build_parser():
    parser = argparse.ArgumentParser(
        description='Top-1 / top-5 / loss / img/s of zoo models and exported artefacts.')
    what = parser.add_argument_group('what to evaluate (one or more)')
    what.add_argument('--model', default=None, help='registered model name (with --params)')
    what.add_argument('--alpha', type=float, default=None, help='OctConv low-frequency ratio')
    what.add_argument('--model-kwargs', default='{}', help='JSON object of extra model kwargs')
    what.add_argument('--params', default=None,
                      help='.params of --model, or a train_imagenet.py run directory')
    what.add_argument('--classes', '--num-classes', dest='classes', type=int, default=None,
                      help='class count of --model (default: read from --params)')
    what.add_argument('--symbol', nargs='+', default=[], metavar='PREFIX',
                      help='exported graph(s): PREFIX-symbol.json + PREFIX-0000.params')
    what.add_argument('--onnx', nargs='+', default=[], metavar='FILE', help='ONNX file(s)')
    data = parser.add_argument_group('data (one source; default: --dataset fashion-mnist-mini)')
    data.add_argument('--dataset', default=None, help='embedded dataset name')
    data.add_argument('--rec-val', default=None, help='validation .rec (comma list or glob of shards)')
    data.add_argument('--rec-val-idx', default=None, help='its .idx (default: beside the .rec)')
    data.add_argument('--data-dir', default=None, help='image folder: DIR/val/<class>/* or DIR/<class>/*')
    data.add_argument('--npy', default=None, help='(N,3,H,W) float32 preprocessed images')
    data.add_argument('--npy-labels', default=None, help='labels for --npy (.npy or JSON list)')
    data.add_argument('--skip-bad-images', action='store_true',
                      help='leave out images that do not decode (counted) instead of stopping')
    data.add_argument('--class-names', default=None,
                      help='text file, one class name per line (default: the dataset\'s / ImageNet\'s)')
    pre = parser.add_argument_group('preprocessing (default: the data_config of the artefact, '
                                    'the dataset or the model)')
    pre.add_argument('--input-size', type=int, default=None)
    pre.add_argument('--crop-ratio', type=float, default=None, help='default 0.875')
    pre.add_argument('--mean', default=None, help='RGB mean on the [0,1] scale, "r,g,b"')
    pre.add_argument('--std', default=None, help='RGB std on the [0,1] scale, "r,g,b"')
    pre.add_argument('--rgb-mean', default=None,
                     help='RGB mean on the 0-255 scale, "r,g,b" (train_imagenet.py\'s flag)')
    pre.add_argument('--rgb-std', default=None, help='RGB std on the 0-255 scale, "r,g,b"')
    pre.add_argument('--interpolation', default=None, choices=sorted(INTERPOLATIONS),
                     help='resize interpolation (default: the loaders\' bilinear; OctConv\'s '
                          'scoring uses bicubic); another one decodes and resizes here')
    crops = pre.add_mutually_exclusive_group()
    crops.add_argument('--ten-crop', action='store_true',
                       help='mean logits of the 4 corner and centre crops of the resized '
                            'image and their mirrors (LW-DNA\'s test)')
    crops.add_argument('--five-crop', action='store_true',
                       help='mean logits of the 4 corner crops and the centre crop')
    run_group = parser.add_argument_group('run and report')
    run_group.add_argument('--batch-size', type=int, default=32)
    run_group.add_argument('--num-batches', type=int, default=None,
                           help='evaluate the first N batches only (a quick subset)')
    run_group.add_argument('--ctx', default=None,
                           help='device of --model/--symbol nets: cpu or gpu0 (the first '
                                'device is used; wins over --num-gpus)')
    run_group.add_argument('--num-gpus', type=int, default=0, help='GPUs (0: CPU)')
    run_group.add_argument('--dtype', default='float32', choices=['float32', 'float16'],
                           help='float16: --model/--symbol nets cast, GPU only')
    run_group.add_argument('--results-file', default=None, metavar='CSV',
                           help='append one row per artefact (top-1, top-5, loss, img/s and '
                                'the preprocessing) to this CSV file')
    run_group.add_argument('--no-optimize', action='store_true',
                           help='run a --model net as built, not gluon_nets.inference.optimize')
    run_group.add_argument('-j', '--num-data-workers', '--num-workers', dest='num_workers',
                           type=int, default=0, help='decoding workers')
    run_group.add_argument('--threads', type=int, default=None,
                           help='OMP threads for MXNet / onnxruntime (default: OMP_NUM_THREADS, '
                                'else all cores)')
    run_group.add_argument('--per-class', default=None, metavar='DIR',
                           help='write per-class accuracy tables (CSV) and confusion-matrix PNGs to DIR')
    run_group.add_argument('--json', default=None, metavar='FILE', help='write every number to FILE')
    run_group.add_argument('--no-progress', action='store_true', help='no progress bar')
    run_group.add_argument('--debug', action='store_true', help='show the traceback of an error')
    return parser


def check_args(args):
    """Complete ``args`` from a run's ``model.json`` (``args.run_record``) and refuse
    flags that do not combine (EvalError)."""
    from symbols.zoo import run_record
    args.run_record = None
    if args.params:
        args.params, args.run_record = run_record(args.params)
    record = args.run_record or {}
    if record and not args.model:
        args.model = record['model']
    if not (args.model or args.params or args.symbol or args.onnx):
        raise EvalError('nothing to evaluate: give --model NAME --params FILE, --symbol PREFIX '
                        'or --onnx FILE')
    if args.params and not args.model:
        raise EvalError('--params needs --model NAME (no train_imagenet.py model.json beside %s)'
                        % args.params)
    if args.model and not args.params:
        raise EvalError('--model %s needs --params FILE (trained or converted weights)' % args.model)
    sources = [n for n in ('dataset', 'rec_val', 'data_dir', 'npy') if getattr(args, n)]
    if not sources and record:
        # evaluate where the run validated, unless told otherwise
        for key in ('dataset', 'rec_val', 'data_dir'):
            if record.get(key):
                setattr(args, key, record[key])
                break
    if len(sources) > 1:
        raise EvalError('give one data source, not %s'
                        % ' and '.join('--' + s.replace('_', '-') for s in sources))
    if args.npy_labels and not args.npy:
        raise EvalError('--npy-labels needs --npy')
    if args.rec_val_idx and not args.rec_val:
        raise EvalError('--rec-val-idx needs --rec-val')
    for flag in ('batch_size', 'input_size'):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise EvalError('--%s must be >= 1, got %d' % (flag.replace('_', '-'), value))
    if args.num_workers < 0:
        raise EvalError('-j/--num-data-workers must be >= 0, got %d' % args.num_workers)
    if args.num_batches is not None and args.num_batches < 1:
        raise EvalError('--num-batches must be >= 1, got %d' % args.num_batches)
    if (args.ten_crop or args.five_crop) and args.npy:
        raise EvalError('--%s needs images to crop; --npy holds preprocessed crops'
                        % ('ten-crop' if args.ten_crop else 'five-crop'))
    if args.interpolation and args.npy:
        raise EvalError('--interpolation: --npy holds preprocessed images (nothing to resize)')
    from symbols.zoo import rgb_flags_to_unit_scale
    try:
        rgb_flags_to_unit_scale(args)
    except ValueError as err:
        raise EvalError(str(err)) from None
    args.contexts = parse_contexts(args.ctx, args.num_gpus)
    check_dtype(args.dtype, args.contexts)
    if args.dtype == 'float16' and args.onnx:
        raise EvalError('--dtype float16 applies to --model and --symbol nets; evaluate '
                        '--onnx files separately')
    if args.crop_ratio is not None and not 0 < args.crop_ratio <= 1:
        raise EvalError('--crop-ratio must be in (0, 1], got %g' % args.crop_ratio)
    # before the evaluation: a report that cannot be written must not cost a whole run
    from ..utils.paths import check_output_path
    if args.json:
        check_output_path(args.json, '--json')
    if args.per_class:
        check_output_path(args.per_class, '--per-class', directory=True)
    if args.results_file:
        check_output_path(args.results_file, '--results-file')
        from .reports import check_results_file
        check_results_file(args.results_file)


def _common_classes(predictors, dinfo):
    """The class count every artefact agrees on (None: none of them records it)."""
    counts = {p.classes for p in predictors if p.classes}
    if len(counts) > 1:
        raise EvalError('the artefacts disagree on the class count: %s'
                        % ', '.join('%s: %s' % (p.label, p.classes) for p in predictors))
    classes = counts.pop() if counts else None
    expected = dinfo['data_config']['num_classes'] if dinfo else None
    if classes and expected and expected != classes:
        raise EvalError('the model has %d classes but dataset %s has %d'
                        % (classes, dinfo['name'], expected))
    return classes


def main(argv=None):
    """Run the evaluator on ``argv`` (default: the command line); returns the exit status.
    SIGINT/SIGTERM stop it with one line and 130/143 (no traceback, no silent death)."""
    import signal
    from ..utils.signals import Interrupted, StopSignals
    stops = StopSignals()       # installs nothing outside the main thread
    stops.install()
    try:
        return _main(argv)
    except Interrupted as stopped:
        print('eval.py: stopped by %s' % signal.Signals(stopped.signum).name, file=sys.stderr)
        return 128 + stopped.signum
    finally:
        stops.uninstall()


def _main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        threads = set_threads(threads_in_argv(argv))    # before MXNet loads
    except ThreadsError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        report = run(args, threads)
    except (ValueError, OSError, ImportError, RuntimeError) as err:
        # DataError, ExportError, ConversionError and EvalError are ValueErrors;
        # MXNetError is a RuntimeError whose text carries a C++ stack trace
        if args.debug:
            raise
        from symbols.checks import error_line
        text = str(err)
        if '\n' in text or 'Stack trace' in text:
            text = error_line(err)
        print('error: %s' % text, file=sys.stderr)
        return 2
    return 0 if report else 2


def run(args, threads=None):
    """Evaluate as the flags say; prints the table and returns the report dict."""
    check_args(args)
    predictors = load_predictors(args, threads)
    dataset, dinfo, config = resolve_preprocessing(args, predictors)
    classes = _common_classes(predictors, dinfo)
    # the class list a run or an export saved: an image folder is labelled by it
    recorded = next((p.record['class_names'] for p in predictors
                     if p.record and p.record.get('class_names')), None)
    crops = 10 if args.ten_crop else 5 if args.five_crop else None
    batches, num_images, input_size, source = open_batches(
        args, dataset, config, classes, recorded, crops=crops, interpolation=args.interpolation)
    crop_size = config['input_size'][-1] if crops else input_size
    for predictor in predictors:      # a fixed-shape ONNX file at another size fails here
        check = getattr(predictor.fn, 'check_input_size', None)
        if check:
            try:
                check(3, crop_size, crop_size)
            except ValueError as err:
                raise EvalError(str(err)) from None
        if crops:
            predictor.fn = MultiCrop(predictor.fn, crop_size, flips=crops == 10)
    if classes is None:
        # An ONNX / Symbol file without deployer JSON: take the count from one batch.
        first = next(iter(batches))[0]
        classes = int(predictors[0](first[:1]).shape[1])
    names = class_names(args, dinfo, classes, recorded or getattr(batches, 'classes', None))

    wall = time.perf_counter()
    if args.num_batches and num_images:
        num_images = min(num_images, args.num_batches * args.batch_size)
    tallies = evaluate(predictors, batches, classes, num_images=num_images,
                       progress=not args.no_progress, keep_predictions=bool(args.npy),
                       pad_to=args.batch_size, max_batches=args.num_batches)
    wall = time.perf_counter() - wall

    results = [result(p, t, names) for p, t in zip(predictors, tallies)]
    report = {
        'data': dict(source, num_images=tallies[0].n, input_size=crop_size,
                     crop_ratio=config['crop_ratio'], mean=list(config['mean']),
                     std=list(config['std']), interpolation=config['interpolation'],
                     batch_size=args.batch_size, crops=crops or 1,
                     num_batches=args.num_batches, dtype=args.dtype,
                     ctx=str(args.contexts[0])),
        'threads': int(os.environ.get('OMP_NUM_THREADS', '0') or 0),
        'wall_seconds': wall,
        'results': results,
    }
    report.update({k: results[0][k] for k in ('top1', 'top5', 'loss', 'img_per_s')})
    skipped = getattr(batches, 'skipped_images', [])
    if skipped:
        report['data']['skipped_images'] = [str(b) for b in skipped]
    print_results(report, results, classes, args.batch_size, predictions=bool(args.npy))
    try:
        _write_reports(args, report, results, tallies, names)
    except OSError as err:      # a full disk, a folder that vanished
        from ..utils.paths import write_error_line
        raise EvalError(write_error_line(err)) from None
    return report


def _write_reports(args, report, results, tallies, names):
    if args.per_class:
        if not tallies[0].labelled:
            raise EvalError('--per-class needs labels (--npy without --npy-labels has none)')
        for r, t in zip(results, tallies):
            r['per_class'] = per_class_rows(t, names)
            r['per_class_csv'], r['confusion_png'] = write_per_class(
                args.per_class, r['artefact'], r['per_class'], t.confusion)
            print_per_class(r)
    if args.json:
        from ..utils.atomic import write_json_atomic
        write_json_atomic(args.json, report)
    if args.results_file:
        from .reports import append_results_csv
        append_results_csv(args.results_file, report, results)
