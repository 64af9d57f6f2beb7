"""Pack an ImageNet-style folder tree into shuffled RecordIO shards.

    python -m gluon_nets.data.make_rec ~/imagenet/train ~/imagenet/rec/train --shards 8
    python -m gluon_nets.data.make_rec ~/imagenet/val   ~/imagenet/rec/val   --no-shuffle

writes ``<prefix>-00000.rec/.idx`` ... (or ``<prefix>.rec/.idx`` for one shard) and
``<prefix>-classes.txt``. Settings are those GluonCV's ImageNet guide gives
``im2rec.py``: shorter side resized to 480 (``--resize``), JPEG quality 95, images
shuffled once (seeded) before they are dealt to the shards. Labels are class
indices in sorted folder-name order (as ``ImageFolderDataset``).
``--reindex FILE.rec`` rebuilds a lost ``.idx`` from its ``.rec``.
"""
import argparse
import os
import sys
from multiprocessing import Pool

import numpy as np

from .folder import IMAGE_EXTS, check_folder
from .recordio import _HEADER, _MAGIC, DataError

__all__ = ['list_images', 'write_shards', 'reindex']


def list_images(root):
    """[(relative path, label)] of a class-per-subfolder tree, sorted."""
    classes = check_folder(root)
    items = []
    for label, c in enumerate(classes):
        for dirpath, _, files in sorted(os.walk(os.path.join(root, c))):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTS):
                    items.append((os.path.relpath(os.path.join(dirpath, f), root), label))
    return classes, items


def _encode(job):
    import cv2
    root, rel, resize, quality = job
    img = cv2.imread(os.path.join(root, rel), cv2.IMREAD_COLOR)
    if img is None:
        return rel, None
    if resize:
        h, w = img.shape[:2]
        scale = resize / min(h, w)
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return rel, buf.tobytes() if ok else None


def write_shards(root, prefix, shards=1, resize=480, quality=95, shuffle=True, seed=0,
                 workers=None):
    """Write the shards; returns their .rec paths. Unreadable images raise DataError."""
    from mxnet import recordio
    root = os.path.expanduser(root)
    classes, items = list_images(root)
    order = np.random.RandomState(seed).permutation(len(items)) if shuffle else np.arange(len(items))
    shards = max(1, min(int(shards), len(items)))
    names = ([prefix] if shards == 1 else ['%s-%05d' % (prefix, k) for k in range(shards)])
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with open(prefix + '-classes.txt', 'w') as f:
        f.write('\n'.join(classes) + '\n')
    out = []
    with Pool(workers or os.cpu_count() or 1) as pool:
        for name, part in zip(names, np.array_split(order, shards)):
            writer = recordio.MXIndexedRecordIO(name + '.idx.tmp', name + '.rec.tmp', 'w')
            jobs = [(root, items[i][0], resize, quality) for i in part]
            for key, (i, (rel, jpg)) in enumerate(zip(part, pool.imap(_encode, jobs, chunksize=16))):
                if jpg is None:
                    writer.close()
                    raise DataError('cannot read image %s' % os.path.join(root, rel))
                header = recordio.IRHeader(0, float(items[i][1]), int(i), 0)
                writer.write_idx(key, recordio.pack(header, jpg))
            writer.close()
            os.replace(name + '.rec.tmp', name + '.rec')
            os.replace(name + '.idx.tmp', name + '.idx')
            out.append(name + '.rec')
    return out


def reindex(rec):
    """Rebuild ``rec``'s ``.idx`` by walking its record headers."""
    size = os.path.getsize(rec)
    lines, pos, key = [], 0, 0
    with open(rec, 'rb') as f:
        while pos < size:
            f.seek(pos)
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                raise DataError('%s is truncated after record %d (byte %d)' % (rec, key, pos))
            magic, lrec = _HEADER.unpack(head)
            if magic != _MAGIC:
                raise DataError('%s is corrupt at record %d (byte %d): no magic number' % (rec, key, pos))
            length = lrec & ((1 << 29) - 1)
            if pos + _HEADER.size + length > size:
                raise DataError('%s is truncated: record %d (byte %d) is cut off' % (rec, key, pos))
            lines.append('%d\t%d\n' % (key, pos))
            pos += _HEADER.size + length + (4 - length % 4) % 4
            key += 1
    idx = os.path.splitext(rec)[0] + '.idx'
    with open(idx + '.tmp', 'w') as f:
        f.writelines(lines)
    os.replace(idx + '.tmp', idx)
    return idx


def main(argv=None):
    parser = argparse.ArgumentParser(description='Pack an image-folder tree into shuffled RecordIO shards.')
    parser.add_argument('root', nargs='?', help='folder with one subfolder of images per class')
    parser.add_argument('prefix', nargs='?', help='output path prefix, e.g. ~/data/rec/train')
    parser.add_argument('--shards', type=int, default=1, help='number of .rec files (default 1)')
    parser.add_argument('--resize', type=int, default=480,
                        help='shorter side in pixels (GluonCV: 480; 0 keeps the size)')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality (GluonCV: 95)')
    parser.add_argument('--no-shuffle', action='store_true', help='keep sorted order (validation)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=None, help='encoding processes (default: all cores)')
    parser.add_argument('--reindex', metavar='REC', help='only rebuild REC\'s .idx file')
    args = parser.parse_args(argv)
    try:
        if args.reindex:
            print(reindex(args.reindex))
            return
        if not args.root or not args.prefix:
            parser.error('give ROOT and PREFIX (or --reindex REC)')
        if not 1 <= args.quality <= 100:
            parser.error('--quality must be in 1..100')
        for path in write_shards(args.root, args.prefix, args.shards, args.resize, args.quality,
                                 not args.no_shuffle, args.seed, args.workers):
            print(path)
    except DataError as err:
        sys.exit('error: %s' % err)


if __name__ == '__main__':
    main()
