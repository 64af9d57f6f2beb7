"""``python -m symbols.export``: a zoo model (with its weights) -> deployable files.

    python -m symbols.export --model menet108_8x1_g3 --params menet108.params --out deploy/
    python -m symbols.export --model menet108_8x1_g3 --params menet108.params --out deploy/ --fuse
    python -m symbols.export --model menet108_8x1_g3 --params menet108.params --out deploy/ --format onnx
    python -m symbols.export --model NAME --params trained.params --dataset fashion-mnist-mini \\
        --out deploy/ --format int8          # calibrates on the dataset's training images

Exit status 0 on success, 2 with ``error: ...`` on bad flags, weights, data or an
``--out`` that cannot be written (checked before the export; a full disk says so), and
3 when the model cannot be exported in that format (the message names the operator).
One line each; ``--debug`` shows the traceback.
"""
import argparse
import os
import sys
import types

from .checks import ExportError
from .exporter import FORMATS, export as _export
from .fused import PARTITION_CHOICES
from .int8 import CALIB_MODES, DEFAULT_CALIB_MODE, DEFAULT_EXCLUDE, PERCENTILE

__all__ = ['main', 'calibration_images', 'build_parser']


def calibration_images(dataset=None, rec=None, data_dir=None, npy=None, input_size=224,
                       crop_ratio=0.875, mean=None, std=None, limit=256, batch_size=32):
    """Up to ``limit`` preprocessed (N, 3, S, S) float32 images for int8 calibration,
    read with the validation transform (no augmentation). ``dataset`` (an embedded
    name) means that dataset's *training* shards, so the val split stays unseen."""
    import numpy as np
    if npy is not None:
        if not os.path.isfile(npy):
            raise FileNotFoundError('calibration file %s does not exist' % npy)
        arr = np.load(npy, allow_pickle=False)     # an object array would unpickle
        if arr.ndim != 4 or arr.shape[1] != 3:
            raise ValueError('%s holds %s; calibration images must be (N, 3, H, W)'
                             % (npy, arr.shape))
        return arr[:limit].astype(np.float32)
    from gluon_nets import data
    common = dict(batch_size=batch_size, input_size=input_size, crop_ratio=crop_ratio,
                  mean=mean, std=std)
    if dataset is not None:
        info = data.dataset_info(dataset)
        loader = data.val_loader(rec_val=info['train_rec'],
                                 num_classes=info['data_config']['num_classes'],
                                 **common)
    else:
        loader = data.val_loader(rec_val=rec, data_dir=data_dir, **common)
    chunks, count = [], 0
    for images, _ in loader:
        chunks.append(images.asnumpy())
        count += len(chunks[-1])
        if count >= limit:
            break
    if not chunks:
        raise ValueError('the calibration source yielded no images')
    return np.concatenate(chunks)[:limit]


