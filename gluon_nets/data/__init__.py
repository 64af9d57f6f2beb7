"""Data for ``train_imagenet.py`` and ``eval.py``: RecordIO shards, image folders and
the embedded ``fashion-mnist-mini`` set, with GluonCV's ImageNet transforms.

API
---
``dataset_info(name)`` -> dict with ``data_config`` (the dataset's preprocessing in
the registry's structure, keys as ``model_zoo.IMAGENET_DATA_CONFIG``: ``input_size``
(3, H, W), ``crop_ratio``, ``mean``, ``std`` (RGB, on the [0, 1] pixel scale, as
``transforms.Normalize``), ``interpolation``, ``num_classes``), the same values flat
for older callers (``num_classes``, ``input_size`` as an int, ``crop_ratio``, ``mean``,
``std``), ``class_names``, ``train_rec`` (list of shard paths), ``val_rec``, plus the
recipe defaults ``min_random_area``, ``jitter``, ``lighting``. Names:
``fashion-mnist-mini`` (shipped; 12,000 train / 2,000 val images, 10 classes,
32x32 grey stored as 3-channel PNG records) and ``imagenet`` (statistics only).

``class_count(num_classes=None, dataset=None, data_dir=None, default=1000)`` -> the
number of classes a run trains or evaluates with (the one rule: the flag, else the
class folders of ``data_dir``, else the embedded dataset's count, else ``default``).

``val_loader(dataset=None, rec_val=None, rec_val_idx=None, data_dir=None,
batch_size=32, input_size=224, crop_ratio=0.875, num_workers=0, mean=None, std=None,
num_classes=None, skip_bad_images=False, class_names=None, class_subset=False)`` -> iterable of ``(data, label)``: ``data`` an (N, 3, H, W)
float32 NDArray, normalised; ``label`` an (N,) float32 NDArray of class indices.
Every validation image exactly once, last batch partial. Transform: shorter side
to ceil(input_size / crop_ratio), centre crop, (x - mean) / std. Exactly one source:
``dataset`` (an embedded name), ``rec_val`` (a .rec, a comma list or a glob of
shards; ``rec_val_idx`` defaults to each .rec's .idx) or ``data_dir`` (a tree
``data_dir/val/<class>/<image>``, or ``data_dir/<class>/<image>`` when it has no
``val`` subfolder). ``mean``/``std`` default to the dataset's (ImageNet's for
your own data).

``train_loader(dataset=None, rec_train=None, rec_train_idx=None, data_dir=None,
batch_size=32, input_size=224, num_workers=4, mean=None, std=None, num_classes=None,
num_parts=1, part_index=0, seed=0, min_random_area=None, jitter=None,
lighting=None, skip_bad_images=False, flip=True)`` -> the same kind of iterable with GluonCV's training
augmentation (random resized crop of area [min_random_area, 1] and aspect [3/4, 4/3],
horizontal flip, brightness/contrast/saturation jitter 0.4, PCA lighting 0.1),
shuffled from ``(seed, epoch)`` -- call ``loader.set_epoch(e)`` before each pass --
last partial batch dropped, ``len(loader)`` batches per pass. With ``num_parts``
workers, worker ``part_index`` reads a disjoint part of the data and all parts
give the same number of batches.

Both loaders have ``num_samples`` (records this worker reads per pass),
``skipped_images`` (the [BadImage] left out) and, for folders, ``classes``.

Every image is decoded once before a loader is returned (RecordIO shards and folders,
train and val; ``images.py`` says why): an undecodable one raises :class:`DataError`
naming the file and record index (or the image path), unless ``skip_bad_images=True``
leaves it out (``loader.skipped_images`` lists them). Folder trees label images by
``class_names`` when given (the training tree's classes, or a run's saved list):
``val_loader(data_dir=..., class_names=names)`` refuses a tree whose classes differ,
naming the missing and extra ones (with ``class_subset=True`` a subset is accepted,
each class keeping its index in ``class_names``).

Every problem raises :class:`DataError` (a ``ValueError``) naming the file: missing,
empty, truncated or corrupt ``.rec``/``.idx`` (with the record index), empty
folders, labels >= ``num_classes``.

Making data: ``python -m gluon_nets.data.make_rec`` (image tree -> shuffled shards,
GluonCV's im2rec settings; ``--classes`` labels a validation tree by the training
list); ``python -m gluon_nets.data.check PATH`` lists undecodable images of a .rec or
folder; ``python -m gluon_nets.data.make_embedded`` rebuilt the shipped set (not
needed at run time).
"""
import os

