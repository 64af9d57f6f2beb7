"""RecordIO shards: validation with clear errors, and a sharded, seeded loader on
top of MXNet's C++ ``ImageRecordIter`` (the reader GluonCV's ImageNet recipe uses).

Why not ``ImageRecordIter`` alone: it reads one indexed file at a time (several
``.idx`` files are refused), pads the last batch of a shuffled part without
reporting it, and dies deep inside dmlc-core on a truncated file. The loader below
chains shards, trims every part to its exact record count, gives every
distributed worker the same number of batches (``dist_sync`` would hang
otherwise), and checks files up front so that errors name the file and record.
"""
import atexit
import glob
import os
import shutil
import struct
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .images import BadImage, image_problem

__all__ = ['DataError', 'RecordShard', 'resolve_shards', 'scan_record_file', 'RecordLoader',
           'part_range', 'scan_images', 'drop_bad_images', 'bad_images_error']

_MAGIC = 0xced7230a
_HEADER = struct.Struct('<II')          # magic, lrecord (29-bit length + 3-bit cflag)
_IRHEADER = struct.Struct('<IfQQ')      # flag, label, id, id2 (mxnet.recordio.IRHeader)
FULL_SCAN_LIMIT = 300000                # files with more records get a sampled check


class DataError(ValueError):
    """A data file or folder that cannot be used; the message names it."""


class RecordShard:
    """One ``.rec`` file, its ``.idx`` and what the up-front scan found."""

    def __init__(self, rec, idx, num_records, label_max):
        self.rec, self.idx, self.num_records, self.label_max = rec, idx, num_records, label_max

    def __repr__(self):
        return 'RecordShard(%r, %d records)' % (self.rec, self.num_records)


def _split_paths(spec):
    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        items = []
        for s in spec:
            items.extend(_split_paths(s))
        return items
    items = []
    for part in str(spec).replace(';', ',').split(','):
        part = os.path.expanduser(part.strip())
        if not part:
            continue
        if any(ch in part for ch in '*?['):
            matches = sorted(glob.glob(part))
            if not matches:
                raise DataError('no file matches %s' % part)
            items.extend(matches)
        else:
            items.append(part)
    return items


def resolve_shards(rec, idx=None):
    """``rec``: a path, a comma-separated list, a glob or a list of them; ``idx``
    likewise (default: each ``.rec`` with ``.idx``). Returns [(rec, idx), ...]."""
    recs = _split_paths(rec)
    if not recs:
        raise DataError('no RecordIO file given')
    idxs = _split_paths(idx) if idx else [os.path.splitext(r)[0] + '.idx' for r in recs]
    if len(idxs) != len(recs):
        raise DataError('%d .rec files but %d .idx files (%s / %s)' % (len(recs), len(idxs), rec, idx))
    return list(zip(recs, idxs))


