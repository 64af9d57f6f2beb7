"""Image-folder trees (``root/<class>/<image>``) through Gluon's ``ImageFolderDataset``
and ``DataLoader`` with GluonCV's ImageNet transforms."""
import math
import os

import numpy as np

from .recordio import DataError

__all__ = ['check_folder', 'train_transform', 'val_transform', 'FolderLoader']

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
        extra = sorted(set(classes) ^ set(synsets))
        raise DataError('%s has different class folders from the training tree (differ: %s)'
                        % (root, ', '.join(extra[:5]) or 'order'))
    return classes


def train_transform(input_size, mean, std, min_random_area=0.08, jitter=0.4, lighting=0.1):
    """GluonCV's ImageNet training transform (random resized crop, flip, colour
    jitter, PCA lighting, to tensor, normalise)."""
    from mxnet.gluon.data.vision import transforms as T
    steps = [T.RandomResizedCrop(input_size, scale=(min_random_area, 1.0)), T.RandomFlipLeftRight()]
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
    """Seeded shuffle of this worker's disjoint, equal-sized slice of the dataset."""

    def __init__(self, length, num_parts, part_index, shuffle, seed):
        per = length // num_parts if shuffle else -(-length // num_parts)
        self.indices = np.arange(length)[part_index * per:(part_index + 1) * per]
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def __iter__(self):
        if not self.shuffle:
            return iter(self.indices.tolist())
        rng = np.random.RandomState((self.seed * 100003 + self.epoch) % (1 << 31))
        return iter(rng.permutation(self.indices).tolist())

    def __len__(self):
        return len(self.indices)


class FolderLoader:
    """Iterable of (data, label) batches from an image-folder tree.

    ``train=True``: GluonCV's augmentation, seeded shuffle (see :meth:`set_epoch`),
    last partial batch dropped; with ``num_parts`` workers each reads a disjoint,
    equal-sized slice. ``train=False``: every image once, in order."""

    def __init__(self, root, batch_size, input_size, train, mean, std, num_workers=4,
                 num_parts=1, part_index=0, seed=0, crop_ratio=0.875, min_random_area=0.08,
                 jitter=0.4, lighting=0.1, num_classes=None, synsets=None):
        from mxnet import gluon
        self.root = os.path.expanduser(root)
        self.classes = check_folder(self.root, num_classes, synsets)
        dataset = gluon.data.vision.ImageFolderDataset(self.root, flag=1)
        if len(dataset) == 0:
            raise DataError('image folder %s has no readable images' % self.root)
        tf = (train_transform(input_size, mean, std, min_random_area, jitter, lighting) if train
              else val_transform(input_size, mean, std, crop_ratio))
        self.sampler = _PartSampler(len(dataset), num_parts, part_index, train, seed)
        self.num_samples = len(self.sampler)
        self.train, self.batch_size = train, batch_size
        if train and self.num_samples < batch_size:
            raise DataError('%s: %d training images per worker, fewer than one batch of %d'
                            % (self.root, self.num_samples, batch_size))
        self.loader = gluon.data.DataLoader(
            dataset.transform_first(tf), batch_size=batch_size, sampler=self.sampler,
            last_batch='discard' if train else 'keep', num_workers=num_workers)

    def set_epoch(self, epoch):
        self.sampler.epoch = int(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for data, label in self.loader:
            yield data, label.astype('float32')
