"""List the images a loader would refuse: ``python -m gluon_nets.data.check PATH ...``

    python -m gluon_nets.data.check ~/data/rec/val.rec          # a .rec (its .idx beside it)
    python -m gluon_nets.data.check '~/data/rec/train-*.rec'    # shards (comma list or glob)
    python -m gluon_nets.data.check ~/data/images               # every image under a folder

Prints one line per bad record (file, record index and key) or image file, then a
summary. Exit status: 0 clean, 1 bad records found, 2 a path that is neither a
RecordIO file nor a folder (or a bad flag). The same scan runs when a loader opens
the data (``train_imagenet.py``, ``eval.py``), and ``make_rec --check PATH`` runs it.
"""
import argparse
import os
import sys

from .folder import IMAGE_EXTS
from .images import BadImage, scan_files
from .recordio import DataError, resolve_shards, scan_images, scan_record_file

__all__ = ['check_path', 'main']


def _folder_images(root):
    paths = []
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        paths.extend(os.path.join(dirpath, f) for f in sorted(files)
                     if f.lower().endswith(IMAGE_EXTS))
    return paths


def check_path(path, idx=None, workers=1):
    """``(images checked, [BadImage])`` for a .rec (list or glob of shards; ``idx`` as
    ``resolve_shards``) or an image folder (every image file under it). A record
    file whose structure is broken (truncated, no magic number, stale index) is one
    BadImage naming the problem. DataError for a path that is neither."""
    expanded = os.path.expanduser(path)
    if os.path.isdir(expanded):
        images = _folder_images(expanded)
        if not images:
            raise DataError('folder %s holds no images (%s)' % (path, '/'.join(IMAGE_EXTS)))
        return len(images), scan_files(images, workers)
    pairs = resolve_shards(path, idx)
    for rec, _ in pairs:
        if not os.path.isfile(rec):
            raise DataError('%s is neither a RecordIO file nor an image folder' % rec)
    total, bad = 0, []
    for rec, rec_idx in pairs:
        try:
            shard = scan_record_file(rec, rec_idx)
        except DataError as err:       # the structure itself: no record can be trusted
            bad.append(BadImage(rec, str(err)))
            continue
        total += shard.num_records
        bad.extend(scan_images(rec, rec_idx, workers))
    return total, bad


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m gluon_nets.data.check',
        description='List undecodable images in RecordIO files or image folders '
                    '(exit 0 clean, 1 bad records, 2 bad path).')
    parser.add_argument('paths', nargs='+', metavar='PATH',
                        help='a .rec (comma list or glob of shards) or an image folder')
    parser.add_argument('--idx', default=None, help='the .idx of a single PATH (default: beside it)')
    parser.add_argument('--workers', type=int, default=1, help='decoding threads (default 1)')
    args = parser.parse_args(argv)
    if args.idx and len(args.paths) > 1:
        parser.error('--idx needs a single PATH')
    if args.workers < 1:
        parser.error('--workers must be >= 1')
    return run(args.paths, args.idx, args.workers)


def run(paths, idx=None, workers=1):
    """Check ``paths``, print the findings; returns the exit status."""
    status = 0
    for path in paths:
        try:
            total, bad = check_path(path, idx, workers)
        except DataError as err:
            print('error: %s' % err, file=sys.stderr)
            return 2
        for item in bad:
            print(item)
        broken = [b for b in bad if b.index is None and str(b.where).endswith('.rec')]
        undecodable = len(bad) - len(broken)
        if broken:   # a file whose structure (or index) is broken: its images were not read
            print('%s: %d RecordIO file(s) unreadable, %d of %d images in the others '
                  'undecodable' % (path, len(broken), undecodable, total))
        else:
            print('%s: %d of %d images undecodable' % (path, undecodable, total) if bad else
                  '%s: all %d images decode' % (path, total))
        status = max(status, 1 if bad else 0)
    return status


if __name__ == '__main__':
    sys.exit(main())
