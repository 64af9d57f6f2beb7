"""Image-folder trees (``root/<class>/<image>``) through Gluon's ``ImageFolderDataset``
and ``DataLoader`` with GluonCV's ImageNet transforms."""
import math
import os

import numpy as np

from .images import scan_files
from .recordio import DataError, bad_images_error

__all__ = ['check_folder', 'class_mismatch', 'train_transform', 'val_transform', 'FolderLoader']

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def check_folder(root, num_classes=None, synsets=None):
    """Check a class-per-subfolder tree; returns its sorted class names.

    Raises :class:`DataError` for a missing or empty folder, a class folder without
    images, more classes than ``num_classes``, or class names differing from
    ``synsets`` (the training tree's, when checking the validation tree)."""
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise DataError('image folder %s does not exist' % root)
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DataError('image folder %s is empty: expected one subfolder of images per class' % root)
    for c in classes:
        files = [f for f in os.listdir(os.path.join(root, c)) if f.lower().endswith(IMAGE_EXTS)]
        if not files:
            raise DataError('class folder %s has no images (%s)'
                            % (os.path.join(root, c), '/'.join(IMAGE_EXTS)))
    if num_classes is not None and len(classes) > num_classes:
        raise DataError('%s has %d class folders, so labels reach %d >= --num-classes %d'
                        % (root, len(classes), len(classes) - 1, num_classes))
    if synsets is not None and classes != list(synsets):
        raise DataError(class_mismatch(root, classes, synsets, 'the training tree'))
    return classes


def _names(items, limit=5):
    items = sorted(items)
    return ', '.join(items[:limit]) + (' and %d more' % (len(items) - limit) if len(items) > limit else '')


def class_mismatch(root, classes, expected, whose, subset=False):
    """The one-line complaint about tree ``root``'s ``classes`` against ``expected``
    (``whose`` list: 'the training tree', 'the run'), or None when they agree (with
    ``subset``, when every class is expected)."""
    missing = sorted(set(expected) - set(classes))
    extra = sorted(set(classes) - set(expected))
    if not extra and (subset or not missing):
        return None
    parts = []
    if missing and not subset:
        parts.append('lacks %d class(es) of %s: %s' % (len(missing), whose, _names(missing)))
    if extra:
        parts.append('has %d class(es) %s does not: %s' % (len(extra), whose, _names(extra)))
    return '%s %s (labels are class indices in the list of %s, matched by name)' \
        % (root, ' and '.join(parts), whose)


