"""Evaluate a zoo model, an exported Symbol graph (plain, fused or int8) or an ONNX file
on the same validation data: top-1, top-5, cross-entropy loss and images/s.

    python eval.py --model menet108_8x1_g3 --params menet108.params --rec-val val.rec
    python eval.py --symbol deploy/m deploy/m-int8 --dataset fashion-mnist-mini
    python eval.py --onnx deploy/m.onnx --data-dir ~/imagenet --per-class report/ --json r.json
    python eval.py --model menet108_8x1_g3 --params x.params --npy photos.npy   # top-5 per image

Several artefacts in one run (``--model`` + ``--symbol A B`` + ``--onnx C``) see the same
batches, so their numbers compare directly (e.g. int8 next to float32).

Data: exactly one of ``--dataset`` (embedded, default ``fashion-mnist-mini``),
``--rec-val``, ``--data-dir`` or ``--npy`` (an (N, 3, H, W) float32 array already
preprocessed; labels from ``--npy-labels`` if any). GluonCV's validation transform:
shorter side to ceil(input_size / crop_ratio), centre crop, (x/255 - mean) / std.
Input size and mean/std come from the flags, else the deployer JSON of an exported
artefact, else the dataset, else the model (ImageNet statistics).

Exit status 0, or 2 with ``error: ...`` on bad flags, weights or data.
"""
import argparse
import json
import os
import sys
import time

__all__ = ['main', 'evaluate', 'build_parser']