def build_parser():
    parser = argparse.ArgumentParser(
        prog='python -m symbols.export',
        description='Export a zoo model as an MXNet Symbol graph (optionally oneDNN-fused), '
                    'ONNX (opset 13) or INT8, with a deployer JSON.')
    parser.add_argument('--model', default=None,
                        help='registered model name (gluon_nets.list_models()); default: the '
                             'model of a train_imagenet.py run given as --params')
    parser.add_argument('--alpha', type=float, default=None, help='OctConv low-frequency ratio')
    parser.add_argument('--model-kwargs', default='{}', help='JSON object of extra model kwargs')
    parser.add_argument('--params', default=None,
                        help='.params of this model (convert / train_imagenet output, or a run '
                             'directory: its model.json gives model, kwargs and data_config); '
                             'default: random weights (for graph checks only)')
    parser.add_argument('--classes', '--num-classes', dest='classes', type=int, default=None,
                        help='class count (default: read from --params, else the dataset\'s, else 1000)')
    parser.add_argument('--input-size', type=int, default=None,
                        help='square input side (default: the run\'s, else the dataset\'s, '
                             'else the model\'s)')
    parser.add_argument('--batch', '--batch-size', dest='batch', type=int, default=1,
                        help='batch of the recorded input shape')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--name', default=None, help='file stem (default: the model name)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an export of the same name and format already in --out '
                             '(without it, such an export is refused and left untouched)')
    parser.add_argument('--format', choices=FORMATS[:1] + FORMATS[2:], default='symbol',
                        help='symbol (default), onnx or int8')
    parser.add_argument('--fuse', action='store_true',
                        help='with --format symbol: write the oneDNN-fused graph '
                             '(optimize_for MKLDNN: BN folded, conv+act+add fused) when it '
                             'runs faster than the plain graph, else the plain graph')
    parser.add_argument('--partition', choices=PARTITION_CHOICES, default='auto',
                        help='with --fuse: auto (default) times the partitioned and the plain '
                             'graph on the check input and keeps the partitioned one only when '
                             'it is >= 3%% faster (the deployer JSON records which, and both '
                             'times); always: keep the partitioned graph')
    parser.add_argument('--no-optimize', action='store_true',
                        help='export the net as built, without gluon_nets.inference.optimize '
                             '(BN folding and family rewrites, exact to 1e-5)')
    parser.add_argument('--dataset', default=None,
                        help='embedded dataset the weights were trained on: its mean/std, '
                             'class names and input size go into the deployer JSON')
    parser.add_argument('--mean', default=None, help='RGB mean on the [0,1] scale, "r,g,b"')
    parser.add_argument('--std', default=None, help='RGB std on the [0,1] scale, "r,g,b"')
    parser.add_argument('--rgb-mean', default=None,
                        help='RGB mean on the 0-255 scale, "r,g,b" (train_imagenet.py\'s flag)')
    parser.add_argument('--rgb-std', default=None, help='RGB std on the 0-255 scale, "r,g,b"')
    calib = parser.add_argument_group('int8 calibration (one source; default: --dataset\'s training images)')
    calib.add_argument('--calib-rec', default=None, help='.rec file(s) to calibrate on')
    calib.add_argument('--calib-data-dir', default=None, help='image folder to calibrate on')
    calib.add_argument('--calib-npy', default=None, help='(N,3,H,W) preprocessed float32 .npy')
    calib.add_argument('--num-calib', type=int, default=256, help='calibration images (default 256)')
    calib.add_argument('--calib-mode', choices=CALIB_MODES, default=DEFAULT_CALIB_MODE,
                       help='thresholds from min/max (naive), the %g-th percentile of each '
                            'layer\'s outputs (percentile) or KL divergence (entropy); '
                            'default %s' % (PERCENTILE, DEFAULT_CALIB_MODE))
    calib.add_argument('--int8-exclude', default=None, metavar='LAYERS',
                       help='comma-separated layers kept float32: first-conv, last-conv, or '
                            'node names of the -symbol.json; "none" for none (default: %s)'
                            % (','.join(DEFAULT_EXCLUDE) or 'none'))
    calib.add_argument('--quantized-dtype', choices=('auto', 'int8', 'uint8'), default='auto',
                       help='auto (default: uint8 after ReLU, int8 elsewhere), int8 or uint8')
    calib.add_argument('--quantize-granularity', choices=('channel-wise', 'tensor-wise'),
                       default='channel-wise')
    dev = parser.add_argument_group('devices (the export is built and checked on the CPU; the '
                                    'files run on any device)')
    dev.add_argument('--ctx', default=None, help='cpu (gpu* refused: see the group description)')
    dev.add_argument('--num-gpus', type=int, default=0, help='0 (GluonCV spelling; GPUs refused)')
    dev.add_argument('--dtype', default='float32', choices=['float32', 'float16'],
                     help='float32 (float16 needs a GPU to check the graph: refused)')
    parser.add_argument('--debug', action='store_true', help='show the traceback of an error')
    return parser


