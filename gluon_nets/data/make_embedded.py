"""Build the embedded ``fashion-mnist-mini`` RecordIO shards shipped in the package.

Run once by a maintainer (not needed at run time)::

    apt-get install dataset-fashion-mnist      # the IDX files (MIT licence, Zalando SE)
    python -m gluon_nets.data.make_embedded    # writes gluon_nets/data/fashion_mnist_mini/

The subset is balanced and deterministic: ``--train-per-class`` images per class
drawn (seeded) from the 60k training set, ``--val-per-class`` from the 10k test set.
Each 28x28 grey image is zero-padded to 32x32 (Fashion-MNIST's background is 0)
and stored as a lossless PNG, so that the standard validation transform (resize
to ceil(32/0.875)=37, centre crop 32) shows the network the whole garment.
The training records are written as ``--train-shards`` shuffled shards.
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np

__all__ = ['read_idx', 'build']

DEFAULT_SOURCE = '/usr/share/datasets/fashion-mnist'
CLASS_NAMES = ['t-shirt/top', 'trouser', 'pullover', 'dress', 'coat',
               'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a numpy array of its declared shape."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError('%s is not an IDX file (bad magic)' % path)
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ValueError('%s: only unsigned-byte IDX files are supported (type 0x%02x)'
                         % (path, dtype_code))
    shape = struct.unpack('>%dI' % ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError('%s is truncated: %d bytes of data for shape %s'
                         % (path, data.size, shape))
    return data.reshape(shape)


def _balanced_indices(labels, per_class, rng):
    picked = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise ValueError('class %d has only %d images, %d asked' % (c, len(idx), per_class))
        picked.append(rng.choice(idx, per_class, replace=False))
    out = np.concatenate(picked)
    rng.shuffle(out)
    return out


def _write_shard(prefix, images, labels, ids):
    import cv2
    from mxnet import recordio
    writer = recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    for i, (img, label, src_id) in enumerate(zip(images, labels, ids)):
        padded = np.pad(img, 2)  # 28x28 -> 32x32, zero (= background) border
        ok, png = cv2.imencode('.png', padded, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert ok
        header = recordio.IRHeader(0, float(label), int(src_id), 0)
        writer.write_idx(i, recordio.pack(header, png.tobytes()))
    writer.close()


def build(source=DEFAULT_SOURCE, out=None, train_per_class=1200, val_per_class=200,
          train_shards=2, seed=0):
    """Write ``train-<k>.rec/.idx`` (k < train_shards) and ``val.rec/.idx`` into ``out``."""
    out = out or os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fashion_mnist_mini')
    os.makedirs(out, exist_ok=True)
    rng = np.random.RandomState(seed)
    splits = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', train_per_class),
              'val': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', val_per_class)}
    for split, (img_file, lbl_file, per_class) in splits.items():
        images = read_idx(os.path.join(source, img_file))
        labels = read_idx(os.path.join(source, lbl_file))
        sel = _balanced_indices(labels, per_class, rng)
        if split == 'val':
            _write_shard(os.path.join(out, 'val'), images[sel], labels[sel], sel)
            continue
        for k, part in enumerate(np.array_split(sel, train_shards)):
            _write_shard(os.path.join(out, 'train-%d' % k), images[part], labels[part], part)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--source', default=DEFAULT_SOURCE,
                        help='folder with the four Fashion-MNIST *-ubyte.gz IDX files')
    parser.add_argument('--out', default=None, help='output folder (default: the package copy)')
    parser.add_argument('--train-per-class', type=int, default=1200)
    parser.add_argument('--val-per-class', type=int, default=200)
    parser.add_argument('--train-shards', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.source):
        sys.exit('error: %s not found; install it with `apt-get install dataset-fashion-mnist` '
                 'or pass --source' % args.source)
    out = build(args.source, args.out, args.train_per_class, args.val_per_class,
                args.train_shards, args.seed)
    print('wrote', out)


if __name__ == '__main__':
    main()
