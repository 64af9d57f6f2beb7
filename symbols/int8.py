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

__all__ = ['save', 'EXCLUDED_OPS', 'CALIB_MODES', 'DEFAULT_CALIB_MODE', 'DEFAULT_EXCLUDE',
           'PERCENTILE', 'quantizable_layers', 'resolve_excluded']

# Kept float32: oneDNN's quantized multiply takes int8 only, but 'auto' makes post-ReLU
# tensors uint8 (SE / attention gates fail); a quantized FullyConnected classifier leaves
# its output in a oneDNN layout that MXNet 1.9.1 cannot read back (asnumpy fails) and
# is a negligible share of a CNN's work.
EXCLUDED_OPS = ('elemwise_mul', 'broadcast_mul', 'FullyConnected') + INLINED_SUBGRAPHS

# 'naive': min/max of each layer's outputs; 'percentile': the PERCENTILE-th percentile
# (our collector, see _PercentileCollector); 'entropy': MXNet's KL-divergence thresholds.
CALIB_MODES = ('naive', 'percentile', 'entropy')
DEFAULT_CALIB_MODE = 'naive'
PERCENTILE = 99.99
# Layers kept float32 by default, besides EXCLUDED_OPS: the first two convolutions (the
# stem and the next one; MXNet's own quantization examples keep the first conv float
# too). Measured on the README's trained mobilenet_0.5x (2,000 val images, top-1 vs
# float32): everything quantized 98.95% (21 differ), first conv kept 98.85%, first two
# kept 99.25-99.40% for 256-1024 calibration images (no single layer kept float helps:
# the error builds up from the first layers); percentile calibration 98.7-99.25%
# (noise). The cost: 0-11% of int8's speed on the 224-px headline models (still 3.1-4.8x
# hybridized fp32), 9-23% on that 64-px net (2.4x / 2.1x hybridized at batch 1 / 16,
# against 2.6x / 2.7x). docs/deploy.md "INT8". ``exclude_layers=[]`` (CLI
# ``--int8-exclude none``) quantizes every convolution: the faster, less exact choice.
DEFAULT_EXCLUDE = ('first-convs=2',)
# names ``exclude_layers`` understands besides node names
EXCLUDE_ALIASES = ('first-conv', 'last-conv', 'first-convs=N', 'grouped-convs')


def save(tmp, stem, plain, x, ref, checks, calib_data, num_calib_examples=256,
         calib_mode=DEFAULT_CALIB_MODE, quantize_mode='smart', quantize_granularity='channel-wise',
         quantized_dtype='auto', exclude_layers=None):
    """Quantize the plain export at ``plain`` on up to ``num_calib_examples`` images of
    ``calib_data`` ((N, C, S, S) arrays, or (data, label) pairs), check it on the check
    input ``x`` and keep it as ``<stem>``; returns its files. ``calib_mode`` (one of
    :data:`CALIB_MODES`), ``quantize_mode``, ``quantize_granularity`` and
    ``quantized_dtype`` ('auto', 'int8', 'uint8') go to ``quantize_net_v2``;
    ``exclude_layers`` (None: :data:`DEFAULT_EXCLUDE`) are kept float32: see
    :func:`resolve_excluded` (``'first-conv'``, ``'first-convs=N'``, ``'last-conv'``,
    ``'grouped-convs'``, or node names of the plain graph)."""
    import logging
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net_v2
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        raise ExportError('int8 export needs an MXNet build with oneDNN (MKLDNN)')
    if calib_mode not in CALIB_MODES:
        raise ValueError('calib_mode must be one of %s, got %r' % (', '.join(CALIB_MODES), calib_mode))
    if quantized_dtype not in ('auto', 'int8', 'uint8'):
        raise ValueError("quantized_dtype must be 'auto', 'int8' or 'uint8', got %r"
                         % (quantized_dtype,))
    requested = list(DEFAULT_EXCLUDE if exclude_layers is None else exclude_layers)
    excluded = resolve_excluded(plain + '-symbol.json', requested)
    x = mx.nd.array(x)
    images = _calibration_array(calib_data, num_calib_examples, x.shape[1:])
    batch = min(32, len(images))
    calib_iter = mx.io.NDArrayIter(data={INPUT_NAME: images}, batch_size=batch,
                                   last_batch_handle='discard')
    block = load(plain, epoch=0)
    logger = logging.getLogger('symbols.int8')
    collector = {'naive': _MinMaxCollector,
                 'percentile': lambda: _PercentileCollector(PERCENTILE)}.get(calib_mode)
    collector = collector() if collector else None
    with warnings.catch_warnings(), _CapturedStderr() as log:
        warnings.simplefilter('ignore')  # quantize_net's own deprecation notices
        try:
            qnet = quantize_net_v2(block, quantized_dtype=quantized_dtype,
                                   quantize_mode=quantize_mode,
                                   quantize_granularity=quantize_granularity,
                                   exclude_layers=sorted({n for names in excluded.values()
                                                          for n in names}),
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
    checks['int8_excluded_layers'] = excluded
    if calib_mode == 'percentile':
        checks['calib_percentile'] = PERCENTILE
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
                  quantized_dtype=quantized_dtype,
                  quantize_mode=quantize_mode, quantize_granularity=quantize_granularity,
                  quantized_ops=op_counts(quantized + '-symbol.json', prefix='_'))
    return keep_pair(quantized, tmp, stem)