from ..model_zoo import IMAGENET_DATA_CONFIG
from .recordio import DataError, RecordLoader, resolve_shards, scan_record_file
from .folder import FolderLoader, check_folder
from .images import BadImage

__all__ = ['DataError', 'BadImage', 'dataset_info', 'list_datasets', 'class_count', 'train_loader',
           'val_loader', 'IMAGENET_MEAN', 'IMAGENET_STD', 'INTERPOLATION']

#: how both loaders resize (MXNet's bilinear defaults): the ``interpolation`` a run records
INTERPOLATION = 'bilinear'

IMAGENET_MEAN = IMAGENET_DATA_CONFIG['mean']
IMAGENET_STD = IMAGENET_DATA_CONFIG['std']
_HERE = os.path.dirname(os.path.abspath(__file__))
_FMNIST_DIR = os.path.join(_HERE, 'fashion_mnist_mini')

# ``data_config``: the preprocessing, in the registry's structure (model_zoo.IMAGENET_DATA_CONFIG)
_DATASETS = {
    'fashion-mnist-mini': dict(
        data_config=dict(
            input_size=(3, 32, 32), crop_ratio=0.875, interpolation='bilinear', num_classes=10,
            # per-channel statistics of the 12k training images (grey, padded to 32 px)
            mean=(0.2193, 0.2193, 0.2193), std=(0.3323, 0.3323, 0.3323)),
        class_names=['t-shirt/top', 'trouser', 'pullover', 'dress', 'coat', 'sandal',
                     'shirt', 'sneaker', 'bag', 'ankle boot'],
        train_rec=[os.path.join(_FMNIST_DIR, 'train-0.rec'), os.path.join(_FMNIST_DIR, 'train-1.rec')],
        val_rec=os.path.join(_FMNIST_DIR, 'val.rec'),
        # a 10-minute CPU budget (about 12 epochs) is too short for ImageNet-strength
        # augmentation on 32-px garments: light crops only (measured: after 300 batches
        # val top-1 0.750 with area 0.8 and no jitter vs 0.725 with area 0.35 + jitter 0.4)
        min_random_area=0.8, jitter=0.0, lighting=0.0,
        licence=os.path.join(_FMNIST_DIR, 'LICENSE')),
    'imagenet': dict(
        data_config=dict(IMAGENET_DATA_CONFIG),
        class_names=None, train_rec=None, val_rec=None,
        min_random_area=0.08, jitter=0.4, lighting=0.1, licence=None),
}


def list_datasets():
    """Names accepted by :func:`dataset_info` and ``--dataset``."""
    return sorted(_DATASETS)


def dataset_info(name):
    """Facts and default recipe of a named dataset (a fresh dict; see the module doc)."""
    key = str(name).lower().replace('_', '-')
    if key not in _DATASETS:
        raise DataError('unknown dataset %r; known: %s' % (name, ', '.join(list_datasets())))
    info = dict(_DATASETS[key])
    config = dict(info['data_config'])
    info['data_config'] = config
    # the flat keys older callers read; the same values as ``data_config``
    info.update(num_classes=config['num_classes'], input_size=config['input_size'][-1],
                crop_ratio=config['crop_ratio'], mean=config['mean'], std=config['std'])
    info['name'] = key
    info['class_names'] = list(info['class_names']) if info['class_names'] else None
    info['train_rec'] = list(info['train_rec']) if info['train_rec'] else None
    return info


def class_count(num_classes=None, dataset=None, data_dir=None, default=1000):
    """How many classes a run has: the one rule the trainer and the loaders use.

    ``num_classes`` (the flag) when given; else, for an image-folder tree, its class
    folders (``data_dir/train`` if present, else ``data_dir``); else the embedded
    ``dataset``'s count; else ``default`` (RecordIO labels carry no class count: the
    model's, ImageNet's 1000 unless its family says otherwise). Returns an int >= 1.
    """
    if num_classes:
        return int(num_classes)
    if data_dir:
        return len(check_folder(_folder(data_dir, 'train')))
    if dataset:
        return dataset_info(dataset)['num_classes']
    return int(default)


