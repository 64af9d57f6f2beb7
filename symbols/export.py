"""``python -m symbols.export``: a zoo model (with its weights) -> deployable files.

    python -m symbols.export --model menet108_8x1_g3 --params menet108.params --out deploy/
    python -m symbols.export --model menet108_8x1_g3 --params menet108.params --out deploy/ --fuse
    python -m symbols.export --model menet108_8x1_g3 --params menet108.params --out deploy/ --format onnx
    python -m symbols.export --model NAME --params trained.params --dataset fashion-mnist-mini \\
        --out deploy/ --format int8          # calibrates on the dataset's training images

Exit status 0 on success, 2 with ``error: ...`` on bad flags, weights or data, and 3
when the model cannot be exported in that format (the message names the operator).
"""
import argparse
import os
import sys
import types

from .core import FORMATS, IMAGENET_MEAN, IMAGENET_STD, ExportError, export as _export

__all__ = ['main', 'calibration_images']


def calibration_images(dataset=None, rec=None, data_dir=None, npy=None, input_size=224,
                       mean=None, std=None, limit=256, batch_size=32):
    """Up to ``limit`` preprocessed (N, 3, S, S) float32 images for int8 calibration,
    read with the validation transform (no augmentation). ``dataset`` (an embedded
    name) means that dataset's *training* shards, so the val split stays unseen."""
    import numpy as np
    if npy is not None:
        if not os.path.isfile(npy):
            raise FileNotFoundError('calibration file %s does not exist' % npy)
        arr = np.load(npy)
        if arr.ndim != 4 or arr.shape[1] != 3:
            raise ValueError('%s holds %s; calibration images must be (N, 3, H, W)'
                             % (npy, arr.shape))
        return arr[:limit].astype(np.float32)
    from gluon_nets import data
    if dataset is not None:
        info = data.dataset_info(dataset)
        loader = data.val_loader(rec_val=info['train_rec'], batch_size=batch_size,
                                 input_size=input_size, crop_ratio=info['crop_ratio'],
                                 mean=mean or info['mean'], std=std or info['std'],
                                 num_classes=info['num_classes'])
    else:
        loader = data.val_loader(rec_val=rec, data_dir=data_dir, batch_size=batch_size,
                                 input_size=input_size, mean=mean, std=std)
    chunks, count = [], 0
    for images, _ in loader:
        chunks.append(images.asnumpy())
        count += len(chunks[-1])
        if count >= limit:
            break
    if not chunks:
        raise ValueError('the calibration source yielded no images')
    return np.concatenate(chunks)[:limit]


def _floats(text, flag):
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        raise ValueError('%s must be three comma-separated numbers, got %r' % (flag, text)) from None
    if len(values) != 3:
        raise ValueError('%s must be three comma-separated numbers, got %r' % (flag, text))
    return values