def _check_devices(args):
    """``--ctx``/``--num-gpus``/``--dtype``: the export is traced and checked on the CPU;
    a GPU or float16 request is one ValueError line (a CPU-only build says so)."""
    from gluon_nets.utils.devices import check_dtype, parse_contexts
    contexts = parse_contexts(args.ctx, args.num_gpus)
    check_dtype(args.dtype, contexts)
    if any(c.device_type != 'cpu' for c in contexts) or args.dtype != 'float32':
        raise ValueError('--ctx/--num-gpus/--dtype: symbols.export builds and checks exports on '
                         'the CPU in float32 (the files load on any device: '
                         'symbols.load(prefix, ctx=mx.gpu(0)))')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    from gluon_nets.utils.threads import ThreadsError, set_threads
    try:
        set_threads()
    except ThreadsError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        info = _run(args)
    except ExportError as err:
        if args.debug:
            raise
        print('error: %s' % err, file=sys.stderr)
        return 3
    except (ValueError, OSError, ImportError, RuntimeError) as err:
        # MXNetError is a RuntimeError whose text carries a C++ stack trace
        if args.debug:
            raise
        print('error: %s' % _error_text(err, args.out), file=sys.stderr)
        return 2
    checks = ', '.join('%s=%s' % (k, v) for k, v in info['checks'].items()
                       if not isinstance(v, (dict, list)))
    print('exported %s (%s): %s' % (info['model'], info['format'], checks))
    if info['format'] == 'fused':
        seconds = info['checks'].get('fused_cpu_seconds')
        print('  the file holds the %s graph%s' % (
            info['checks']['fused_kept'] if info['partitioned'] else 'plain (not partitioned)',
            ': CPU s per call on the check input, %s' % ', '.join(
                '%s %.4g' % kv for kv in sorted(seconds.items())) if seconds else
            ' (the partitioner failed: %s)' % info['checks']['fused_partition_failed']
            if 'fused_partition_failed' in info['checks'] else ''))
    for path in info['files'].values():
        print('  %s' % path)
    return 0


def _error_text(err, out):
    """One line for an error of the export (``out``: the output folder)."""
    from gluon_nets.utils.paths import is_short_write, short_write_line, write_error_line
    from .checks import error_line
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
        return write_error_line(err)
    if isinstance(err, RuntimeError):
        return short_write_line(out) if is_short_write(err) \
            else error_line(err)
    return str(err)


def _format(args):
    """The export format the flags ask for; ValueError for flags that do not combine."""
    fmt = args.format
    if args.fuse:
        if fmt == 'onnx':
            raise ValueError('--fuse applies to --format symbol (ONNX runtimes fuse on their own)')
        if fmt == 'symbol':
            fmt = 'fused'
    calib_sources = [s for s in (args.calib_rec, args.calib_data_dir, args.calib_npy) if s]
    if calib_sources and fmt != 'int8':
        raise ValueError('--calib-* flags apply to --format int8 only')
    if len(calib_sources) > 1:
        raise ValueError('give one calibration source (--calib-rec, --calib-data-dir or --calib-npy)')
    if fmt == 'int8' and not calib_sources and not args.dataset:
        raise ValueError('--format int8 needs calibration images: --calib-rec, --calib-data-dir, '
                         '--calib-npy or --dataset')
    if args.num_calib < 1:
        raise ValueError('--num-calib must be >= 1')
    if fmt != 'int8' and (args.int8_exclude is not None or args.quantized_dtype != 'auto'):
        raise ValueError('--int8-exclude and --quantized-dtype apply to --format int8 only')
    if fmt != 'fused' and args.partition != 'auto':
        raise ValueError('--partition applies to --fuse only')
    return fmt


def _refuse_to_overwrite(args, fmt, model_name):
    """ValueError naming --out when it already holds this export (same stem and format),
    unless --overwrite: an earlier export is never replaced by accident."""
    from .exporter import _STEM_SUFFIX, export_files
    name = args.name or model_name
    out = os.path.expanduser(args.out)
    found = [n for n in export_files(name, fmt) if os.path.lexists(os.path.join(out, n))]
    if found and not args.overwrite:
        raise ValueError('--out %s already holds an export named %s (%s): give --overwrite to '
                         'replace it, or another --out/--name'
                         % (args.out, name + _STEM_SUFFIX[fmt], ', '.join(found)))


