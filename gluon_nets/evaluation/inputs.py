"""What the artefacts are fed: the preprocessing (one ``data_config``), the batches
(a dataset, a .rec, an image folder or a preprocessed .npy) and the class names."""
import json
import os
import sys

import numpy as np

from ..model_zoo import resolve_data_config
from .loop import EvalError

__all__ = ['DEFAULT_DATASET', 'resolve_preprocessing', 'open_batches', 'class_names']

DEFAULT_DATASET = 'fashion-mnist-mini'
# compared between artefacts: a mismatch means one of them would be fed wrongly
_COMPARED = ('mean', 'std', 'crop_ratio', 'input_size')


def _flag(key):
    return '--' + key.replace('_', '-')


def _check_agreement(args, recorded):
    """EvalError when two artefacts' records ask for different preprocessing that no
    flag overrides."""
    first = recorded[0] if recorded else None
    for other in recorded[1:]:
        for key in _COMPARED:
            ours, theirs = first.record['data_config'][key], other.record['data_config'][key]
            if getattr(args, key) is None and \
                    np.round(np.atleast_1d(ours), 6).tolist() != np.round(np.atleast_1d(theirs), 6).tolist():
                raise EvalError('%s and %s expect different preprocessing (%s %s vs %s): '
                                'evaluate them separately, or give %s'
                                % (first.label, other.label, key, ours, theirs, _flag(key)))


def resolve_preprocessing(args, predictors):
    """``(dataset name or None, dataset_info or None, data_config)``.

    The data_config is, key by key under the flags (``--input-size``, ``--crop-ratio``,
    ``--mean``, ``--std``): the record of the first artefact that has one (a run's
    ``model.json`` or a deployer JSON; artefacts must agree), else the dataset's recipe
    over the ``--model``'s registry entry (ImageNet's for a bare graph)."""
    from gluon_nets import data
    from symbols.zoo import parse_rgb
    dataset = args.dataset or (None if (args.rec_val or args.data_dir or args.npy)
                               else DEFAULT_DATASET)
    dinfo = data.dataset_info(dataset) if dataset else None
    recorded = [p for p in predictors if p.record]
    _check_agreement(args, recorded)
    if recorded:
        base = dict(recorded[0].record['data_config'])
    else:
        base = resolve_data_config(next((p.model for p in predictors if p.model), None))
        if dinfo:   # the dataset's recipe
            base.update({key: dinfo['data_config'][key] for key in _COMPARED})
    try:
        flags = dict(input_size=args.input_size, crop_ratio=args.crop_ratio,
                     mean=parse_rgb(args.mean, '--mean') if args.mean else None,
                     std=parse_rgb(args.std, '--std') if args.std else None)
    except ValueError as err:
        raise EvalError(str(err)) from None
    base.update({key: value for key, value in flags.items() if value is not None})
    config = resolve_data_config(None, **base)
    size = config['input_size'][-1]
    if config['input_size'][1] != size:
        raise EvalError('the validation transform crops squares; data_config input_size is %s'
                        % (config['input_size'],))
    for p in predictors:
        if p.min_input_size and size < p.min_input_size:
            raise EvalError('%s needs inputs of at least %d px, input size is %d'
                            % (p.label, p.min_input_size, size))
    chosen = getattr(args, 'interpolation', None)
    if chosen:
        config['interpolation'] = chosen
    elif config['interpolation'] != data.INTERPOLATION and not args.npy:
        print('warning: data_config asks for %s resizing; gluon_nets.data resizes %s (give '
              '--interpolation %s to resize as the model was scored)'
              % (config['interpolation'], data.INTERPOLATION, config['interpolation']),
              file=sys.stderr)
        config['interpolation'] = data.INTERPOLATION    # the report says what was done
    return dataset, dinfo, config


def _npy_batches(args):
    if not os.path.isfile(args.npy):
        raise EvalError('--npy file %s does not exist' % args.npy)
    try:
        images = np.load(args.npy, allow_pickle=False)   # an object array would unpickle
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
                labels = np.load(args.npy_labels, allow_pickle=False)
        except Exception as err:
            raise EvalError('cannot read labels %s: %s' % (args.npy_labels, err)) from None
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise EvalError('%s has %d labels for %d images' % (args.npy_labels, len(labels),
                                                                len(images)))
    images = images.astype(np.float32)
    size = args.batch_size
    batches = [(images[start:start + size],
                None if labels is None else labels[start:start + size])
               for start in range(0, len(images), size)]
    return batches, len(images), images.shape[-1]


class _NumpyBatches:
    """val_loader's (NDArray data, NDArray label) batches as numpy (with the loader's
    ``skipped_images`` and, for a folder, ``classes``)."""

    def __init__(self, loader):
        self.loader = loader
        self.skipped_images = getattr(loader, 'skipped_images', [])
        self.classes = getattr(loader, 'classes', None)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for data, label in self.loader:
            yield data.asnumpy(), label.asnumpy()


