"""Pack an ImageNet-style folder tree into shuffled RecordIO shards.

    python -m gluon_nets.data.make_rec ~/imagenet/train ~/imagenet/rec/train --shards 8
    python -m gluon_nets.data.make_rec ~/imagenet/val   ~/imagenet/rec/val   --no-shuffle \
        --classes ~/imagenet/rec/train-classes.txt   # the training labels, matched by name

writes ``<prefix>-00000.rec/.idx`` ... (or ``<prefix>.rec/.idx`` for one shard) and
``<prefix>-classes.txt``. Settings are those GluonCV's ImageNet guide gives
``im2rec.py``: shorter side resized to 480 (``--resize``), JPEG quality 95, images
shuffled once (seeded) before they are dealt to the shards. Labels are class
indices in sorted folder-name order (as ``ImageFolderDataset``).
``--reindex FILE.rec`` rebuilds a lost ``.idx`` from its ``.rec``; ``--check PATH``
lists the undecodable images of a .rec or folder (``python -m gluon_nets.data.check``).
An image OpenCV cannot decode is never written: it is skipped and named on stderr
(the loaders would refuse it, see ``images.py``).
"""
import argparse
import os
import sys
from multiprocessing import Pool

import numpy as np

from .folder import IMAGE_EXTS, check_folder, class_mismatch
from ..utils.atomic import write_text_atomic
from .recordio import _HEADER, _MAGIC, DataError

__all__ = ['list_images', 'write_shards', 'reindex']


def read_class_list(path):
    """The class names of a ``<prefix>-classes.txt`` (one per line)."""
    if not os.path.isfile(path):
        raise DataError('class list %s does not exist' % path)
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names or len(set(names)) != len(names):
        raise DataError('class list %s is empty or names a class twice' % path)
    return names


def list_images(root, class_names=None):
    """``(class names, [(relative path, label)])`` of a class-per-subfolder tree, sorted.
    Labels are indices in ``class_names`` (e.g. the training tree's ``-classes.txt``,
    so that a validation tree lacking a class keeps the training labels); default
    the tree's sorted folders. A folder ``class_names`` lacks is a DataError."""
    found = check_folder(root)
    classes = list(class_names) if class_names else found
    problem = class_mismatch(root, found, classes, 'the class list', subset=True)
    if problem:
        raise DataError(problem)
    items = []
    for c in found:
        label = classes.index(c)
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
                 workers=None, class_names=None):
    """Write the shards; returns their .rec paths. Images OpenCV cannot read are left
    out and named on stderr (DataError when none is left). ``class_names``: the label
    list (see :func:`list_images`)."""
    from mxnet import recordio
    root = os.path.expanduser(root)
    classes, items = list_images(root, class_names)
    order = np.random.RandomState(seed).permutation(len(items)) if shuffle else np.arange(len(items))
    shards = max(1, min(int(shards), len(items)))
    names = ([prefix] if shards == 1 else ['%s-%05d' % (prefix, k) for k in range(shards)])
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    write_text_atomic(prefix + '-classes.txt', '\n'.join(classes) + '\n')
    out, skipped = [], []
    with Pool(workers or os.cpu_count() or 1) as pool:
        for name, part in zip(names, np.array_split(order, shards)):
            writer = recordio.MXIndexedRecordIO(name + '.idx.tmp', name + '.rec.tmp', 'w')
            jobs = [(root, items[i][0], resize, quality) for i in part]
            key = 0
            for i, (rel, jpg) in zip(part, pool.imap(_encode, jobs, chunksize=16)):
                if jpg is None:
                    skipped.append(os.path.join(root, rel))
                    print('skipped %s: not a decodable image' % skipped[-1], file=sys.stderr)
                    continue
                header = recordio.IRHeader(0, float(items[i][1]), int(i), 0)
                writer.write_idx(key, recordio.pack(header, jpg))
                key += 1
            writer.close()
            if key == 0:
                for tmp in (name + '.rec.tmp', name + '.idx.tmp'):
                    os.remove(tmp)
                raise DataError('no image of %s decodes (shard %s would be empty)' % (root, name))
            os.replace(name + '.rec.tmp', name + '.rec')
            os.replace(name + '.idx.tmp', name + '.idx')
            out.append(name + '.rec')
    if skipped:
        print('skipped %d of %d images that do not decode' % (len(skipped), len(items)),
              file=sys.stderr)
    return out


def reindex(rec):
    """Rebuild ``rec``'s ``.idx`` by walking its record headers."""
    if not os.path.isfile(rec):
        raise DataError('RecordIO file %s does not exist' % rec)
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
    write_text_atomic(idx, ''.join(lines))
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
    parser.add_argument('--classes', metavar='FILE', default=None,
                        help='label by this class list (the training shards\' '
                             '<prefix>-classes.txt) instead of the tree\'s own folders: '
                             'use it for the validation tree')
    parser.add_argument('--check', metavar='PATH',
                        help='only list the undecodable images of a .rec or folder '
                             '(exit 0 clean, 1 bad records, 2 bad path)')
    args = parser.parse_args(argv)
    if args.check:
        from .check import run
        sys.exit(run([args.check], workers=args.workers or 1))
    try:
        if args.reindex:
            print(reindex(args.reindex))
            return
        if not args.root or not args.prefix:
            parser.error('give ROOT and PREFIX (or --reindex REC)')
        if not 1 <= args.quality <= 100:
            parser.error('--quality must be in 1..100')
        names = read_class_list(args.classes) if args.classes else None
        for path in write_shards(args.root, args.prefix, args.shards, args.resize, args.quality,
                                 not args.no_shuffle, args.seed, args.workers, names):
            print(path)
    except DataError as err:
        sys.exit('error: %s' % err)
    except OSError as err:      # full disk, an output path under a file, no permission
        sys.exit('error: cannot write %s: %s' % (err.filename or args.prefix or args.reindex,
                                                 err.strerror or err))


if __name__ == '__main__':
    main()
