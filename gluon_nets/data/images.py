"""Is an image decodable? The one check the loaders, ``make_rec`` and
``python -m gluon_nets.data.check`` run before MXNet sees an image.

Why before: MXNet's C++ ``ImageRecordIter`` does not survive an undecodable record
(garbage bytes behind a valid record header): OpenCV hands it an empty image and
its resize divides by the zero width, killing the process with SIGFPE (exit 136, no
message), in validation after a whole training epoch. A signal cannot be caught in
Python, so undecodable images must never reach it: every image is decoded once, up
front, with the Python OpenCV (the same decoder family; ``cv2.imdecode`` returns
None exactly where MXNet's ``imdecode`` fails its "Decoding failed" check).
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ['BadImage', 'image_problem', 'file_problem', 'scan_files']

_JPEG_START = b'\xff\xd8'


class BadImage:
    """One undecodable image: ``where`` (the .rec file or the image path), ``index``
    (record index in the .rec's index order, None for a file), ``key`` (its .idx key)
    and ``reason``."""

    def __init__(self, where, reason, index=None, key=None):
        self.where, self.reason, self.index, self.key = where, reason, index, key

    def __str__(self):
        if self.index is None:
            return '%s: %s' % (self.where, self.reason)
        return '%s record %d (key %d): %s' % (self.where, self.index, self.key, self.reason)

    __repr__ = __str__


def image_problem(buf):
    """None when the encoded image ``buf`` (bytes) decodes, else a short reason.

    JPEGs are decoded at 1/4 scale: libjpeg still entropy-decodes every coefficient
    (so it fails where a full decode fails) but skips most of the inverse DCT."""
    import cv2
    if len(buf) == 0:
        return 'empty (0 bytes)'
    flag = cv2.IMREAD_REDUCED_COLOR_4 if bytes(buf[:2]) == _JPEG_START else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(buf, np.uint8), flag)
    except cv2.error as err:
        return 'OpenCV cannot decode it (%s)' % str(err).strip().splitlines()[-1]
    if image is None or image.size == 0:
        return 'not a decodable image (%d bytes, starting %s)' % (len(buf), bytes(buf[:4]).hex())
    return None


def file_problem(path):
    """None when the image file at ``path`` decodes, else a short reason."""
    try:
        with open(path, 'rb') as f:
            buf = f.read()
    except OSError as err:
        return 'cannot read it (%s)' % (err.strerror or err)
    return image_problem(buf)


def scan_files(paths, workers=1):
    """[BadImage] of the image files in ``paths`` that do not decode (in order).
    ``workers`` threads decode in parallel (OpenCV releases the GIL)."""
    paths = list(paths)
    with ThreadPoolExecutor(max(1, int(workers))) as pool:
        problems = list(pool.map(file_problem, paths, chunksize=64))
    return [BadImage(os.fspath(p), why) for p, why in zip(paths, problems) if why]