def train_transform(input_size, mean, std, min_random_area=0.08, jitter=0.4, lighting=0.1,
                    flip=True):
    """GluonCV's ImageNet training transform (random resized crop, horizontal flip
    unless ``flip=False``, colour jitter, PCA lighting, to tensor, normalise)."""
    from mxnet.gluon.data.vision import transforms as T
    steps = [T.RandomResizedCrop(input_size, scale=(min_random_area, 1.0))]
    if flip:
        steps.append(T.RandomFlipLeftRight())
    if jitter:
        steps.append(T.RandomColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    if lighting:
        steps.append(T.RandomLighting(lighting))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def val_transform(input_size, mean, std, crop_ratio=0.875):
    """GluonCV's validation transform: shorter side to ceil(input_size/crop_ratio),
    centre crop ``input_size``, to tensor, normalise."""
    from mxnet.gluon.data.vision import transforms as T
    resize = int(math.ceil(input_size / crop_ratio))
    return T.Compose([T.Resize(resize, keep_ratio=True), T.CenterCrop(input_size),
                      T.ToTensor(), T.Normalize(mean, std)])


class _PartSampler:
    """Seeded shuffle of this worker's disjoint, equal-sized slice of the dataset.

    Training samples are ``(index, sample_seed)`` pairs: :class:`_SeededSamples`
    reseeds the augmentation's random generators from ``sample_seed`` before
    transforming the image, so an image's crop/flip/jitter depend on (--seed, epoch,
    position) only, not on which data-loader process made it or what it drew before
    (the worker processes are forked once and keep their own generators otherwise)."""

    def __init__(self, length, num_parts, part_index, shuffle, seed):
        per = length // num_parts if shuffle else -(-length // num_parts)
        self.indices = np.arange(length)[part_index * per:(part_index + 1) * per]
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def __iter__(self):
        if not self.shuffle:
            return iter(self.indices.tolist())
        epoch_seed = (int(self.seed) * 100003 + int(self.epoch)) % (1 << 31)
        order = np.random.RandomState(epoch_seed).permutation(self.indices).tolist()
        sample_seeds = np.random.RandomState(epoch_seed ^ 0x5eed).randint(0, 1 << 31, len(order))
        return iter(list(zip(order, sample_seeds.tolist())))

    def __len__(self):
        return len(self.indices)


class _SeededSamples:
    """``dataset[(i, seed)]``: Python's, NumPy's and MXNet's generators seeded with
    ``seed``, then ``dataset[i]`` (a plain index reads as it is)."""

    def __init__(self, dataset):
        self._dataset = dataset

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            import random
            import mxnet as mx
            key, seed = key
            random.seed(seed)
            np.random.seed(seed)
            mx.random.seed(seed)
        return self._dataset[key]


class FolderLoader:
    """Iterable of (data, label) batches from an image-folder tree.

    ``train=True``: GluonCV's augmentation, seeded shuffle (see :meth:`set_epoch`),
    last partial batch dropped; with ``num_parts`` workers each reads a disjoint,
    equal-sized slice. ``train=False``: every image once, in order.

    Every image is decoded once here: undecodable ones (zero-byte, fake ``.jpg``) raise
    DataError naming them, or with ``skip_bad_images`` are left out (``skipped_images``).
    ``class_names``: the label space (the training tree's or a run's classes; default
    this tree's sorted folders); the tree must have exactly those classes (with
    ``class_subset``, some of them), each labelled with its index in ``class_names``."""

    def __init__(self, root, batch_size, input_size, train, mean, std, num_workers=4,
                 num_parts=1, part_index=0, seed=0, crop_ratio=0.875, min_random_area=0.08,
                 jitter=0.4, lighting=0.1, num_classes=None, synsets=None,
                 skip_bad_images=False, class_names=None, class_subset=False, flip=True):
        from mxnet import gluon
        self.root = os.path.expanduser(root)
        found = check_folder(self.root, None if class_names else num_classes, synsets)
        dataset = gluon.data.vision.ImageFolderDataset(self.root, flag=1)
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            problem = class_mismatch(self.root, found, class_names, 'the training tree'
                                     if not class_subset else 'the run', class_subset)
            if problem:
                raise DataError(problem)
            index = {name: i for i, name in enumerate(class_names)}
            dataset.items = [(path, index[dataset.synsets[label]]) for path, label in dataset.items]
            self.classes = list(class_names)
        else:
            self.classes = found
        self.skipped_images = scan_files([path for path, _ in dataset.items], max(1, num_workers))
        if self.skipped_images:
            if not skip_bad_images:
                raise bad_images_error(self.skipped_images, target=self.root)
            bad = {b.where for b in self.skipped_images}
            dataset.items = [item for item in dataset.items if item[0] not in bad]
        if len(dataset) == 0:
            raise DataError('image folder %s has no readable images' % self.root)
        tf = (train_transform(input_size, mean, std, min_random_area, jitter, lighting, flip) if train
              else val_transform(input_size, mean, std, crop_ratio))
        self.sampler = _PartSampler(len(dataset), num_parts, part_index, train, seed)
        self.num_samples = len(self.sampler)
        self.train, self.batch_size = train, batch_size
        if train and self.num_samples < batch_size:
            raise DataError('%s: %d training images per worker, fewer than one batch of %d'
                            % (self.root, self.num_samples, batch_size))
        self.loader = gluon.data.DataLoader(
            _SeededSamples(dataset.transform_first(tf)), batch_size=batch_size, sampler=self.sampler,
            last_batch='discard' if train else 'keep', num_workers=num_workers)

    def set_epoch(self, epoch):
        self.sampler.epoch = int(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        from mxnet.base import MXNetError
        try:
            for data, label in self.loader:
                yield data, label.astype('float32')
        except MXNetError as err:   # an image changed after the up-front check
            raise DataError('cannot read an image of %s: %s'
                            % (self.root, str(err).split('Stack trace')[0].strip().splitlines()[-1])) from None