def build_parser():
    parser = argparse.ArgumentParser(
        prog='python eval.py',
        description='Top-1 / top-5 / loss / img/s of zoo models and exported artefacts.')
    what = parser.add_argument_group('what to evaluate (one or more)')
    what.add_argument('--model', default=None, help='registered model name (with --params)')
    what.add_argument('--alpha', type=float, default=None, help='OctConv low-frequency ratio')
    what.add_argument('--model-kwargs', default='{}', help='JSON object of extra model kwargs')
    what.add_argument('--params', default=None, help='.params of --model')
    what.add_argument('--classes', type=int, default=None,
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
    data.add_argument('--class-names', default=None,
                      help='text file, one class name per line (default: the dataset\'s / ImageNet\'s)')
    pre = parser.add_argument_group('preprocessing')
    pre.add_argument('--input-size', type=int, default=None)
    pre.add_argument('--crop-ratio', type=float, default=None, help='default 0.875')
    pre.add_argument('--mean', default=None, help='RGB mean on the [0,1] scale, "r,g,b"')
    pre.add_argument('--std', default=None, help='RGB std on the [0,1] scale, "r,g,b"')
    run = parser.add_argument_group('run and report')
    run.add_argument('--batch-size', type=int, default=32)
    run.add_argument('--num-workers', type=int, default=0, help='decoding workers')
    run.add_argument('--threads', type=int, default=None,
                     help='OMP threads for MXNet / onnxruntime (default: OMP_NUM_THREADS, else all cores)')
    run.add_argument('--per-class', default=None, metavar='DIR',
                     help='write per-class accuracy tables (CSV) and confusion-matrix PNGs to DIR')
    run.add_argument('--json', default=None, metavar='FILE', help='write every number to FILE')
    run.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


class EvalError(ValueError):
    """Bad flags, weights or data for an evaluation (the message names the problem)."""


def _floats(text, flag):
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        values = []
    if len(values) != 3:
        raise EvalError('%s must be three comma-separated numbers, got %r' % (flag, text))
    return values


def _run_record(params):
    """``model.json`` that train_imagenet.py writes beside its ``last.params`` /
    ``best.params`` (model name, kwargs, classes, input size, crop ratio, mean/std, data),
    or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(params)), 'model.json')
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except ValueError as err:
        raise EvalError('%s is not valid JSON: %s' % (path, err)) from None
    if not isinstance(record, dict) or 'model' not in record:
        return None
    return record


def _check_args(args):
    if args.params and os.path.isdir(args.params):
        args.params = os.path.join(args.params, 'last.params')    # a train_imagenet.py run dir
    args.run_record = _run_record(args.params) if args.params else None
    if args.run_record and not args.model:
        args.model = args.run_record.get('model')
    if not (args.model or args.params or args.symbol or args.onnx):
        raise EvalError('nothing to evaluate: give --model NAME --params FILE, --symbol PREFIX '
                        'or --onnx FILE')
    if args.params and not args.model:
        raise EvalError('--params needs --model NAME (no train_imagenet.py model.json beside %s)'
                        % args.params)
    if args.model and not args.params:
        raise EvalError('--model %s needs --params FILE (trained or converted weights)' % args.model)
    sources = [n for n in ('dataset', 'rec_val', 'data_dir', 'npy') if getattr(args, n)]
    record = args.run_record or {}
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
    for flag in ('batch_size', 'input_size', 'threads'):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise EvalError('--%s must be >= 1, got %d' % (flag.replace('_', '-'), value))
    if args.num_workers < 0:
        raise EvalError('--num-workers must be >= 0')
    if args.crop_ratio is not None and not 0 < args.crop_ratio <= 1:
        raise EvalError('--crop-ratio must be in (0, 1], got %g' % args.crop_ratio)


# ----------------------------------------------------------------------------- predictors

class Predictor:
    """One artefact: ``label``, ``kind``, ``classes``, ``deploy_info`` and ``__call__``
    (an (N, C, H, W) float32 numpy batch -> (N, classes) numpy logits)."""

    def __init__(self, label, kind, fn, classes, deploy_info=None, input_size=None):
        self.label, self.kind, self.fn = label, kind, fn
        self.classes, self.deploy_info, self.input_size = classes, deploy_info, input_size
        self.seconds = 0.0

    def __call__(self, batch):
        start = time.perf_counter()
        out = self.fn(batch)
        self.seconds += time.perf_counter() - start
        return out


def _mxnet_fn(block):
    import mxnet as mx

    def run(batch):
        return block(mx.nd.array(batch)).asnumpy()    # asnumpy waits for the result
    return run


def _info_size(info):
    shape = (info or {}).get('input_shape')
    return int(shape[-1]) if shape else None


def _load_predictors(args):
    import symbols
    predictors = []
    if args.model:
        import gluon_nets
        from symbols.zoo import build_net, parse_model_kwargs
        record = args.run_record or {}
        kwargs = parse_model_kwargs(args.model_kwargs, args.alpha)
        if record and record.get('model') == args.model and args.model_kwargs in (None, '{}'):
            kwargs = dict(record.get('kwargs') or {}, **kwargs)
        info = gluon_nets.get_model_info(args.model)
        net, _ = build_net(info.name, params=args.params,
                           classes=args.classes or record.get('classes'), **kwargs)
        net.hybridize(static_alloc=True, static_shape=True)
        classes = args.classes or _output_classes(net)
        deploy = None
        if record:  # the run's preprocessing, in the deployer JSON's layout
            deploy = {'input_shape': [1, 3, record['input_size'], record['input_size']]
                      if record.get('input_size') else None,
                      'preprocess': {'mean': record.get('mean'), 'std': record.get('std'),
                                     'crop_ratio': record.get('crop_ratio')}}
        predictors.append(Predictor('%s (%s)' % (info.name, os.path.basename(args.params)),
                                    'gluon', _mxnet_fn(net), classes, deploy, info.input_size))
        predictors[-1].min_input_size = info.min_input_size
    for prefix in args.symbol:
        try:
            block = symbols.load(prefix)
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            raise EvalError(str(err)) from None
        info = block.deploy_info
        classes = (info or {}).get('classes')
        kind = info['format'] if info else 'symbol'
        predictors.append(Predictor(os.path.basename(symbols.core._strip_prefix(prefix)), kind,
                                    _mxnet_fn(block), classes, info, _info_size(info)))
    for path in args.onnx:
        try:
            model = symbols.load_onnx(path, threads=args.threads)
        except (FileNotFoundError, ValueError) as err:
            raise EvalError(str(err)) from None
        info = model.deploy_info
        predictors.append(Predictor(os.path.basename(path), 'onnx', model,
                                    (info or {}).get('classes'), info, _info_size(info)))
    return predictors


def _output_classes(net):
    for param in reversed(list(net.collect_params().values())):
        if param.shape and len(param.shape) >= 2:
            return int(param.shape[0])
    return None


# ----------------------------------------------------------------------------- data

def _resolve_preprocessing(args, predictors):
    """(dataset, dataset_info or None, input_size, crop_ratio, mean, std)."""
    import numpy as np
    from gluon_nets import data
    dataset = args.dataset or (None if (args.rec_val or args.data_dir or args.npy)
                               else 'fashion-mnist-mini')
    dinfo = data.dataset_info(dataset) if dataset else None
    infos = [p for p in predictors if p.deploy_info]
    deploy = infos[0].deploy_info if infos else None
    pre = (deploy or {}).get('preprocess', {})
    for other in infos[1:]:
        theirs = other.deploy_info.get('preprocess', {})
        for key in ('mean', 'std', 'crop_ratio'):
            if theirs.get(key) and pre.get(key) and not args.__dict__.get(key) \
                    and [round(float(v), 6) for v in np.atleast_1d(theirs[key])] != \
                    [round(float(v), 6) for v in np.atleast_1d(pre[key])]:
                raise EvalError('%s and %s expect different preprocessing (%s %s vs %s): '
                                'evaluate them separately, or give --%s'
                                % (infos[0].label, other.label, key, pre[key], theirs[key],
                                   key.replace('_', '-')))
        if _info_size(other.deploy_info) != _info_size(deploy) and not args.input_size:
            raise EvalError('%s and %s expect different preprocessing (input size %s vs %s): '
                            'evaluate them separately, or give --input-size'
                            % (infos[0].label, other.label, _info_size(deploy),
                               _info_size(other.deploy_info)))
    input_size = args.input_size or _info_size(deploy) or (dinfo or {}).get('input_size') \
        or next((p.input_size for p in predictors if p.input_size), None) or 224
    mean = _floats(args.mean, '--mean') if args.mean else (
        pre.get('mean') or (dinfo or {}).get('mean') or list(data.IMAGENET_MEAN))
    std = _floats(args.std, '--std') if args.std else (
        pre.get('std') or (dinfo or {}).get('std') or list(data.IMAGENET_STD))
    crop_ratio = args.crop_ratio or pre.get('crop_ratio') or (dinfo or {}).get('crop_ratio') \
        or 0.875
    for p in predictors:
        minimum = getattr(p, 'min_input_size', None)
        if minimum and input_size < minimum:
            raise EvalError('%s needs inputs of at least %d px, input size is %d'
                            % (p.label, minimum, input_size))
    return dataset, dinfo, input_size, crop_ratio, mean, std


def _npy_batches(args, batch_size):
    import numpy as np
    if not os.path.isfile(args.npy):
        raise EvalError('--npy file %s does not exist' % args.npy)
    try:
        images = np.load(args.npy)
    except Exception as err:
        raise EvalError('cannot read %s as a .npy array: %s' % (args.npy, err)) from None
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise EvalError('%s holds an array of shape %s; expected (N, 3, H, W) images'
                        % (args.npy, images.shape))
    if not np.all(np.isfinite(images)):
        raise EvalError('%s holds NaN or infinite values' % args.npy)
    labels = None
    if args.npy_labels:
        if not os.path.isfile(args.npy_labels):
            raise EvalError('--npy-labels file %s does not exist' % args.npy_labels)
        try:
            if args.npy_labels.endswith('.json'):
                with open(args.npy_labels) as f:
                    labels = np.asarray(json.load(f))
            else:
                labels = np.load(args.npy_labels)
        except Exception as err:
            raise EvalError('cannot read labels %s: %s' % (args.npy_labels, err)) from None
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise EvalError('%s has %d labels for %d images' % (args.npy_labels, len(labels),
                                                                len(images)))
    images = images.astype(np.float32)
    batches = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batches.append((chunk, None if labels is None else labels[start:start + batch_size]))
    return batches, len(images), images.shape[-1]


class _NumpyBatches:
    """val_loader's (NDArray data, NDArray label) batches as numpy."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for data, label in self.loader:
            yield data.asnumpy(), label.asnumpy()


# ----------------------------------------------------------------------------- metrics

class _Tally:
    def __init__(self, classes):
        import numpy as np
        self.classes = classes
        self.n = self.top1 = self.topk = 0
        self.loss_sum = 0.0
        self.labelled = True
        self.confusion = np.zeros((classes, classes), dtype=np.int64)
        self.predictions = []

    def add(self, logits, labels, keep_predictions):
        import numpy as np
        logits = logits.astype(np.float64)
        k = min(5, self.classes)
        order = np.argsort(-logits, axis=1)[:, :k]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        if keep_predictions:
            for row, lp in zip(order, log_prob):
                self.predictions.append({'top5': [int(c) for c in row],
                                         'prob': [float(np.exp(lp[c])) for c in row]})
        self.n += len(logits)
        if labels is None:
            self.labelled = False
            return
        labels = labels.astype(np.int64)
        self.top1 += int((order[:, 0] == labels).sum())
        self.topk += int((order == labels[:, None]).any(axis=1).sum())
        self.loss_sum += float(-log_prob[np.arange(len(labels)), labels].sum())
        np.add.at(self.confusion, (labels, order[:, 0]), 1)


def evaluate(predictors, batches, classes, num_images=None, progress=True,
             keep_predictions=False, pad_to=None):
    """Run every predictor on every batch; returns one _Tally per predictor.

    batches : iterable of (images (N,C,H,W) float32 numpy, labels (N,) or None).
    pad_to : batch size; a smaller last batch is padded (and the padding dropped) so that
    static-shape graphs see one shape.
    """
    import numpy as np
    from tqdm import tqdm
    tallies = [_Tally(classes) for _ in predictors]
    bar = tqdm(total=num_images, unit='img', disable=not progress, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    try:
        for index, (images, labels) in enumerate(batches):
            n = len(images)
            if labels is not None:
                bad = (labels < 0) | (labels >= classes) | (labels != np.floor(labels))
                if bad.any():
                    raise EvalError('batch %d has label %r outside the model\'s %d classes'
                                    % (index, labels[bad][0], classes))
            feed = images
            if pad_to and n < pad_to:
                feed = np.concatenate([images, np.repeat(images[-1:], pad_to - n, axis=0)])
            for predictor, tally in zip(predictors, tallies):
                logits = np.asarray(predictor(feed))[:n]
                if logits.ndim != 2 or logits.shape[1] != classes:
                    raise EvalError('%s returns logits of shape %s, expected (%d, %d)'
                                    % (predictor.label, logits.shape, n, classes))
                if not np.all(np.isfinite(logits)):
                    raise EvalError('%s gives NaN or infinite logits on batch %d: the weights '
                                    'are corrupt or diverged' % (predictor.label, index))
                tally.add(logits, labels, keep_predictions)
            bar.update(n)
            if tallies[0].n and tallies[0].labelled:
                bar.set_postfix(top1='%.4f' % (tallies[0].top1 / tallies[0].n))
    finally:
        bar.close()
    if tallies and tallies[0].n == 0:
        raise EvalError('the data source yielded no images')
    return tallies


def _result(predictor, tally, class_names):
    labelled = tally.labelled and tally.n > 0
    result = {
        'artefact': predictor.label,
        'kind': predictor.kind,
        'classes': tally.classes,
        'num_images': tally.n,
        'top1': tally.top1 / tally.n if labelled else None,
        'top5': tally.topk / tally.n if labelled else None,
        'top5_k': min(5, tally.classes),
        'loss': tally.loss_sum / tally.n if labelled else None,
        'img_per_s': tally.n / predictor.seconds if predictor.seconds > 0 else None,
        'forward_seconds': predictor.seconds,
    }
    if tally.predictions:
        for pred in tally.predictions:
            if class_names:
                pred['names'] = [class_names[c] if c < len(class_names) else str(c)
                                 for c in pred['top5']]
        result['predictions'] = tally.predictions
    return result


def _per_class(tally, class_names):
    import numpy as np
    rows = []
    confusion = tally.confusion
    for c in range(tally.classes):
        count = int(confusion[c].sum())
        correct = int(confusion[c, c])
        others = confusion[c].copy()
        others[c] = 0
        confused = int(others.argmax()) if others.any() else None
        rows.append({'class': c, 'name': class_names[c] if class_names and c < len(class_names) else str(c),
                     'images': count, 'correct': correct,
                     'accuracy': correct / count if count else None,
                     'most_confused_with': confused,
                     'most_confused_count': int(others.max()) if others.any() else 0})
    return rows


def _write_per_class(out_dir, label, rows, confusion, class_names):
    import csv
    import numpy as np
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    stem = ''.join(ch if ch.isalnum() or ch in '._-' else '_' for ch in label)
    csv_path = os.path.join(out_dir, stem + '_per_class.csv')
    tmp = csv_path + '.tmp'
    with open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)
    classes = confusion.shape[0]
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, np.maximum(totals, 1), dtype=np.float64)
    side = min(4 + 0.35 * classes, 40)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    image = ax.imshow(normalised, cmap='Blues', vmin=0, vmax=1, interpolation='nearest')
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='fraction of the true class')
    if classes <= 50:
        names = [rows[c]['name'] for c in range(classes)]
        ax.set_xticks(range(classes))
        ax.set_yticks(range(classes))
        ax.set_xticklabels(names, rotation=90, fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
        if classes <= 20:
            for i in range(classes):
                for j in range(classes):
                    if confusion[i, j]:
                        ax.text(j, i, str(confusion[i, j]), ha='center', va='center', fontsize=7,
                                color='white' if normalised[i, j] > 0.5 else 'black')
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    ax.set_title('confusion matrix: %s' % label)
    fig.tight_layout()
    png_path = os.path.join(out_dir, stem + '_confusion.png')
    tmp_png = os.path.join(out_dir, '.' + stem + '_confusion.tmp.png')
    fig.savefig(tmp_png, dpi=100)
    plt.close(fig)
    os.replace(tmp_png, png_path)
    return csv_path, png_path


def _fmt(value, spec='%.4f'):
    return '-' if value is None else spec % value


def _class_names(args, dinfo, classes):
    if args.class_names:
        if not os.path.isfile(args.class_names):
            raise EvalError('--class-names file %s does not exist' % args.class_names)
        with open(args.class_names) as f:
            return [line.strip() for line in f if line.strip()]
    if dinfo and dinfo.get('class_names'):
        return dinfo['class_names']
    if classes == 1000:
        try:
            from gluon_nets.resources import imagenet_class_names
            return list(imagenet_class_names())
        except ImportError:
            return None
    return None


# ----------------------------------------------------------------------------- main

def _set_threads(argv):
    """OMP_NUM_THREADS must be set before MXNet loads (it uses ONE thread otherwise)."""
    threads = None
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, item in enumerate(argv):
        if item == '--threads' and i + 1 < len(argv):
            threads = argv[i + 1]
        elif item.startswith('--threads='):
            threads = item.split('=', 1)[1]
    if 'mxnet' in sys.modules:
        return
    if threads and threads.isdigit() and int(threads) > 0:
        os.environ['OMP_NUM_THREADS'] = threads
    else:
        os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))