def _read_index(idx_path, rec_path):
    if not os.path.isfile(idx_path):
        raise DataError('index file %s (for %s) does not exist; make it with '
                        '`python -m gluon_nets.data.make_rec --reindex %s`' % (idx_path, rec_path, rec_path))
    keys, offsets = [], []
    with open(idx_path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split('\t')
            try:
                if len(fields) != 2:
                    raise ValueError
                keys.append(int(fields[0]))
                offsets.append(int(fields[1]))
            except ValueError:
                raise DataError('index file %s line %d is corrupt: %r (want "key<TAB>offset")'
                                % (idx_path, lineno, line[:60])) from None
    if not offsets:
        raise DataError('index file %s is empty' % idx_path)
    return np.asarray(keys), np.asarray(offsets, dtype=np.int64)


def _read_record_header(f, rec_path, pos, file_size, what):
    """Check the record at byte ``pos``; returns (label, end position)."""
    f.seek(pos)
    head = f.read(_HEADER.size + _IRHEADER.size)
    if len(head) < _HEADER.size:
        raise DataError('%s is truncated: %s at byte %d is cut off (file has %d bytes)'
                        % (rec_path, what, pos, file_size))
    magic, lrec = _HEADER.unpack_from(head)
    if magic != _MAGIC:
        raise DataError('%s is corrupt: %s at byte %d has no RecordIO magic number '
                        '(wrong .idx, or not a .rec file)' % (rec_path, what, pos))
    length, cflag = lrec & ((1 << 29) - 1), lrec >> 29
    if cflag != 0:
        raise DataError('%s: %s is a multi-part record (cflag %d), which image records never use'
                        % (rec_path, what, cflag))
    end = pos + _HEADER.size + length
    if end > file_size:
        raise DataError('%s is truncated: %s at byte %d needs %d bytes, the file ends at %d'
                        % (rec_path, what, pos, length, file_size))
    if length < _IRHEADER.size:
        raise DataError('%s is corrupt: %s has %d bytes, too few for an image record header'
                        % (rec_path, what, length))
    flag, label, _, _ = _IRHEADER.unpack_from(head, _HEADER.size)
    if flag > 0:  # label array follows the header; classification uses its first value
        f.seek(pos + _HEADER.size + _IRHEADER.size)
        label = struct.unpack('<f', f.read(4))[0]
    return label, end + ((4 - length % 4) % 4)


def scan_record_file(rec, idx, num_classes=None, full_scan_limit=FULL_SCAN_LIMIT):
    """Check a ``.rec``/``.idx`` pair and return a :class:`RecordShard`.

    Every record the index names is checked (magic number, length inside the file,
    label in [0, num_classes)) when there are at most ``full_scan_limit`` of them;
    bigger files get the first, last and 1000 evenly spaced records checked (the
    loader still checks every batch's labels). Raises :class:`DataError` naming the
    file and record index.
    """
    if not os.path.isfile(rec):
        raise DataError('RecordIO file %s does not exist' % rec)
    file_size = os.path.getsize(rec)
    if file_size == 0:
        raise DataError('RecordIO file %s is empty' % rec)
    keys, offsets = _read_index(idx, rec)
    if len(offsets) <= full_scan_limit:
        check = np.arange(len(offsets))
    else:
        check = np.unique(np.linspace(0, len(offsets) - 1, 1002).astype(np.int64))
    label_max = -1.0
    with open(rec, 'rb') as f:
        for i in check:
            what = 'record %d (key %d)' % (i, keys[i])
            if offsets[i] < 0 or offsets[i] >= file_size:
                raise DataError('%s is truncated or %s is stale: %s points to byte %d, the file has %d'
                                % (rec, idx, what, offsets[i], file_size))
            label, _ = _read_record_header(f, rec, int(offsets[i]), file_size, what)
            if not np.isfinite(label) or label < 0 or label != int(label):
                raise DataError('%s: %s has label %r, not a class index' % (rec, what, label))
            if num_classes is not None and label >= num_classes:
                raise DataError('%s: %s has label %d >= --num-classes %d'
                                % (rec, what, int(label), num_classes))
            label_max = max(label_max, label)
        # the index must reach the end of the file: a truncated or stale .idx would
        # otherwise make the run silently train on part of the data
        last = int(np.argmax(offsets))
        _, end = _read_record_header(f, rec, int(offsets[last]), file_size,
                                     'record %d (key %d)' % (last, keys[last]))
        if end < file_size:
            raise DataError('%s lists %d records, but %s holds more after byte %d (it has %d '
                            'bytes): the index is truncated or belongs to another file; rebuild '
                            'it with `python -m gluon_nets.data.make_rec --reindex %s`'
                            % (idx, len(offsets), rec, end, file_size, rec))
    return RecordShard(rec, idx, len(offsets), int(label_max))


def _record_image(f, offset):
    """The encoded image bytes of the (already header-checked) record at ``offset``."""
    f.seek(offset)
    head = f.read(_HEADER.size + _IRHEADER.size)
    length = _HEADER.unpack_from(head)[1] & ((1 << 29) - 1)
    flag = _IRHEADER.unpack_from(head, _HEADER.size)[0]
    body = f.read(length - _IRHEADER.size)
    return body[4 * flag:] if flag > 0 else body    # a label array precedes the image


def _scan_range(rec, keys, offsets, begin, end):
    problems = []
    with open(rec, 'rb') as f:
        for i in range(begin, end):
            why = image_problem(_record_image(f, int(offsets[i])))
            if why:
                problems.append(BadImage(rec, why, i, int(keys[i])))
    return problems


_SCANNED = {}   # (file identities) -> [BadImage]: a file is decoded once per process


def _identity(path):
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


def scan_images(rec, idx, workers=1):
    """[BadImage] of the records of ``rec`` (indexed by ``idx``) whose image does not
    decode, in index order. Call :func:`scan_record_file` first (it checks the record
    headers this relies on). Every image is decoded once (``workers`` threads; about
    50 us per 32-px PNG), and the answer is kept for the process while the files are
    unchanged."""
    cache_key = _identity(rec) + _identity(idx)
    if cache_key not in _SCANNED:
        keys, offsets = _read_index(idx, rec)
        bounds = np.linspace(0, len(offsets), max(1, int(workers)) * 4 + 1).astype(int)
        with ThreadPoolExecutor(max(1, int(workers))) as pool:
            parts = pool.map(lambda b: _scan_range(rec, keys, offsets, b[0], b[1]),
                             zip(bounds[:-1], bounds[1:]))
            _SCANNED[cache_key] = [bad for part in parts for bad in part]
    return list(_SCANNED[cache_key])


def bad_images_error(bad, flag='--skip-bad-images', target=None):
    """The :class:`DataError` for undecodable images ``bad`` ([BadImage], non-empty):
    one line naming the first few, how to list them all (``check`` of ``target``, by
    default the files named), and ``flag``."""
    wheres = [target] if target else sorted({b.where for b in bad})
    shown = '; '.join(str(b) for b in bad[:3]) + ('; ...' if len(bad) > 3 else '')
    return DataError('%d undecodable image(s) (%s); list them with `python -m '
                     'gluon_nets.data.check %s`, or pass %s to leave them out'
                     % (len(bad), shown, ' '.join(wheres), flag))


_CLEAN_DIRS = []


def _remove_clean_dirs():
    for path in _CLEAN_DIRS:
        shutil.rmtree(path, ignore_errors=True)


def _clean_copy(shard, bad):
    """A temporary copy of ``shard`` without the records ``bad``: the C++ reader
    cannot be told to skip a record (the .idx only gives where records start, so a
    dropped entry would be read as part of its neighbour)."""
    if not _CLEAN_DIRS:
        atexit.register(_remove_clean_dirs)
    where = tempfile.mkdtemp(prefix='gluon_nets-clean-')
    _CLEAN_DIRS.append(where)
    stem = os.path.join(where, os.path.splitext(os.path.basename(shard.rec))[0])
    dropped = {b.index for b in bad}
    keys, offsets = _read_index(shard.idx, shard.rec)
    size = os.path.getsize(shard.rec)
    lines, kept = [], 0
    try:
        with open(shard.rec, 'rb') as src, open(stem + '.rec', 'wb') as dst:
            for i, offset in enumerate(offsets):
                if i in dropped:
                    continue
                _, end = _read_record_header(src, shard.rec, int(offset), size, 'record %d' % i)
                src.seek(int(offset))
                lines.append('%d\t%d\n' % (keys[i], dst.tell()))
                dst.write(src.read(min(end, size) - int(offset)))
                kept += 1
        with open(stem + '.idx', 'w') as f:
            f.writelines(lines)
    except OSError as err:
        raise DataError('cannot write a copy of %s without its %d undecodable image(s) in %s: %s'
                        % (shard.rec, len(bad), where, err.strerror or err)) from None
    return RecordShard(stem + '.rec', stem + '.idx', kept, shard.label_max)


def drop_bad_images(shards, skip=False, workers=1):
    """``(shards, skipped)``: the shards with every image decodable, and the [BadImage]
    left out. With undecodable images and ``skip`` False: :class:`DataError`
    (:func:`bad_images_error`). Skipping reads a temporary copy of each affected shard
    (removed at exit), so it needs that much free space in the temp folder."""
    found = {id(s): scan_images(s.rec, s.idx, workers) for s in shards}
    skipped = [b for s in shards for b in found[id(s)]]
    if not skipped:
        return list(shards), []
    if not skip:
        raise bad_images_error(skipped)
    out = []
    for s in shards:
        bad = found[id(s)]
        if bad and len(bad) == s.num_records:
            raise DataError('%s: none of its %d images decodes' % (s.rec, s.num_records))
        out.append(_clean_copy(s, bad) if bad else s)
    return out, skipped


def part_range(num_records, num_parts, part_index):
    """Records [begin, end) that MXNet's indexed splitter gives part ``part_index``."""
    step = (num_records + num_parts - 1) // num_parts
    begin = min(step * part_index, num_records)
    return begin, min(step * (part_index + 1), num_records)


class RecordLoader:
    """Batches of (data (N,3,H,W) float32 normalised, label (N,) float32) NDArrays
    from one or more RecordIO shards.

    Each shard is read by an ``mx.io.ImageRecordIter``; with ``num_parts > 1`` this
    worker reads part ``part_index`` of every shard (disjoint across workers).
    Training: shard order and record order are shuffled from ``seed`` and the epoch
    set by :meth:`set_epoch`; batches span shard boundaries; the last partial batch
    is dropped and every part yields ``len(self)`` batches (the smallest part's
    count), so that synchronous workers stay in step. Validation: every record
    exactly once, in file order, the last batch partial.
    """

    def __init__(self, shards, batch_size, input_size, train, mean, std, num_workers=4,
                 num_parts=1, part_index=0, seed=0, crop_ratio=0.875, min_random_area=0.08,
                 jitter=0.4, lighting=0.1, num_classes=None, flip=True):
        if not shards:
            raise DataError('no RecordIO shards')
        if not 0 <= part_index < num_parts:
            raise DataError('part_index %d not in [0, %d)' % (part_index, num_parts))
        self.shards, self.batch_size, self.input_size = list(shards), int(batch_size), int(input_size)
        self.train, self.num_parts, self.part_index = bool(train), int(num_parts), int(part_index)
        self.seed, self.epoch, self.num_classes = int(seed), 0, num_classes
        self.mean = [255.0 * m for m in mean]
        self.std = [255.0 * s for s in std]
        self.threads = max(1, int(num_workers))
        self.crop_ratio, self.min_random_area = crop_ratio, min_random_area
        self.jitter, self.lighting, self.flip = jitter, lighting, bool(flip)
        self._part_sizes = [[int(np.subtract(*part_range(s.num_records, num_parts, r)[::-1]))
                             for s in self.shards] for r in range(num_parts)]
        self.num_samples = sum(self._part_sizes[part_index])
        if self.train:
            fewest = min(sum(sizes) for sizes in self._part_sizes)
            self._batches = fewest // self.batch_size
            if self._batches == 0:
                raise DataError('%d training records per worker, fewer than one batch of %d (%s)'
                                % (fewest, self.batch_size, ', '.join(s.rec for s in self.shards)))
        else:
            self._batches = -(-self.num_samples // self.batch_size)

    def __len__(self):
        return self._batches

    def set_epoch(self, epoch):
        """Shuffle and augmentation of the next pass derive from (seed, epoch)."""
        self.epoch = int(epoch)

    def _iter_args(self, shard, shard_seed):
        import math
        common = dict(path_imgrec=shard.rec, path_imgidx=shard.idx, batch_size=self.batch_size,
                      data_shape=(3, self.input_size, self.input_size),
                      preprocess_threads=self.threads, num_parts=self.num_parts,
                      part_index=self.part_index, round_batch=False, verbose=False,
                      mean_r=self.mean[0], mean_g=self.mean[1], mean_b=self.mean[2],
                      std_r=self.std[0], std_g=self.std[1], std_b=self.std[2])
        if self.train:
            common.update(shuffle=True, seed=shard_seed, seed_aug=shard_seed, rand_mirror=self.flip,
                          random_resized_crop=True, max_aspect_ratio=4. / 3.,
                          min_aspect_ratio=3. / 4., max_random_area=1.0,
                          min_random_area=self.min_random_area, brightness=self.jitter,
                          contrast=self.jitter, saturation=self.jitter, pca_noise=self.lighting)
        else:
            common.update(shuffle=False, resize=int(math.ceil(self.input_size / self.crop_ratio)))
        return common

    def _shard_batches(self, order, rng):
        """(data, label, shard) chunks of each shard's part, trimmed to its true size."""
        import mxnet as mx
        for k in order:
            shard, size = self.shards[k], self._part_sizes[self.part_index][k]
            if size == 0:
                continue
            try:
                it = mx.io.ImageRecordIter(**self._iter_args(shard, int(rng.randint(1 << 30))))
                left = size
                for batch in it:
                    n = min(batch.data[0].shape[0] - batch.pad, left)
                    if n <= 0:
                        break
                    # the iterator's buffers live in cpu_pinned(0), which a CachedOp on
                    # cpu(0) refuses; this is the one copy a trainer would make anyway
                    data = batch.data[0].as_in_context(mx.cpu())
                    label = batch.label[0].as_in_context(mx.cpu())
                    if n < data.shape[0]:
                        data, label = data[:n], label[:n]
                    left -= n
                    yield data, label, shard
                    if left == 0:
                        break
            except mx.base.MXNetError as err:
                raise DataError('cannot read %s: %s' % (shard.rec, str(err).strip().splitlines()[-1]))
            del it

    def _check_labels(self, label, shard):
        if self.num_classes is None:
            return
        top = float(label.max().asscalar()) if label.size else -1
        if top >= self.num_classes:
            raise DataError('%s: a record has label %d >= --num-classes %d'
                            % (shard.rec, int(top), self.num_classes))

    def __iter__(self):
        import mxnet as mx
        rng = np.random.RandomState((self.seed * 100003 + self.epoch) % (1 << 31))
        order = rng.permutation(len(self.shards)) if self.train else range(len(self.shards))
        if not self.train:
            for data, label, shard in self._shard_batches(order, rng):
                self._check_labels(label, shard)
                yield data, label
            return
        emitted, pend_d, pend_l, pend_n = 0, [], [], 0
        for data, label, shard in self._shard_batches(order, rng):
            self._check_labels(label, shard)
            if not pend_n and data.shape[0] == self.batch_size:
                emitted += 1
                yield data, label
            else:  # a shard boundary: join the pieces into full batches
                pend_d.append(data)
                pend_l.append(label)
                pend_n += data.shape[0]
                while pend_n >= self.batch_size:
                    d = mx.nd.concat(*pend_d, dim=0) if len(pend_d) > 1 else pend_d[0]
                    lab = mx.nd.concat(*pend_l, dim=0) if len(pend_l) > 1 else pend_l[0]
                    emitted += 1
                    yield d[:self.batch_size], lab[:self.batch_size]
                    pend_n -= self.batch_size
                    pend_d, pend_l = ([d[self.batch_size:]], [lab[self.batch_size:]]) if pend_n else ([], [])
                    if emitted == self._batches:
                        return
            if emitted == self._batches:
                return
