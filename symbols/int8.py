"""Format ``int8``: post-training quantization with MXNet's own tooling
(``mx.contrib.quantization.quantize_net_v2``, oneDNN backend), calibrated on images
normalised like the training data, saved like ``symbol``.

Check: the saved graph reproduces the quantized block; its top-1 agreement with float32
and max relative error on the calibration images are recorded (accuracy on held-out
data is the evaluator's job).
"""
import os
import sys
import tempfile
import warnings

import numpy as np

from .checks import ExportError, error_line, relative_error
from .loaders import INLINED_SUBGRAPHS, INPUT_NAME, load
from .rewrites import op_counts
from .symbol import keep_pair, save_onednn_graph

__all__ = ['save', 'EXCLUDED_OPS']

# Kept float32: oneDNN's quantized multiply takes int8 only, but 'auto' makes post-ReLU
# tensors uint8 (SE / attention gates fail); a quantized FullyConnected classifier leaves
# its output in a oneDNN layout that MXNet 1.9.1 cannot read back (asnumpy fails) and
# is a negligible share of a CNN's work.
EXCLUDED_OPS = ('elemwise_mul', 'broadcast_mul', 'FullyConnected') + INLINED_SUBGRAPHS


def save(tmp, stem, plain, x, ref, checks, calib_data, num_calib_examples=256,
         calib_mode='naive', quantize_mode='smart', quantize_granularity='channel-wise'):
    """Quantize the plain export at ``plain`` on up to ``num_calib_examples`` images of
    ``calib_data`` ((N, C, S, S) arrays, or (data, label) pairs), check it on the check
    input ``x`` and keep it as ``<stem>``; returns its files. ``calib_mode``,
    ``quantize_mode``, ``quantize_granularity`` go to ``quantize_net_v2``."""
    import logging
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net_v2
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        raise ExportError('int8 export needs an MXNet build with oneDNN (MKLDNN)')
    x = mx.nd.array(x)
    images = _calibration_array(calib_data, num_calib_examples, x.shape[1:])
    batch = min(32, len(images))
    calib_iter = mx.io.NDArrayIter(data={INPUT_NAME: images}, batch_size=batch,
                                   last_batch_handle='discard')
    block = load(plain, epoch=0)
    logger = logging.getLogger('symbols.int8')
    with warnings.catch_warnings(), _CapturedStderr() as log:
        warnings.simplefilter('ignore')  # quantize_net's own deprecation notices
        try:
            collector = _MinMaxCollector() if calib_mode == 'naive' else None
            qnet = quantize_net_v2(block, quantized_dtype='auto', quantize_mode=quantize_mode,
                                   quantize_granularity=quantize_granularity,
                                   exclude_operators=list(EXCLUDED_OPS),
                                   calib_data=calib_iter, data_shapes=calib_iter.provide_data,
                                   calib_mode='customize' if collector else calib_mode,
                                   LayerOutputCollector=collector,
                                   num_calib_examples=batch * (len(images) // batch),
                                   ctx=mx.cpu(), logger=logger)
            qnet.hybridize()     # in memory it still holds a fused FC (see INLINED_SUBGRAPHS)
            quant_out = qnet(x).asnumpy()
        except Exception as err:
            raise ExportError('MXNet quantization failed: %s\n(MXNet log: %s)'
                              % (error_line(err), log.tail())) from None
    if collector is not None and collector.unreadable:
        checks['uncalibrated_layers'] = sorted(collector.unreadable)
    quantized = os.path.join(tmp, '.int8')
    int8, reloaded = save_onednn_graph(qnet, quantized, x)
    if not relative_error(reloaded, quant_out) < 1e-5:
        raise ExportError('the saved int8 graph does not reproduce the quantized block')
    # How close int8 stays on the calibration images themselves (a cheap sanity figure)
    fp32 = load(plain, epoch=0)
    agree, total, worst = 0, 0, 0.0
    for start in range(0, len(images) - batch + 1, batch):
        chunk = mx.nd.array(images[start:start + batch])
        want, got = fp32(chunk).asnumpy(), int8(chunk).asnumpy()
        agree += int((want.argmax(1) == got.argmax(1)).sum())
        worst = max(worst, relative_error(got, want))
        total += batch
    checks.update(int8_max_rel_err_on_calibration=worst,
                  int8_top1_agreement_on_calibration=agree / max(total, 1),
                  calibration_examples=total, calib_mode=calib_mode,
                  quantize_mode=quantize_mode, quantize_granularity=quantize_granularity,
                  quantized_ops=op_counts(quantized + '-symbol.json', prefix='_'))
    return keep_pair(quantized, tmp, stem)


class _MinMaxCollector:
    """Min/max of every layer output over the calibration images ('naive' calibration).

    MXNet 1.9.1's own min/max collector reads the monitored arrays in place, which
    fails for arrays in a oneDNN layout ("can't generate TBlob for MKLDNN data"); the
    error is swallowed by the ctypes callback, so those layers silently go
    uncalibrated. Copying to a default-layout array first (as MXNet's entropy
    collector does) calibrates every layer."""

    def __init__(self):
        self.min_max_dict = {}
        self.include_layer = None
        self.unreadable = set()

    def collect(self, name, arr):
        import ctypes
        import mxnet as mx
        from mxnet.base import NDArrayHandle, py_str
        name = py_str(name)
        value = mx.nd.NDArray(ctypes.cast(arr, NDArrayHandle), writable=False)
        try:
            value = value.copyto(mx.cpu()).asnumpy()
        except mx.base.MXNetError:
            # a oneDNN-layout tensor the monitor cannot read: that layer is not
            # calibrated (it computes its range at run time)
            self.unreadable.add(name)
            return
        if value.size == 0 or value.dtype.kind != 'f':
            return
        low, high = float(value.min()), float(value.max())
        if name in self.min_max_dict:
            old_low, old_high = self.min_max_dict[name]
            low, high = min(low, old_low), max(high, old_high)
        self.min_max_dict[name] = (low, high)


class _CapturedStderr:
    """Send file descriptor 2 to a temporary file while MXNet's quantization pass
    logs every node at INFO level from C++ (it cannot be turned off); ``tail()``
    gives the end of it for error messages."""

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode='w+b')
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        return False

    def tail(self, lines=5):
        self._file.seek(0)
        text = self._file.read().decode('utf-8', 'replace').strip().splitlines()
        return ' | '.join(text[-lines:]) if text else 'empty'


def _calibration_array(calib_data, limit, image_shape):
    """Up to ``limit`` images from ``calib_data`` as one float32 array."""
    chunks, count = [], 0
    source = [calib_data] if isinstance(calib_data, np.ndarray) or hasattr(calib_data, 'asnumpy') \
        else calib_data
    for item in source:
        if isinstance(item, (list, tuple)):
            item = item[0]
        arr = item.asnumpy() if hasattr(item, 'asnumpy') else np.asarray(item)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(image_shape):
            raise ValueError('calibration images must be (N, %s) like the export input, got %s'
                             % (', '.join(map(str, image_shape)), tuple(arr.shape)))
        chunks.append(arr.astype(np.float32))
        count += len(arr)
        if count >= limit:
            break
    if not chunks:
        raise ValueError('the calibration data yielded no images')
    return np.concatenate(chunks)[:limit]