def main(argv=None):
    _set_threads(argv)
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as err:
        # DataError, ExportError, ConversionError and EvalError are ValueErrors
        print('error: %s' % err, file=sys.stderr)
        return 2
    return 0 if report else 2


def run(args):
    """Evaluate as the flags say; prints the table and returns the report dict."""
    _check_args(args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    predictors = _load_predictors(args)
    dataset, dinfo, input_size, crop_ratio, mean, std = _resolve_preprocessing(args, predictors)
    classes = {p.classes for p in predictors if p.classes}
    if len(classes) > 1:
        raise EvalError('the artefacts disagree on the class count: %s'
                        % ', '.join('%s: %s' % (p.label, p.classes) for p in predictors))
    classes = classes.pop() if classes else None
    if dinfo and classes and dinfo['num_classes'] != classes:
        raise EvalError('the model has %d classes but dataset %s has %d'
                        % (classes, dinfo['name'], dinfo['num_classes']))

    if args.npy:
        batches, num_images, npy_size = _npy_batches(args, args.batch_size)
        source = {'npy': os.path.abspath(args.npy), 'labels': args.npy_labels}
        input_size = npy_size
    else:
        from gluon_nets import data
        loader = data.val_loader(dataset=args.dataset if args.dataset else None,
                                 rec_val=args.rec_val, rec_val_idx=args.rec_val_idx,
                                 data_dir=args.data_dir, batch_size=args.batch_size,
                                 input_size=input_size, crop_ratio=crop_ratio,
                                 num_workers=args.num_workers, mean=mean, std=std,
                                 num_classes=classes)
        batches = _NumpyBatches(loader)
        num_images = getattr(loader, 'num_samples', None)
        source = {'dataset': dataset, 'rec_val': args.rec_val, 'data_dir': args.data_dir}
    if classes is None:
        # An ONNX / Symbol file without deployer JSON: take the count from one batch.
        first = next(iter(batches))[0]
        classes = int(predictors[0](first[:1]).shape[1])
    class_names = _class_names(args, dinfo, classes)

    wall = time.perf_counter()
    tallies = evaluate(predictors, batches, classes, num_images=num_images,
                       progress=not args.no_progress, keep_predictions=bool(args.npy),
                       pad_to=args.batch_size)
    wall = time.perf_counter() - wall

    results = [_result(p, t, class_names) for p, t in zip(predictors, tallies)]
    report = {
        'data': dict(source, num_images=tallies[0].n, input_size=input_size,
                     crop_ratio=crop_ratio, mean=[float(v) for v in mean],
                     std=[float(v) for v in std], batch_size=args.batch_size),
        'threads': int(os.environ.get('OMP_NUM_THREADS', '0') or 0),
        'wall_seconds': wall,
        'results': results,
    }
    report.update({k: results[0][k] for k in ('top1', 'top5', 'loss', 'img_per_s')})

    header = '%-40s %-14s %8s %8s %8s %9s' % ('artefact', 'kind', 'top-1', 'top-%d' % min(5, classes),
                                               'loss', 'img/s')
    print('%d images, %dx%d, batch %d, %s threads' % (tallies[0].n, input_size, input_size,
                                                     args.batch_size, report['threads']))
    print(header)
    for r in results:
        print('%-40s %-14s %8s %8s %8s %9s' % (r['artefact'][:40], r['kind'], _fmt(r['top1']),
                                               _fmt(r['top5']), _fmt(r['loss']),
                                               _fmt(r['img_per_s'], '%.1f')))
    if args.npy:
        for r in results:
            print('predictions of %s:' % r['artefact'])
            for i, pred in enumerate(r['predictions']):
                names = pred.get('names') or [str(c) for c in pred['top5']]
                print('  image %d: %s' % (i, ', '.join('%s %s (%.3f)' % (c, n, p) for c, n, p in
                                                       zip(pred['top5'], names, pred['prob']))))
    if args.per_class:
        if not tallies[0].labelled:
            raise EvalError('--per-class needs labels (--npy without --npy-labels has none)')
        for r, t in zip(results, tallies):
            rows = _per_class(t, class_names)
            csv_path, png_path = _write_per_class(args.per_class, r['artefact'], rows, t.confusion,
                                                  class_names)
            r['per_class'] = rows
            r['per_class_csv'], r['confusion_png'] = csv_path, png_path
            print('\nper-class accuracy of %s (%s, %s):' % (r['artefact'], csv_path, png_path))
            shown = rows if len(rows) <= 50 else sorted(
                (x for x in rows if x['images']), key=lambda x: x['accuracy'])[:20]
            if len(rows) > 50:
                print('  (the 20 worst classes of %d)' % len(rows))
            for row in shown:
                print('  %4d %-24s %6d images  top-1 %s  most confused with %s'
                      % (row['class'], row['name'][:24], row['images'], _fmt(row['accuracy']),
                         '-' if row['most_confused_with'] is None else
                         '%d (%d)' % (row['most_confused_with'], row['most_confused_count'])))
    if args.json:
        directory = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(directory, exist_ok=True)
        tmp = args.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(report, f, indent=2)
            f.write('\n')
        os.replace(tmp, args.json)
    return report


if __name__ == '__main__':
    sys.exit(main())
