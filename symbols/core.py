"""Export a HybridBlock for deployment and load the result without gluon_nets.

Four artefacts, each written with a small deployer JSON (``<stem>-deploy.json``, or
``<stem>.onnx.json`` beside an ONNX file) that says what a server needs to feed it:

========  ==========================================  ==================================
format    files                                       check made before anything is kept
========  ==========================================  ==================================
symbol    ``<stem>-symbol.json`` + ``-0000.params``    reloaded graph == net, bit for bit
fused     same, oneDNN-partitioned (BN folded,         within 1e-5 relative of ``symbol``
          conv+act+add fused)
onnx      ``<stem>.onnx`` (opset 13)                   ``onnx.checker`` + onnxruntime within
                                                      1e-4 relative of MXNet
int8      same as symbol, quantized graph              top-1 agreement with float32 recorded
========  ==========================================  ==================================

Everything is written to a temporary folder inside the output folder and renamed into
place only when every check passed, so an error never leaves a half-written or
unchecked artefact behind.

This module imports neither gluon_nets nor gluoncv: :func:`load` and
:func:`load_onnx` work where only mxnet (or onnxruntime) is installed.
"""
import datetime
import glob
import json
import os
import re
import shutil
import tempfile
import warnings

import numpy as np

__all__ = ['export', 'load', 'load_onnx', 'read_deploy_info', 'ExportError',
           'FORMATS', 'IMAGENET_MEAN', 'IMAGENET_STD', 'relative_error', 'check_input']

FORMATS = ('symbol', 'fused', 'onnx', 'int8')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ONNX_OPSET = 13
FUSED_TOLERANCE = 1e-5     # max |fused - plain| / max |plain|
ONNX_TOLERANCE = 1e-4      # max |onnxruntime - mxnet| / max |mxnet|
INPUT_NAME = 'data'


class ExportError(RuntimeError):
    """A model cannot be exported in the asked format (the message names why: the
    operator the exporter lacks, or the check the artefact failed)."""


