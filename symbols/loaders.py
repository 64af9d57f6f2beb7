"""Run exported artefacts where only mxnet (or onnxruntime) is installed.

:func:`load` gives a hybridized ``SymbolBlock`` for ``<prefix>-symbol.json`` +
``<prefix>-NNNN.params``, :func:`load_onnx` an onnxruntime session called like a block;
both carry the deployer JSON written beside the files (:func:`read_deploy_info`) as
``deploy_info``. This module imports neither gluon_nets nor gluoncv.
"""
import glob
import json
import os
import warnings

import numpy as np

from .checks import error_line

__all__ = ['load', 'load_onnx', 'OnnxModel', 'read_deploy_info', 'read_json', 'strip_prefix',
           'graph_ops', 'INPUT_NAME', 'INLINED_SUBGRAPHS']

INPUT_NAME = 'data'

# Fused FullyConnected subgraphs are expanded back into their plain operators on export
# (symbols.rewrites.inline_subgraphs): with static memory, MXNet 1.9.1 leaves a fused
# FC's output in a oneDNN layout from the second call on, and every later read fails
# ("can't generate TBlob for MKLDNN data"; found on lwdna_resnet18, Gluon and Module
# alike). The FC is a negligible share of a CNN's work; the convolutions stay fused.
INLINED_SUBGRAPHS = ('_sg_mkldnn_fully_connected',)


def read_json(path, what='JSON file'):
    """The JSON value in ``path``, or None when the file does not exist; ValueError
    naming ``what`` and the file when it is not JSON."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:
        raise ValueError('%s %s is not valid JSON: %s' % (what, path, err)) from None


def read_deploy_info(path):
    """The deployer JSON at ``path`` (a dict), or None when the file does not exist."""
    return read_json(path, 'deployer JSON')


def strip_prefix(prefix):
    """``deploy/m`` from ``deploy/m``, ``deploy/m-symbol.json`` or ``deploy/m-deploy.json``."""
    for suffix in ('-symbol.json', '-deploy.json'):
        if prefix.endswith(suffix):
            return prefix[:-len(suffix)]
    return prefix


def graph_ops(symbol_file):
    """The set of operator names in an MXNet symbol JSON (ValueError naming the file
    when it is not one: not JSON, or not an object with a list of nodes)."""
    try:
        with open(symbol_file) as f:
            graph = json.load(f)
    except ValueError as err:
        raise ValueError('%s is not an MXNet symbol JSON: %s' % (symbol_file, err)) from None
    nodes = graph.get('nodes') if isinstance(graph, dict) else None
    if not isinstance(nodes, list) or not nodes or \
            not all(isinstance(node, dict) and 'op' in node for node in nodes):
        raise ValueError('%s is not an MXNet symbol JSON: it holds %s, not an object whose '
                         '"nodes" list the graph\'s operators (re-export it with `python -m '
                         'symbols.export`)' % (symbol_file, _describe_json(graph)))
    return {node['op'] for node in nodes}


def _describe_json(value):
    if isinstance(value, dict):
        return 'an object with keys %s' % (', '.join(sorted(value)[:5]) or 'none')
    if isinstance(value, list):
        return 'a list of %d item(s)' % len(value)
    return 'a %s' % type(value).__name__


def _hybridize(block, ops):
    """Static memory, except for a oneDNN graph that still holds a fused
    FullyConnected (written by something other than ``symbols.export``): MXNet 1.9.1
    then returns unreadable oneDNN-layout outputs from the second call on."""
    if any(op in INLINED_SUBGRAPHS for op in ops):
        block.hybridize()
    else:
        block.hybridize(static_alloc=True, static_shape=True)


def load(prefix, epoch=None, ctx=None, hybridize=True):
    """A runnable ``SymbolBlock`` from ``<prefix>-symbol.json`` + ``<prefix>-NNNN.params``.

    Needs only mxnet (not gluon_nets). ``epoch`` defaults to the only / highest
    ``.params`` beside the graph. The block maps (N, C, H, W) float32 -> (N, classes)
    logits and carries the deployer JSON (or None) as ``block.deploy_info``.
    """
    import mxnet as mx
    prefix = strip_prefix(os.fspath(prefix))
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
    ops = graph_ops(symbol_file)
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
                         % (symbol_file, params_file, error_line(err))) from None
    if hybridize:
        _hybridize(block, ops)
    block.deploy_info = info
    return block


class OnnxModel:
    """An onnxruntime session called like a block: ``model(x)`` with x (N, C, H, W)
    float32 (numpy or NDArray) -> numpy logits (N, classes). ``deploy_info`` holds the
    deployer JSON written beside the file (or None).

    ``threads``: onnxruntime's intra-op threads. The evaluator and the benches pass the
    count ``gluon_nets.utils.threads.set_threads`` chose; standing alone (no gluon_nets
    to ask) the default is the ``OMP_NUM_THREADS`` that function sets, else
    onnxruntime's own choice.
    """

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
        threads = threads or os.environ.get('OMP_NUM_THREADS')
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        except Exception as err:
            raise ValueError('onnxruntime cannot load %s: %s' % (path, error_line(err))) from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.path = path
        self.deploy_info = read_deploy_info(path + '.json')
        # (N, C, H, W) with None for a dynamic dimension (a name such as 'batch')
        self.input_shape = tuple(d if isinstance(d, int) and d > 0 else None
                                 for d in (first.shape or ()))

    def check_input_size(self, channels, height, width):
        """ValueError naming the file when its input is fixed to another (C, H, W)."""
        if len(self.input_shape) != 4:
            return
        for name, fixed, given in zip(('channels', 'height', 'width'), self.input_shape[1:],
                                      (channels, height, width)):
            if fixed is not None and fixed != given:
                raise ValueError('%s takes inputs of shape %s, but the data is %dx%dx%d (%s %d, '
                                 'not %d): give the size it was exported at (--input-size), or '
                                 're-export it' % (self.path, tuple(self.input_shape), channels,
                                                   height, width, name, given, fixed))

    def __call__(self, x):
        if hasattr(x, 'asnumpy'):
            x = x.asnumpy()
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim == 4:
            self.check_input_size(*x.shape[1:])
        try:
            return self.session.run(None, {self.input_name: x})[0]
        except Exception as err:
            raise ValueError('onnxruntime cannot run %s on a %s batch: %s'
                             % (self.path, x.shape, error_line(err))) from None


def load_onnx(path, threads=None):
    """An :class:`OnnxModel` for ``path`` (``threads``: onnxruntime intra-op threads)."""
    return OnnxModel(os.fspath(path), threads=threads)