def build_parser():
    parser = argparse.ArgumentParser(
        prog='python -m symbols.export',
        description='Export a zoo model as an MXNet Symbol graph (optionally oneDNN-fused), '
                    'ONNX (opset 13) or INT8, with a deployer JSON.')
    parser.add_argument('--model', required=True, help='registered model name (gluon_nets.list_models())')
    parser.add_argument('--alpha', type=float, default=None, help='OctConv low-frequency ratio')
    parser.add_argument('--model-kwargs', default='{}', help='JSON object of extra model kwargs')
    parser.add_argument('--params', default=None,
                        help='.params of this model (convert / train_imagenet output); '
                             'default: random weights (for graph checks only)')
    parser.add_argument('--classes', type=int, default=None,
                        help='class count (default: read from --params, else the dataset\'s, else 1000)')
    parser.add_argument('--input-size', type=int, default=None,
                        help='square input side (default: the dataset\'s, else the model\'s)')
    parser.add_argument('--batch', type=int, default=1, help='batch of the recorded input shape')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--name', default=None, help='file stem (default: the model name)')
    parser.add_argument('--format', choices=FORMATS[:1] + FORMATS[2:], default='symbol',
                        help='symbol (default), onnx or int8')
    parser.add_argument('--fuse', action='store_true',
                        help='with --format symbol: write the oneDNN-fused graph '
                             '(optimize_for MKLDNN: BN folded, conv+act+add fused)')
    parser.add_argument('--dataset', default=None,
                        help='embedded dataset the weights were trained on: its mean/std, '
                             'class names and input size go into the deployer JSON')
    parser.add_argument('--mean', default=None, help='RGB mean on the [0,1] scale, "r,g,b"')
    parser.add_argument('--std', default=None, help='RGB std on the [0,1] scale, "r,g,b"')
    calib = parser.add_argument_group('int8 calibration (one source; default: --dataset\'s training images)')
    calib.add_argument('--calib-rec', default=None, help='.rec file(s) to calibrate on')
    calib.add_argument('--calib-data-dir', default=None, help='image folder to calibrate on')
    calib.add_argument('--calib-npy', default=None, help='(N,3,H,W) preprocessed float32 .npy')
    calib.add_argument('--num-calib', type=int, default=256, help='calibration images (default 256)')
    calib.add_argument('--calib-mode', choices=('naive', 'entropy'), default='naive',
                       help='thresholds from min/max (naive) or KL divergence (entropy)')
    calib.add_argument('--quantize-granularity', choices=('channel-wise', 'tensor-wise'),
                       default='channel-wise')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        info = _run(args)
    except ExportError as err:
        print('error: %s' % err, file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError, ImportError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    checks = ', '.join('%s=%s' % (k, v) for k, v in info['checks'].items()
                       if not isinstance(v, (dict, list)))
    print('exported %s (%s): %s' % (info['model'], info['format'], checks))
    for path in info['files'].values():
        print('  %s' % path)
    return 0


def _run(args):
    from .zoo import build_net, parse_model_kwargs
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
    kwargs = parse_model_kwargs(args.model_kwargs, args.alpha)

    import gluon_nets
    model_info = gluon_nets.get_model_info(args.model)
    mean = _floats(args.mean, '--mean') if args.mean else None
    std = _floats(args.std, '--std') if args.std else None
    class_names, classes, input_size = None, args.classes, args.input_size
    if args.dataset:
        from gluon_nets.data import dataset_info
        data_info = dataset_info(args.dataset)
        mean, std = mean or list(data_info['mean']), std or list(data_info['std'])
        class_names = data_info['class_names']
        if classes is None and args.params is None:
            classes = data_info['num_classes']
        input_size = input_size or data_info['input_size']
    mean, std = mean or list(IMAGENET_MEAN), std or list(IMAGENET_STD)
    input_size = input_size or model_info.input_size
    if input_size < model_info.min_input_size:
        raise ValueError('%s needs inputs of at least %d px, --input-size is %d'
                         % (model_info.name, model_info.min_input_size, input_size))

    net, source = build_net(model_info.name, params=args.params, classes=classes, **kwargs)
    if args.params is None:
        print('warning: no --params: exporting randomly initialised weights', file=sys.stderr)
    calib = None
    if fmt == 'int8':
        calib = calibration_images(dataset=None if calib_sources else args.dataset,
                                   rec=args.calib_rec, data_dir=args.calib_data_dir,
                                   npy=args.calib_npy, input_size=input_size, mean=mean, std=std,
                                   limit=args.num_calib)
    out_classes = None
    if class_names is not None:
        out_classes = len(class_names)
    info = _export(net, args.out, args.name or model_info.name, format=fmt,
                   input_size=input_size, batch=args.batch, mean=mean, std=std,
                   model=model_info.name, model_kwargs=kwargs, weights=source,
                   class_names=class_names if out_classes == _classes_of(net) else None,
                   calib_data=calib, num_calib_examples=args.num_calib,
                   calib_mode=args.calib_mode, quantize_granularity=args.quantize_granularity)
    return info


def _classes_of(net):
    """Output size of ``net`` (its last parameter with a leading output dimension)."""
    params = list(net.collect_params().values())
    for param in reversed(params):
        if param.shape and len(param.shape) >= 2:
            return param.shape[0]
    return None


class _CallableModule(types.ModuleType):
    """``import symbols.export`` binds the package attribute ``symbols.export`` to this
    module, hiding the function of the same name; calling the module calls the
    function, so ``symbols.export(net, ...)`` works either way."""

    def __call__(self, *args, **kwargs):
        return _export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == '__main__':
    sys.exit(main())