def _one_source(dataset, rec, data_dir, kind):
    given = [n for n, v in (('dataset', dataset), ('rec_' + kind, rec), ('data_dir', data_dir)) if v]
    if len(given) > 1:
        raise DataError('give one data source, not %s' % ' and '.join(given))
    if not given:
        return 'dataset', 'fashion-mnist-mini'
    return given[0], {'dataset': dataset, 'rec_' + kind: rec, 'data_dir': data_dir}[given[0]]


def _stats(dataset, mean, std):
    if dataset:
        info = dataset_info(dataset)
        return (mean or info['mean']), (std or info['std'])
    return (mean or IMAGENET_MEAN), (std or IMAGENET_STD)


def _folder(data_dir, split):
    sub = os.path.join(os.path.expanduser(data_dir), split)
    return sub if os.path.isdir(sub) else os.path.expanduser(data_dir)


def _record_loader(rec, idx, num_classes, skip_bad_images, scan_workers, *args, **kwargs):
    """A RecordLoader over checked shards: headers, labels, then every image decoded."""
    from .recordio import drop_bad_images
    shards = [scan_record_file(r, i, num_classes) for r, i in resolve_shards(rec, idx)]
    shards, skipped = drop_bad_images(shards, skip_bad_images, scan_workers)
    loader = RecordLoader(shards, *args, num_classes=num_classes, **kwargs)
    loader.skipped_images = skipped
    return loader


def val_loader(dataset=None, rec_val=None, rec_val_idx=None, data_dir=None, batch_size=32,
               input_size=224, crop_ratio=0.875, num_workers=0, mean=None, std=None,
               num_classes=None, skip_bad_images=False, class_names=None, class_subset=False):
    """Validation batches (see the module doc)."""
    kind, source = _one_source(dataset, rec_val, data_dir, 'val')
    mean, std = _stats(source if kind == 'dataset' else None, mean, std)
    if kind == 'dataset':
        num_classes = class_count(num_classes, dataset=source)
        rec_val, rec_val_idx, kind = dataset_info(source)['val_rec'], None, 'rec_val'
    if kind == 'rec_val':
        return _record_loader(rec_val, rec_val_idx, num_classes, skip_bad_images,
                              max(1, num_workers), batch_size, input_size, False, mean, std,
                              num_workers=num_workers, crop_ratio=crop_ratio)
    return FolderLoader(_folder(data_dir, 'val'), batch_size, input_size, False, mean, std,
                        num_workers=num_workers, crop_ratio=crop_ratio, num_classes=num_classes,
                        skip_bad_images=skip_bad_images, class_names=class_names,
                        class_subset=class_subset)


def train_loader(dataset=None, rec_train=None, rec_train_idx=None, data_dir=None, batch_size=32,
                 input_size=224, num_workers=4, mean=None, std=None, num_classes=None,
                 num_parts=1, part_index=0, seed=0, min_random_area=None, jitter=None,
                 lighting=None, skip_bad_images=False, flip=True):
    """Training batches with GluonCV's augmentation (see the module doc); ``flip=False``
    leaves out the random horizontal flip."""
    kind, source = _one_source(dataset, rec_train, data_dir, 'train')
    mean, std = _stats(source if kind == 'dataset' else None, mean, std)
    recipe = dataset_info(source if kind == 'dataset' else 'imagenet')
    aug = dict(min_random_area=recipe['min_random_area'] if min_random_area is None else min_random_area,
               jitter=recipe['jitter'] if jitter is None else jitter,
               lighting=recipe['lighting'] if lighting is None else lighting, flip=bool(flip))
    common = dict(num_workers=num_workers, num_parts=num_parts, part_index=part_index, seed=seed,
                  **aug)
    if kind == 'dataset':
        num_classes = class_count(num_classes, dataset=source)
        rec_train, rec_train_idx, kind = recipe['train_rec'], None, 'rec_train'
    if kind == 'rec_train':
        return _record_loader(rec_train, rec_train_idx, num_classes, skip_bad_images,
                              max(1, num_workers), batch_size, input_size, True, mean, std,
                              **common)
    return FolderLoader(_folder(data_dir, 'train'), batch_size, input_size, True, mean, std,
                        num_classes=num_classes, skip_bad_images=skip_bad_images, **common)