def relative_error(ours, ref):
    """max |ours - ref| / max |ref| (the zoo's tolerance measure)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-12))


def check_input(batch, input_size, in_channels=3, seed=0):
    """The deterministic (batch, C, S, S) float32 input the export checks run on
    (uniform in [-2, 2], about the range of mean/std-normalised pixels)."""
    rng = np.random.RandomState(seed)
    return rng.uniform(-2.0, 2.0, (batch, in_channels, input_size, input_size)).astype(np.float32)


# ----------------------------------------------------------------------------- export

def export(net, out_dir, name, format='symbol', input_size=224, batch=1, in_channels=3,
           mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_ratio=0.875, classes=None,
           model=None, model_kwargs=None, weights=None, class_names=None,
           calib_data=None, num_calib_examples=256, calib_mode='naive',
           quantize_mode='smart', quantize_granularity='channel-wise', stem=None):
    """Export an initialised HybridBlock as a deployable artefact.

    Parameters
    ----------
    net : HybridBlock
        Maps (N, in_channels, input_size, input_size) float32 images to (N, classes) logits.
    out_dir : str
        Created if missing. Files: see the module docstring.
    name : str
        Used for the file stem (default stem: ``name``, ``name-fused``, ``name``
        (ONNX: ``name.onnx``), ``name-int8``).
    format : 'symbol' | 'fused' | 'onnx' | 'int8'
    input_size, batch : int
        Shape of the check input and of the ``input_shape`` recorded for deployers.
        Symbol graphs accept other batch sizes; ONNX is written with a dynamic batch axis.
    mean, std, crop_ratio, classes, class_names, model, model_kwargs, weights
        Recorded in the deployer JSON (``weights`` says where the weights came from).
    calib_data : iterable of (N, C, H, W) arrays, or (data, label) pairs
        int8 only: images (normalised like the training data) whose activation ranges
        calibrate the quantized graph; ``num_calib_examples`` of them are used.
    calib_mode, quantize_mode, quantize_granularity
        int8 only: passed to ``mx.contrib.quantization.quantize_net_v2``.

    Returns
    -------
    dict: the deployer information that was written, with ``files`` (absolute paths,
    the deployer JSON included) and ``checks`` (the numbers measured).

    Raises
    ------
    ExportError naming the operator or the failed check; ValueError for bad arguments.
    """
    import mxnet as mx
    if format not in FORMATS:
        raise ValueError('unknown export format %r (one of %s)' % (format, ', '.join(FORMATS)))
    if not re.match(r'^[A-Za-z0-9_.+-]+$', str(name)):
        raise ValueError('export name %r may only hold letters, digits and _.+-' % (name,))
    for label, value in (('input_size', input_size), ('batch', batch), ('in_channels', in_channels)):
        if int(value) < 1:
            raise ValueError('%s must be >= 1, got %r' % (label, value))
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError('mean and std need %d values each, got %r and %r'
                         % (in_channels, mean, std))
    if format == 'int8' and calib_data is None:
        raise ValueError('int8 export needs calibration images (calib_data)')
    if stem is None:
        stem = {'symbol': name, 'fused': name + '-fused', 'onnx': name,
                'int8': name + '-int8'}[format]

    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    tmp = tempfile.mkdtemp(prefix='.export-%s-' % stem, dir=out_dir)
    try:
        x_np = check_input(batch, input_size, in_channels)
        x = mx.nd.array(x_np)
        net.hybridize(static_alloc=True, static_shape=True)
        try:
            ref = net(x)
        except Exception as err:  # shape errors from the graph: say which input
            raise ExportError('%s does not run on a (%d, %d, %d, %d) input: %s'
                              % (name, batch, in_channels, input_size, input_size,
                                 _first_line(err))) from None
        if isinstance(ref, (list, tuple)):
            raise ExportError('%s returns %d outputs; export expects one logits output'
                              % (name, len(ref)))
        ref = ref.asnumpy()
        plain = os.path.join(tmp, '.plain')
        net.export(plain)
        checks, files = {}, {}
        if format != 'symbol':
            # exact rewrite for the ONNX exporter and the oneDNN passes; checked below
            # against ``ref`` like everything else
            split = _split_bn_relu(plain + '-symbol.json')
            if split:
                checks['bn_relu_split'] = split
        if format == 'symbol':
            files.update(_save_symbol(tmp, stem, plain, x, ref, checks))
        elif format == 'fused':
            files.update(_save_fused(tmp, stem, plain, x, ref, checks))
        elif format == 'onnx':
            files.update(_save_onnx(tmp, stem, plain, x_np, ref, checks))
        else:
            files.update(_save_int8(tmp, stem, plain, x, ref, checks, calib_data,
                                    num_calib_examples, calib_mode, quantize_mode,
                                    quantize_granularity))
        info = _deploy_info(format, name, model, model_kwargs, weights, classes, ref,
                            batch, in_channels, input_size, mean, std, crop_ratio,
                            class_names, files, checks)
        info_name = stem + ('.onnx.json' if format == 'onnx' else '-deploy.json')
        _write_json(os.path.join(tmp, info_name), info)
        files_out = dict(files, deploy=info_name)
        for filename in files_out.values():
            os.replace(os.path.join(tmp, filename), os.path.join(out_dir, filename))
        info['files'] = {k: os.path.join(out_dir, v) for k, v in files_out.items()}
        return info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _first_line(err):
    text = str(err).strip()
    # MXNet errors carry a C++ stack trace after the message.
    for marker in ('\nStack trace', '\n\nStack trace'):
        text = text.split(marker)[0]
    return '%s: %s' % (type(err).__name__, text.strip().splitlines()[-1] if text else '')


def _imports(prefix, ctx=None):
    import mxnet as mx
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        block = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', [INPUT_NAME],
                                             prefix + '-0000.params', ctx=ctx or mx.cpu())
    _hybridize(block, _is_onednn_graph(prefix + '-symbol.json'))
    return block


def _is_onednn_graph(symbol_file):
    with open(symbol_file) as f:
        return _onednn_kind(n['op'] for n in json.load(f)['nodes'])


def _onednn_kind(ops):
    """'fused-fc' if the graph holds a fused FullyConnected, else None."""
    return 'fused-fc' if any(op in _INLINED_SUBGRAPHS for op in ops) else None


def _hybridize(block, onednn_graph):
    """Static memory, except for a oneDNN graph that still holds a fused
    FullyConnected (written by something other than :func:`export`): MXNet 1.9.1 then
    returns unreadable oneDNN-layout outputs from the second call on."""
    if onednn_graph == 'fused-fc':
        block.hybridize()
    else:
        block.hybridize(static_alloc=True, static_shape=True)


def _rename_pair(src_prefix, tmp, stem):
    os.replace(src_prefix + '-symbol.json', os.path.join(tmp, stem + '-symbol.json'))
    os.replace(src_prefix + '-0000.params', os.path.join(tmp, stem + '-0000.params'))
    return {'symbol': stem + '-symbol.json', 'params': stem + '-0000.params'}


def _save_symbol(tmp, stem, plain, x, ref, checks):
    out = _imports(plain)(x).asnumpy()
    if not np.array_equal(out, ref):
        raise ExportError('the exported graph differs from the net (max rel err %.3g); '
                          'the model has a Python-side branch the graph does not capture'
                          % relative_error(out, ref))
    checks['reload_bit_identical'] = True
    return _rename_pair(plain, tmp, stem)


def _save_fused(tmp, stem, plain, x, ref, checks):
    import mxnet as mx
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        raise ExportError('--fuse needs an MXNet build with oneDNN (MKLDNN); this one has none')
    block = _imports(plain)
    try:
        block.optimize_for(x, backend='MKLDNN', static_alloc=True, static_shape=True)
        fused_out = block(x).asnumpy()
    except mx.base.MXNetError as err:
        raise ExportError('the oneDNN partitioner (optimize_for MKLDNN) fails on this graph: %s'
                          % _first_line(err)) from None
    err = relative_error(fused_out, ref)
    if not err <= FUSED_TOLERANCE:
        raise ExportError('the oneDNN-fused graph differs from the plain one by %.3g relative '
                          '(tolerance %g)' % (err, FUSED_TOLERANCE))
    fused = os.path.join(tmp, '.fused')
    block.export(fused)
    _inline_subgraphs(fused + '-symbol.json')
    reloaded = _imports(fused)
    for _ in range(2):   # twice: static-memory graphs fail from the second call on
        fused_out = reloaded(x).asnumpy()
    err = relative_error(fused_out, ref)
    if not err <= FUSED_TOLERANCE:
        raise ExportError('the saved oneDNN-fused graph differs from the plain one by %.3g '
                          'relative (tolerance %g)' % (err, FUSED_TOLERANCE))
    checks['fused_max_rel_err'] = err
    checks['fused_ops'] = _op_counts(fused + '-symbol.json', prefix='_sg_')
    return _rename_pair(fused, tmp, stem)


# Fused FullyConnected subgraphs are expanded back into their plain operators: with
# static memory, MXNet 1.9.1 leaves a fused FC's output in a oneDNN layout from the
# second call on, and every later read fails ("can't generate TBlob for MKLDNN data";
# found on lwdna_resnet18, Gluon and Module alike). The FC is a negligible share of a
# CNN's work; the convolutions stay fused.
_INLINED_SUBGRAPHS = ('_sg_mkldnn_fully_connected',)


def _inline_subgraphs(symbol_file, ops=_INLINED_SUBGRAPHS):
    """Rewrite ``symbol_file`` with every node of ``ops`` replaced by the operators of
    its subgraph; returns how many were expanded."""
    with open(symbol_file) as f:
        graph = json.load(f)
    old = graph['nodes']
    if not any(n['op'] in ops and n.get('subgraphs') for n in old):
        return 0
    new, index, heads_of, count = [], {}, {}, 0

    def resolve(entry):
        if entry[0] in heads_of:
            return list(heads_of[entry[0]][entry[1]]) + [0]
        return [index[entry[0]], entry[1], 0]

    for i, node in enumerate(old):
        if node['op'] in ops and node.get('subgraphs'):
            count += 1
            sub = node['subgraphs'][0]
            outer = iter(node['inputs'])
            inner_at = {}
            for j, inner in enumerate(sub['nodes']):
                if inner['op'] == 'null':
                    inner_at[j] = ('outer', resolve(next(outer)))
                    continue
                copy = dict(inner)
                copy['inputs'] = [(inner_at[a[0]][1][:2] + [0]) if inner_at[a[0]][0] == 'outer'
                                  else [inner_at[a[0]][1], a[1], 0] for a in inner['inputs']]
                copy['name'] = '%s_%s' % (node['name'], inner['name'])
                new.append(copy)
                inner_at[j] = ('new', len(new) - 1)
            heads_of[i] = [(inner_at[h[0]][1][:2] if inner_at[h[0]][0] == 'outer'
                            else [inner_at[h[0]][1], h[1]]) for h in sub['heads']]
            continue
        copy = dict(node)
        copy['inputs'] = [resolve(a) for a in node['inputs']]
        new.append(copy)
        index[i] = len(new) - 1
    _write_rewritten_graph(symbol_file, graph, new, resolve)
    return count


def _write_rewritten_graph(symbol_file, graph, nodes, resolve):
    """Store ``nodes`` (a rewritten node list) in ``graph`` with its argument nodes and
    heads (mapped through ``resolve``) recomputed, and write it to ``symbol_file``."""
    graph['nodes'] = nodes
    graph['arg_nodes'] = [k for k, n in enumerate(nodes) if n['op'] == 'null']
    graph['heads'] = [resolve(h) for h in graph['heads']]
    graph.pop('node_row_ptr', None)
    with open(symbol_file, 'w') as f:
        json.dump(graph, f)


def _split_bn_relu(symbol_file):
    """Rewrite every ``_contrib_BatchNormWithReLU`` node of ``symbol_file`` as the
    exact pair BatchNorm -> Activation(relu). mxnet 1.9.1 has no ONNX converter for the
    fused operator, and its oneDNN partitioner mis-infers shapes around it (found on
    the OctConv ResNets); the pair is what both know. Returns how many were split."""
    with open(symbol_file) as f:
        graph = json.load(f)
    old = graph['nodes']
    if not any(n['op'] == '_contrib_BatchNormWithReLU' for n in old):
        return 0
    new, index, relu_of, count = [], {}, {}, 0

    def resolve(entry):
        if entry[1] == 0 and entry[0] in relu_of:
            return [relu_of[entry[0]], 0, 0]
        return [index[entry[0]], entry[1], 0]

    for i, node in enumerate(old):
        copy = dict(node)
        copy['inputs'] = [resolve(a) for a in node['inputs']]
        if node['op'] == '_contrib_BatchNormWithReLU':
            count += 1
            copy['op'] = 'BatchNorm'
            new.append(copy)
            index[i] = len(new) - 1
            new.append({'op': 'Activation', 'name': node['name'] + '_relu',
                        'attrs': {'act_type': 'relu'}, 'inputs': [[index[i], 0, 0]]})
            relu_of[i] = len(new) - 1
            continue
        new.append(copy)
        index[i] = len(new) - 1
    _write_rewritten_graph(symbol_file, graph, new, resolve)
    return count


def _op_counts(symbol_file, prefix=''):
    with open(symbol_file) as f:
        nodes = json.load(f)['nodes']
    counts = {}
    for node in nodes:
        if node['op'] != 'null' and node['op'].startswith(prefix):
            counts[node['op']] = counts.get(node['op'], 0) + 1
    return counts


def _save_int8(tmp, stem, plain, x, ref, checks, calib_data, num_calib_examples,
               calib_mode, quantize_mode, quantize_granularity):
    import logging
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net_v2
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        raise ExportError('int8 export needs an MXNet build with oneDNN (MKLDNN)')
    images = _calibration_array(calib_data, num_calib_examples, x.shape[1:])
    batch = min(32, len(images))
    calib_iter = mx.io.NDArrayIter(data={INPUT_NAME: images}, batch_size=batch,
                                   last_batch_handle='discard')
    block = _imports(plain)
    logger = logging.getLogger('symbols.int8')
    with warnings.catch_warnings(), _captured_stderr() as log:
        warnings.simplefilter('ignore')  # quantize_net's own deprecation notices
        try:
            collector = _MinMaxCollector() if calib_mode == 'naive' else None
            qnet = quantize_net_v2(block, quantized_dtype='auto', quantize_mode=quantize_mode,
                                   quantize_granularity=quantize_granularity,
                                   # oneDNN's quantized multiply takes int8 only, but 'auto'
                                   # makes post-ReLU tensors uint8 (SE / attention gates)
                                   exclude_operators=list(_INT8_EXCLUDED_OPS),
                                   calib_data=calib_iter, data_shapes=calib_iter.provide_data,
                                   calib_mode='customize' if collector else calib_mode,
                                   LayerOutputCollector=collector,
                                   num_calib_examples=batch * (len(images) // batch),
                                   ctx=mx.cpu(), logger=logger)
            qnet.hybridize()     # in memory it still holds a fused FC (see _hybridize)
            quant_out = qnet(x).asnumpy()
        except Exception as err:
            raise ExportError('MXNet quantization failed: %s\n(MXNet log: %s)'
                              % (_first_line(err), log.tail())) from None
    if collector is not None and collector.unreadable:
        checks['uncalibrated_layers'] = sorted(collector.unreadable)
    quantized = os.path.join(tmp, '.int8')
    qnet.export(quantized)
    _inline_subgraphs(quantized + '-symbol.json')
    int8 = _imports(quantized)
    for _ in range(2):   # twice: static-memory graphs fail from the second call on
        reloaded = int8(x).asnumpy()
    if not relative_error(reloaded, quant_out) < 1e-5:
        raise ExportError('the saved int8 graph does not reproduce the quantized block')
    # How close int8 stays on the calibration images themselves (a cheap sanity figure;
    # eval.py measures accuracy on held-out data).
    fp32 = _imports(plain)
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
                  quantized_ops=_op_counts(quantized + '-symbol.json', prefix='_'))
    return _rename_pair(quantized, tmp, stem)


# Kept float32: oneDNN's quantized multiply takes int8 only, but 'auto' makes post-ReLU
# tensors uint8 (SE / attention gates fail); a quantized FullyConnected classifier leaves
# its output in a oneDNN layout that MXNet 1.9.1 cannot read back (asnumpy fails) and
# is a negligible share of a CNN's work.
_INT8_EXCLUDED_OPS = ('elemwise_mul', 'broadcast_mul', 'FullyConnected', '_sg_mkldnn_fully_connected')


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


class _captured_stderr:
    """Send file descriptor 2 to a temporary file while MXNet's quantization pass
    logs every node at INFO level from C++ (it cannot be turned off); ``tail()``
    gives the end of it for error messages."""

    def __enter__(self):
        import sys
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode='w+b')
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        import sys
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


# ----------------------------------------------------------------------------- ONNX

def _save_onnx(tmp, stem, plain, x_np, ref, checks):
    try:
        import onnx
        import onnxruntime  # noqa: F401  (checked before any work)
    except ImportError:
        raise ImportError('ONNX export needs the onnx extra: pip install "gluon_nets[onnx]" '
                          '(onnx==1.14.1, onnxruntime==1.18.1)') from None
    import mxnet as mx
    sym, arg_params, aux_params = mx.model.load_checkpoint(plain, 0)
    _refuse_known_gaps(sym)
    sym = _explicit_reshapes(sym, x_np.shape)
    params = dict(arg_params)
    params.update(aux_params)
    model = _convert_to_onnx(sym, params, x_np.shape)
    patched = _patch_bilinear_resize(model, sym)
    # MXNet's exporter lists every weight as a graph input too; onnxruntime then treats
    # them as overridable and skips constant folding. Weights are initializers only.
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:
        raise ExportError('onnx.checker rejects the exported model: %s' % _first_line(err)) from None
    path = os.path.join(tmp, stem + '.onnx')
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    runner = load_onnx(path, threads=1)
    out = runner(x_np)
    err = relative_error(out, ref)
    if not err < ONNX_TOLERANCE:
        ops = sorted({n.op_type for n in model.graph.node} - _VERIFIED_ONNX_OPS)
        raise ExportError('onnxruntime differs from MXNet by %.3g relative (tolerance %g); '
                          'the file would be wrong. ONNX operators outside the verified set: %s'
                          % (err, ONNX_TOLERANCE, ', '.join(ops) or 'none'))
    # The batch axis is dynamic: check a second batch size as well.
    import mxnet as mx  # noqa: F811
    x2 = check_input(x_np.shape[0] + 2, x_np.shape[2], x_np.shape[1], seed=1)
    ref2 = _imports(plain)(mx.nd.array(x2)).asnumpy()
    err2 = relative_error(runner(x2), ref2)
    if not err2 < ONNX_TOLERANCE:
        raise ExportError('onnxruntime differs from MXNet by %.3g relative at batch %d '
                          '(the exported graph fixes the batch size somewhere)'
                          % (err2, x2.shape[0]))
    checks.update(onnx_opset=ONNX_OPSET, onnx_checker=True,
                  onnxruntime_max_rel_err=max(err, err2),
                  onnx_patched_resize_nodes=patched)
    return {'onnx': stem + '.onnx'}


# ONNX operators whose MXNet conversion the tests compare with onnxruntime.
_VERIFIED_ONNX_OPS = {'Conv', 'BatchNormalization', 'Relu', 'Add', 'MaxPool', 'AveragePool',
                      'GlobalAveragePool', 'GlobalMaxPool', 'Flatten', 'Gemm', 'MatMul',
                      'Concat', 'Reshape', 'Transpose', 'Resize', 'Sigmoid', 'Mul', 'Split',
                      'Slice', 'Identity', 'Pad', 'Shape', 'Constant', 'Sum', 'Squeeze',
                      'Unsqueeze', 'Cast', 'ConstantOfShape', 'Gather', 'Dropout',
                      'ReduceMean', 'Softmax', 'Clip', 'Div', 'Sub', 'Expand', 'Tile'}


def _refuse_known_gaps(sym):
    """Operators mxnet 1.9.1's exporter writes wrongly or cannot write, refused up front
    with their names (found by exporting and comparing with onnxruntime)."""
    nodes = json.loads(sym.tojson())['nodes']
    for node in nodes:
        op, attrs = node['op'], node.get('attrs', {})
        if op == '_contrib_AdaptiveAvgPooling2D':
            size = attrs.get('output_size', '1')
            if size.strip('()[] ').replace(' ', '') not in ('1', '1,1', ''):
                raise ExportError(
                    'cannot export %s to ONNX: operator _contrib_AdaptiveAvgPooling2D with '
                    'output_size=%s (mxnet 1.9.1 exports only output size 1; use global pooling '
                    'or an explicit Pooling where that is exact)' % (node['name'], size))
        if op == '_contrib_BilinearResize2D':
            mode = attrs.get('mode', 'size')
            if mode != 'size':
                raise ExportError(
                    'cannot export %s to ONNX: operator _contrib_BilinearResize2D with mode=%r '
                    '(mxnet 1.9.1 exports only explicit height/width; give the size)'
                    % (node['name'], mode))


def _explicit_reshapes(sym, shape):
    """Reshape nodes with MXNet's special codes (-2, -3, -4, reverse; e.g. a channel
    shuffle's (0, -4, g, -1, -2)) have no ONNX equivalent in mxnet 1.9.1's exporter.
    At a fixed image size their output shapes are known, so each one that keeps the
    batch axis becomes the exact explicit shape (0, d1, d2, ...); one that folds the
    batch axis is refused by name."""
    import mxnet as mx
    graph = json.loads(sym.tojson())
    reshapes = [n for n in graph['nodes'] if n['op'] in ('Reshape', 'reshape')]
    if not reshapes:
        return sym
    internals = sym.get_internals()
    names = internals.list_outputs()
    shapes = []
    for batch in (shape[0], shape[0] + 1):
        _, out_shapes, _ = internals.infer_shape(**{INPUT_NAME: (batch,) + tuple(shape[1:])})
        shapes.append(dict(zip(names, out_shapes)))
    for node in reshapes:
        attrs = node.setdefault('attrs', {})
        target = [int(v) for v in re.findall(r'-?\d+', attrs.get('shape', ''))]
        if all(v > 0 for v in target) and attrs.get('reverse', 'False') in ('False', '0'):
            continue
        first, second = (s[node['name'] + '_output'] for s in shapes)
        if first == second:
            # does not depend on the batch (e.g. a reshaped parameter): fully explicit
            attrs['shape'] = '(%s)' % ', '.join(str(v) for v in first)
        elif first[0] == shape[0] and second[0] == shape[0] + 1 and first[1:] == second[1:]:
            attrs['shape'] = '(%s)' % ', '.join(str(v) for v in (0,) + tuple(first[1:]))
        else:
            raise ExportError('cannot export operator Reshape (node %s, shape=%s) to ONNX: it '
                              'mixes the batch axis with others, which mxnet 1.9.1 cannot write'
                              % (node['name'], attrs.get('shape')))
        attrs.pop('reverse', None)
    return mx.sym.load_json(json.dumps(graph))


def _convert_to_onnx(sym, params, shape):
    """mxnet's own converter, at opset 13 (``mx.onnx.export_model`` always takes the
    newest opset of the installed onnx package), with a dynamic batch axis. A
    conversion error is re-raised naming the operator that caused it."""
    import onnx
    from onnx import helper
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    current = {}
    original = MXNetGraph.convert_layer

    def recording(node, **kwargs):
        current['node'] = node
        return original(node, **kwargs)

    MXNetGraph.convert_layer = staticmethod(recording)
    try:
        with warnings.catch_warnings():
            # the exporter uses onnx.mapping, deprecated in onnx 1.14 (still works)
            warnings.simplefilter('ignore', DeprecationWarning)
            graph = MXNetGraph().create_onnx_graph_proto(
                sym, params, [tuple(shape)], [onnx.TensorProto.FLOAT], opset_version=ONNX_OPSET,
                dynamic=True, dynamic_input_shapes=[(None,) + tuple(shape[1:])])
    except Exception as err:
        node = current.get('node')
        where = ('operator %s (node %s)' % (node['op'], node['name'])) if node else 'the graph'
        raise ExportError('cannot export %s to ONNX with mxnet 1.9.1: %s'
                          % (where, _first_line(err))) from None
    finally:
        MXNetGraph.convert_layer = original
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', ONNX_OPSET)],
                             producer_name='gluon_nets.symbols')


def _patch_bilinear_resize(model, sym):
    """mxnet 1.9.1 writes every BilinearResize2D as Resize(align_corners); with
    align_corners=False MXNet samples at half pixels, so those nodes get
    coordinate_transformation_mode='half_pixel' (the numeric check follows)."""
    nodes = json.loads(sym.tojson())['nodes']
    half_pixel = {n['name'] for n in nodes if n['op'] == '_contrib_BilinearResize2D'
                  and n.get('attrs', {}).get('align_corners', 'True') in ('False', '0', 'false')}
    patched = []
    for node in model.graph.node:
        if node.op_type == 'Resize' and node.name in half_pixel:
            for attr in node.attribute:
                if attr.name == 'coordinate_transformation_mode':
                    attr.s = b'half_pixel'
            patched.append(node.name)
    missing = half_pixel - set(patched)
    if missing:
        raise ExportError('cannot export operator _contrib_BilinearResize2D (align_corners=False) '
                          'of node(s) %s: no matching ONNX Resize node to correct'
                          % ', '.join(sorted(missing)))
    return patched


# ----------------------------------------------------------------------------- deploy JSON

def _deploy_info(format, name, model, model_kwargs, weights, classes, ref, batch, in_channels,
                 input_size, mean, std, crop_ratio, class_names, files, checks):
    import mxnet as mx
    try:
        from importlib.metadata import version
        gluon_nets_version = version('gluon_nets')
    except Exception:
        gluon_nets_version = _source_version()
    info = {
        'format': format,
        'name': name,
        'model': model or name,
        'model_kwargs': dict(model_kwargs or {}),
        'classes': int(classes if classes is not None else ref.shape[-1]),
        'class_names': list(class_names) if class_names is not None else None,
        'weights': weights or 'unspecified',
        'input_name': INPUT_NAME,
        'input_shape': [int(batch), int(in_channels), int(input_size), int(input_size)],
        'input_dtype': 'float32',
        'layout': 'NCHW',
        'channel_order': 'RGB',
        'preprocess': {
            'resize_short': int(np.ceil(input_size / crop_ratio)),
            'crop_ratio': float(crop_ratio),
            'center_crop': int(input_size),
            'scale': 1.0 / 255.0,
            'mean': [float(v) for v in mean],
            'std': [float(v) for v in std],
            'formula': '((pixel / 255) - mean) / std, per RGB channel',
        },
        'output': 'logits (N, classes); softmax gives probabilities',
        'files': files,
        'checks': checks,
        'gluon_nets_version': gluon_nets_version,
        'mxnet_version': mx.__version__,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }
    if format == 'onnx':
        import onnxruntime
        info['onnx_opset'] = ONNX_OPSET
        info['onnxruntime_version'] = onnxruntime.__version__
    return info


def _source_version():
    """gluon_nets.__version__ read from the source tree (no import: this module must
    not need gluon_nets)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'gluon_nets', '__init__.py')
    try:
        with open(path) as f:
            match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", f.read())
        return match.group(1) if match else 'unknown'
    except OSError:
        return 'unknown'