def quantizable_layers(symbol_file):
    """[(name, op, [the plain-graph nodes it holds])] of the nodes MXNet's quantization
    pass sees in the plain graph at ``symbol_file``, in graph order: its oneDNN pass
    (``MKLDNN_QUANTIZE``) first fuses each convolution with its bias / activation / sum
    into one ``sg_mkldnn_conv_*`` node, and exclusion goes by the names of those nodes.
    Each inner node is a dict (``name``, ``op``, ``attrs``)."""
    import json
    import mxnet as mx
    graph = json.loads(mx.sym.load(symbol_file).get_backend_symbol('MKLDNN_QUANTIZE').tojson())
    layers = []
    for node in graph['nodes']:
        if node['op'] == 'null':
            continue
        inner = [n for sub in node.get('subgraphs', []) for n in sub['nodes'] if n['op'] != 'null']
        layers.append((node['name'], node['op'], inner or [node]))
    return layers


def _is_depthwise(inner):
    return any(n['op'] == 'Convolution' and int(n.get('attrs', {}).get('num_group', 1)) > 1
               for n in inner)


def resolve_excluded(symbol_file, requested):
    """{requested name: [the quantization pass's node names]} for ``requested`` layers of
    the plain graph at ``symbol_file``: ``'first-conv'``, ``'last-conv'``,
    ``'first-convs=N'`` (the first N convolutions in graph order), ``'grouped-convs'``
    (every grouped / depthwise convolution), or plain-graph node names (a convolution's
    name stands for the fused node holding it); ValueError naming an unknown one."""
    if not requested:
        return {}
    layers = quantizable_layers(symbol_file)
    convs = [(name, inner) for name, op, inner in layers
             if any(n['op'] == 'Convolution' for n in inner)]
    resolved = {}
    for want in requested:
        if want in ('first-conv', 'last-conv') or want.startswith('first-convs='):
            if not convs:
                raise ValueError('exclude layer %s: the graph has no convolution' % want)
            if want == 'first-conv':
                count = 1
            elif want == 'last-conv':
                resolved[want] = [convs[-1][0]]
                continue
            else:
                try:
                    count = int(want.split('=', 1)[1])
                except ValueError:
                    count = 0
                if count < 1:
                    raise ValueError('exclude layer %r: first-convs=N needs an integer N >= 1'
                                     % want)
            resolved[want] = [name for name, _ in convs[:count]]
            continue
        if want == 'grouped-convs':
            resolved[want] = [name for name, inner in convs if _is_depthwise(inner)]
            continue
        hits = [name for name, _, inner in layers
                if want == name or want in [n['name'] for n in inner]]
        if not hits:
            raise ValueError('exclude layer %r is not a node of the graph (give %s, or a node '
                             'name of the exported -symbol.json)'
                             % (want, ', '.join(EXCLUDE_ALIASES)))
        resolved[want] = hits[:1]
    return resolved


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

    def _read(self, name, arr):
        """(name, float numpy value) of a monitored output, or (name, None) when it is
        empty, not float, or a oneDNN-layout tensor the monitor cannot read (that layer
        is then not calibrated: it computes its range at run time)."""
        import ctypes
        import mxnet as mx
        from mxnet.base import NDArrayHandle, py_str
        name = py_str(name)
        value = mx.nd.NDArray(ctypes.cast(arr, NDArrayHandle), writable=False)
        try:
            value = value.copyto(mx.cpu()).asnumpy()
        except mx.base.MXNetError:
            self.unreadable.add(name)
            return name, None
        if value.size == 0 or value.dtype.kind != 'f':
            return name, None
        return name, value

    def collect(self, name, arr):
        name, value = self._read(name, arr)
        if value is None:
            return
        low, high = float(value.min()), float(value.max())
        if name in self.min_max_dict:
            old_low, old_high = self.min_max_dict[name]
            low, high = min(low, old_low), max(high, old_high)
        self.min_max_dict[name] = (low, high)


class _PercentileCollector(_MinMaxCollector):
    """Thresholds at the ``percentile``-th percentile of every layer's outputs over the
    calibration images (and at the (100 - percentile)-th below zero), instead of their
    min/max ('naive'): a handful of extreme activations then no longer stretches the
    int8 grid of a whole layer. Exact: keeps each layer's most extreme values (as many
    as the percentile needs, up to ``cap``); a layer with more values beyond the
    percentile than ``cap`` gets the ``cap``-th most extreme one (a wider range)."""

    def __init__(self, percentile=99.99, cap=200000):
        super().__init__()
        self.percentile = float(percentile)
        self.cap = int(cap)
        self._high, self._low, self._count = {}, {}, {}

    def collect(self, name, arr):
        name, value = self._read(name, arr)
        if value is None:
            return
        flat = value.ravel()
        self._count[name] = self._count.get(name, 0) + flat.size
        self._high[name] = _extreme(np.concatenate([self._high.get(name, flat[:0]), flat]),
                                    self.cap, largest=True)
        self._low[name] = _extreme(np.concatenate([self._low.get(name, flat[:0]), flat]),
                                   self.cap, largest=False)

    @property
    def min_max_dict(self):
        out = {}
        for name, count in self._count.items():
            beyond = int(count * (100.0 - self.percentile) / 100.0)
            high, low = self._high[name], self._low[name]     # sorted, most extreme first
            hi = float(high[min(beyond, len(high) - 1)])
            lo = float(low[min(beyond, len(low) - 1)])
            out[name] = (lo, hi)
        return out

    @min_max_dict.setter
    def min_max_dict(self, value):   # the base class assigns {} in __init__
        pass


def _extreme(values, cap, largest):
    """The ``cap`` largest (or smallest) of ``values``, most extreme first."""
    if len(values) > cap:
        values = np.partition(values, len(values) - cap)[len(values) - cap:] if largest \
            else np.partition(values, cap - 1)[:cap]
    return np.sort(values)[::-1] if largest else np.sort(values)


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
