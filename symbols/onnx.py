"""Format ``onnx``: ``<stem>.onnx`` at opset 13 with a dynamic batch axis, written by
mxnet 1.9.1's own converter with the fixes its exporter needs (docs/deploy.md lists
them).

Check: ``onnx.checker`` (full) and onnxruntime within :data:`TOLERANCE` relative of
MXNet at two batch sizes; a refused graph names the operator.
"""
import json
import os
import re
import warnings

from .checks import ExportError, check_input, error_line, relative_error
from .loaders import INPUT_NAME, load, load_onnx

__all__ = ['save', 'OPSET', 'TOLERANCE']

OPSET = 13
TOLERANCE = 1e-4      # max |onnxruntime - mxnet| / max |mxnet|

# ONNX operators whose MXNet conversion the tests compare with onnxruntime.
_VERIFIED_OPS = {'Conv', 'BatchNormalization', 'Relu', 'Add', 'MaxPool', 'AveragePool',
                 'GlobalAveragePool', 'GlobalMaxPool', 'Flatten', 'Gemm', 'MatMul',
                 'Concat', 'Reshape', 'Transpose', 'Resize', 'Sigmoid', 'Mul', 'Split',
                 'Slice', 'Identity', 'Pad', 'Shape', 'Constant', 'Sum', 'Squeeze',
                 'Unsqueeze', 'Cast', 'ConstantOfShape', 'Gather', 'Dropout',
                 'ReduceMean', 'Softmax', 'Clip', 'Div', 'Sub', 'Expand', 'Tile'}


def versions():
    """What the deployer JSON of an ONNX file records about its producer."""
    import onnxruntime
    return {'onnx_opset': OPSET, 'onnxruntime_version': onnxruntime.__version__}


def save(tmp, stem, plain, x, ref, checks):
    """Convert the plain export at ``plain``, check it against ``ref`` (the net's logits
    on the (N, C, S, S) check input ``x``) and keep it as ``<stem>.onnx``."""
    try:
        import onnx
        import onnxruntime  # noqa: F401  (checked before any work)
    except ImportError:
        raise ImportError('ONNX export needs the onnx extra: pip install "gluon_nets[onnx]" '
                          '(onnx==1.14.1, onnxruntime==1.18.1)') from None
    import mxnet as mx
    from gluon_nets.utils.atomic import atomic_path
    sym, arg_params, aux_params = mx.model.load_checkpoint(plain, 0)
    _refuse_known_gaps(sym)
    params = dict(arg_params)
    params.update(aux_params)
    sym = _explicit_reshapes(sym, x.shape, arg_params)
    model = _convert(sym, params, x.shape)
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
        raise ExportError('onnx.checker rejects the exported model: %s' % error_line(err)) from None
    path = os.path.join(tmp, stem + '.onnx')
    with atomic_path(path) as partial:
        with open(partial, 'wb') as f:
            f.write(model.SerializeToString())
    runner = load_onnx(path, threads=1)
    err = relative_error(runner(x), ref)
    if not err < TOLERANCE:
        ops = sorted({n.op_type for n in model.graph.node} - _VERIFIED_OPS)
        raise ExportError('onnxruntime differs from MXNet by %.3g relative (tolerance %g); '
                          'the file would be wrong. ONNX operators outside the verified set: %s'
                          % (err, TOLERANCE, ', '.join(ops) or 'none'))
    # The batch axis is dynamic: check a second batch size as well.
    x2 = check_input(x.shape[0] + 2, x.shape[2], x.shape[1], seed=1)
    ref2 = load(plain, epoch=0)(mx.nd.array(x2)).asnumpy()
    err2 = relative_error(runner(x2), ref2)
    if not err2 < TOLERANCE:
        raise ExportError('onnxruntime differs from MXNet by %.3g relative at batch %d '
                          '(the exported graph fixes the batch size somewhere)'
                          % (err2, x2.shape[0]))
    checks.update(onnx_opset=OPSET, onnx_checker=True, onnxruntime_max_rel_err=max(err, err2),
                  onnx_patched_resize_nodes=patched)
    return {'onnx': stem + '.onnx'}


def _refuse_known_gaps(sym):
    """Operators mxnet 1.9.1's exporter writes wrongly or cannot write, refused up front
    with their names (found by exporting and comparing with onnxruntime)."""
    for node in json.loads(sym.tojson())['nodes']:
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


def _explicit_reshapes(sym, shape, arg_params=None):
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
    # the parameters' shapes too: a graph that computes a weight (ScaleNet's zero-padded
    # ones, after optimize) does not infer from the data shape alone
    known = {name: value.shape for name, value in (arg_params or {}).items()
             if name in internals.list_arguments()}
    shapes = []
    for batch in (shape[0], shape[0] + 1):
        _, out_shapes, _ = internals.infer_shape(
            **dict(known, **{INPUT_NAME: (batch,) + tuple(shape[1:])}))
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


def _convert(sym, params, shape):
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
                sym, params, [tuple(shape)], [onnx.TensorProto.FLOAT], opset_version=OPSET,
                dynamic=True, dynamic_input_shapes=[(None,) + tuple(shape[1:])])
    except Exception as err:
        node = current.get('node')
        where = ('operator %s (node %s)' % (node['op'], node['name'])) if node else 'the graph'
        raise ExportError('cannot export %s to ONNX with mxnet 1.9.1: %s'
                          % (where, error_line(err))) from None
    finally:
        MXNetGraph.convert_layer = original
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
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