class _ResampledBatches:
    """The images of a checked ``val_loader`` (its clean shards or folder items), decoded
    and resized here with another interpolation than the loaders' bilinear: shorter side
    to ``resize`` (OpenCV ``interp`` code), centre crop ``crop``, normalised. Batches of
    (N, 3, crop, crop) float32 and (N,) labels, in the loader's order."""

    def __init__(self, loader, batch_size, resize, crop, interp, mean, std):
        self.loader, self.batch_size = loader, int(batch_size)
        self.resize, self.crop, self.interp = int(resize), int(crop), int(interp)
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self.skipped_images = getattr(loader, 'skipped_images', [])
        self.classes = getattr(loader, 'classes', None)
        self.num_samples = getattr(loader, 'num_samples', None)

    def __len__(self):
        return -(-int(self.num_samples or 0) // self.batch_size)

    def _encoded(self):
        """(encoded image bytes, label) in the loader's order."""
        import mxnet as mx
        shards = getattr(self.loader, 'shards', None)
        if shards is not None:            # RecordLoader: the checked (clean) shards
            for shard in shards:
                reader = mx.recordio.MXIndexedRecordIO(shard.idx, shard.rec, 'r')
                try:
                    for key in reader.keys:
                        header, raw = mx.recordio.unpack(reader.read_idx(key))
                        yield raw, float(np.asarray(header.label).reshape(-1)[0])
                finally:
                    reader.close()
            return
        items = self.loader.loader._dataset._data.items    # FolderLoader's checked items
        for path, label in items:
            with open(path, 'rb') as f:
                yield f.read(), float(label)

    def _image(self, raw):
        import mxnet as mx
        img = mx.image.imdecode(raw, flag=1)
        img = mx.image.resize_short(img, self.resize, interp=self.interp)
        img, _ = mx.image.center_crop(img, (self.crop, self.crop))
        chw = img.asnumpy().astype(np.float32).transpose(2, 0, 1) / 255.0
        return (chw - self.mean) / self.std

    def __iter__(self):
        images, labels = [], []
        for raw, label in self._encoded():
            images.append(self._image(raw))
            labels.append(label)
            if len(images) == self.batch_size:
                yield np.stack(images), np.asarray(labels, np.float32)
                images, labels = [], []
        if images:
            yield np.stack(images), np.asarray(labels, np.float32)


def open_batches(args, dataset, config, classes, recorded_names=None, crops=None,
                 interpolation=None):
    """``(batches, number of images or None, input side, source description)`` for the
    flags' data source, preprocessed as ``config`` says (a .npy is taken as it is).
    An image folder is labelled by ``recorded_names`` (a run's or an export's class
    names) matched by folder name: a folder class they lack is an error.

    ``crops`` (5 or 10): the batches hold the centre square of side
    ceil(input_size / crop_ratio) for :class:`~.options.MultiCrop` to cut.
    ``interpolation`` (a name other than the loaders' bilinear): the images are resized
    here with it (:class:`_ResampledBatches`)."""
    import math
    if args.npy:
        batches, num_images, size = _npy_batches(args)
        return batches, num_images, size, {'npy': os.path.abspath(args.npy),
                                           'labels': args.npy_labels}
    from gluon_nets import data
    size, crop_ratio = config['input_size'][-1], config['crop_ratio']
    side = int(math.ceil(size / crop_ratio)) if crops else size
    loader = data.val_loader(dataset=args.dataset if args.dataset else None,
                             rec_val=args.rec_val, rec_val_idx=args.rec_val_idx,
                             data_dir=args.data_dir, batch_size=args.batch_size,
                             input_size=side, crop_ratio=1.0 if crops else crop_ratio,
                             num_workers=args.num_workers,
                             mean=config['mean'], std=config['std'], num_classes=classes,
                             skip_bad_images=getattr(args, 'skip_bad_images', False),
                             class_names=recorded_names if args.data_dir else None,
                             class_subset=True)
    if loader.skipped_images:
        print('--skip-bad-images: left out %d undecodable image(s): %s'
              % (len(loader.skipped_images),
                 '; '.join(str(b) for b in loader.skipped_images[:5])), file=sys.stderr)
    if interpolation and interpolation != data.INTERPOLATION:
        from .options import INTERPOLATIONS
        batches = _ResampledBatches(loader, args.batch_size,
                                    side if crops else int(math.ceil(size / crop_ratio)), side,
                                    INTERPOLATIONS[interpolation], config['mean'], config['std'])
    else:
        batches = _NumpyBatches(loader)
    return (batches, getattr(loader, 'num_samples', None), side,
            {'dataset': dataset, 'rec_val': args.rec_val, 'data_dir': args.data_dir})


def class_names(args, dinfo, classes, recorded=None):
    """Names of the ``classes`` classes: ``--class-names``, else the dataset's, else the
    record's, else ImageNet's for 1000 classes, else None."""
    if args.class_names:
        if not os.path.isfile(args.class_names):
            raise EvalError('--class-names file %s does not exist' % args.class_names)
        with open(args.class_names) as f:
            return [line.strip() for line in f if line.strip()]
    if dinfo and dinfo.get('class_names'):
        return dinfo['class_names']
    if recorded and len(recorded) == classes:
        return list(recorded)
    if classes == 1000:
        try:
            from gluon_nets.resources import imagenet_class_names
            return list(imagenet_class_names())
        except ImportError:
            return None
    return None