def _run(args):
    from gluon_nets.model_zoo import get_model_info, resolve_data_config
    from .deploy_record import export_data_config
    from .zoo import build_net, parse_model_kwargs, parse_rgb, rgb_flags_to_unit_scale, run_record
    from gluon_nets.utils.paths import check_output_path
    fmt = _format(args)
    _check_devices(args)
    check_output_path(args.out, '--out', directory=True)
    kwargs = parse_model_kwargs(args.model_kwargs, args.alpha)
    params, record = run_record(args.params) if args.params else (None, None)
    if not (args.model or record):
        raise ValueError('--model NAME is needed (or --params of a train_imagenet.py run)')
    model_info = get_model_info(args.model or record['model'])
    _refuse_to_overwrite(args, fmt, model_info.name)
    if record and record['model'] == model_info.canonical_name and args.model_kwargs == '{}':
        kwargs = dict(record['kwargs'], **kwargs)      # the run's architecture options
    # preprocessing: flags, else --dataset, else the run's model.json, else the model's entry
    base = record['data_config'] if record else resolve_data_config(model_info.name)
    class_names = record['class_names'] if record else None
    classes, input_size = args.classes, args.input_size
    rgb_flags_to_unit_scale(args)
    mean = parse_rgb(args.mean, '--mean') if args.mean else None
    std = parse_rgb(args.std, '--std') if args.std else None
    if args.dataset:
        from gluon_nets.data import dataset_info
        data_info = dataset_info(args.dataset)
        base = dict(base, **{key: data_info['data_config'][key]
                             for key in ('input_size', 'crop_ratio', 'mean', 'std')})
        class_names = data_info['class_names']
        if classes is None and params is None:
            classes = data_info['data_config']['num_classes']
    config = export_data_config(model_info.name, base, input_size=input_size, mean=mean, std=std)
    size = config['input_size'][-1]
    if size < model_info.min_input_size:
        raise ValueError('%s needs inputs of at least %d px, --input-size is %d'
                         % (model_info.name, model_info.min_input_size, size))

    net, source, classes = build_net(model_info.name, params=params, classes=classes, **kwargs)
    if params is None:
        print('warning: no --params: exporting randomly initialised weights', file=sys.stderr)
    calib = None
    if fmt == 'int8':
        no_file = not (args.calib_rec or args.calib_data_dir or args.calib_npy)
        calib = calibration_images(dataset=args.dataset if no_file else None,
                                   rec=args.calib_rec, data_dir=args.calib_data_dir,
                                   npy=args.calib_npy, input_size=size,
                                   crop_ratio=config['crop_ratio'], mean=config['mean'],
                                   std=config['std'], limit=args.num_calib)
    if class_names is not None and len(class_names) != classes:
        class_names = None           # e.g. ImageNet weights exported with --dataset's stats
    return _export(net, args.out, args.name or model_info.name, format=fmt, batch=args.batch,
                   data_config=config, model=model_info.name, model_kwargs=kwargs,
                   weights=source, class_names=class_names, calib_data=calib,
                   num_calib_examples=args.num_calib, calib_mode=args.calib_mode,
                   quantize_granularity=args.quantize_granularity,
                   quantized_dtype=args.quantized_dtype,
                   exclude_layers=parse_exclude(args.int8_exclude),
                   partition=args.partition, optimize=not args.no_optimize,
                   overwrite=args.overwrite)


def parse_exclude(text):
    """``--int8-exclude`` -> a list of layer names (None: the int8 default; 'none': [])."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(',') if n.strip()]
    return [] if names == ['none'] else names


class _CallableModule(types.ModuleType):
    """``import symbols.export`` binds the package attribute ``symbols.export`` to this
    module, hiding the function of the same name; calling the module calls the
    function, so ``symbols.export(net, ...)`` works either way."""

    def __call__(self, *args, **kwargs):
        return _export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == '__main__':
    sys.exit(main())