def _write_json(path, obj):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write('\n')
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError('not JSON serialisable: %r' % (value,))


def read_deploy_info(path):
    """The deployer JSON at ``path`` (a dict), or None when the file does not exist."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:
        raise ValueError('deployer JSON %s is not valid JSON: %s' % (path, err)) from None


# ----------------------------------------------------------------------------- load

def _strip_prefix(prefix):
    for suffix in ('-symbol.json', '-deploy.json'):
        if prefix.endswith(suffix):
            return prefix[:-len(suffix)]
    return prefix


def load(prefix, epoch=None, ctx=None, hybridize=True):
    """A runnable ``SymbolBlock`` from ``<prefix>-symbol.json`` + ``<prefix>-NNNN.params``.

    Needs only mxnet (not gluon_nets). ``epoch`` defaults to the only / highest
    ``.params`` beside the graph. The block maps (N, C, H, W) float32 -> (N, classes)
    logits and carries the deployer JSON (or None) as ``block.deploy_info``.
    """
    import mxnet as mx
    prefix = _strip_prefix(os.fspath(prefix))
    symbol_file = prefix + '-symbol.json'
    if not os.path.isfile(symbol_file):
        raise FileNotFoundError('no exported graph at %s (expected from `python -m '
                                'symbols.export ... --out DIR`)' % symbol_file)
    if epoch is None:
        found = sorted(glob.glob(glob.escape(prefix) + '-[0-9][0-9][0-9][0-9].params'))
        if not found:
            raise FileNotFoundError('no %s-NNNN.params beside %s' % (prefix, symbol_file))
        params_file = found[-1]
    else:
        params_file = '%s-%04d.params' % (prefix, int(epoch))
        if not os.path.isfile(params_file):
            raise FileNotFoundError('no parameters file %s' % params_file)
    info = read_deploy_info(prefix + '-deploy.json')
    input_name = (info or {}).get('input_name', INPUT_NAME)
    try:
        with open(symbol_file) as f:
            ops = {n['op'] for n in json.load(f)['nodes']}
    except (ValueError, KeyError) as err:
        raise ValueError('%s is not an MXNet symbol JSON: %s' % (symbol_file, err)) from None
    if any(op.startswith('_sg_mkldnn') for op in ops) and \
            not mx.runtime.Features().is_enabled('MKLDNN'):
        raise RuntimeError('%s is a oneDNN-fused (or int8) graph; this MXNet build has no '
                           'oneDNN: use the plain export' % symbol_file)
    try:
        with warnings.catch_warnings():
            # "Cannot decide type for data": the input is float32 by contract
            warnings.simplefilter('ignore', UserWarning)
            block = mx.gluon.SymbolBlock.imports(symbol_file, [input_name], params_file,
                                                 ctx=ctx or mx.cpu())
    except Exception as err:
        raise ValueError('cannot load %s with %s: %s'
                         % (symbol_file, params_file, _first_line(err))) from None
    if hybridize:
        _hybridize(block, _onednn_kind(ops))
    block.deploy_info = info
    return block


class OnnxModel:
    """An onnxruntime session called like a block: ``model(x)`` with x (N, C, H, W)
    float32 (numpy or NDArray) -> numpy logits (N, classes). ``deploy_info`` holds the
    deployer JSON written beside the file (or None)."""

    def __init__(self, path, threads=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError('running ONNX files needs onnxruntime: '
                              'pip install "gluon_nets[onnx]"') from None
        if not os.path.isfile(path):
            raise FileNotFoundError('no ONNX file at %s' % path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        threads = threads or int(os.environ.get('OMP_NUM_THREADS', '0') or 0)
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        except Exception as err:
            raise ValueError('onnxruntime cannot load %s: %s' % (path, _first_line(err))) from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = path
        self.deploy_info = read_deploy_info(path + '.json')

    def __call__(self, x):
        if hasattr(x, 'asnumpy'):
            x = x.asnumpy()
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})[0]


def load_onnx(path, threads=None):
    """An :class:`OnnxModel` for ``path`` (threads: onnxruntime intra-op threads,
    default OMP_NUM_THREADS)."""
    return OnnxModel(os.fspath(path), threads=threads)
