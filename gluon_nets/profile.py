"""Parameter and MAC counts read from the hybridized graph.

``count_macs`` walks the Symbol that a HybridBlock produces, infers the shape of every
node for the given input, and adds up the multiply-accumulates of every
Convolution, Deconvolution and FullyConnected node (per image). Other operators
(pooling, elementwise, BN that folds into the conv) are not counted, which is the
convention of the papers' FLOPs columns and of the golden files.
"""
import json
import re

import numpy as np

__all__ = ['count_params', 'count_macs', 'infer_param_shapes', 'graph_shapes']

_RUNNING_STATS = re.compile(r'(running|moving)_(mean|var)$')
_COUNTED_OPS = ('Convolution', 'Deconvolution', 'FullyConnected')


def _normalise_input_shape(input_shape):
    """``input_shape`` as a tuple with a batch axis: (C, H, W) gets N=1 prepended; any
    other rank is taken as already batched ((N, D) for a Dense block, (N, C, L), ...)."""
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError('input_shape must be a tuple of ints, got %r' % (input_shape,)) from None
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ValueError('input_shape must be (N, ...) with positive sizes, e.g. (1, 3, 224, 224) '
                         'or (1, 64); got %r' % (input_shape,))
    return shape


def _symbol(net):
    import mxnet as mx
    out = net(mx.sym.var('data'))
    if isinstance(out, (list, tuple)):
        out = mx.sym.Group(list(_flatten(out)))
    return out


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        elif item is not None:
            yield item


def infer_param_shapes(net, input_shape=(1, 3, 224, 224)):
    """{parameter name: shape} for ``net`` as its graph infers them for ``input_shape``."""
    sym = _symbol(net)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=_normalise_input_shape(input_shape))
    if arg_shapes is None:
        raise ValueError('cannot infer the shapes of %s for input %r'
                         % (type(net).__name__, input_shape))
    shapes = dict(zip(sym.list_arguments(), arg_shapes))
    shapes.update(zip(sym.list_auxiliary_states(), aux_shapes))
    return shapes


def count_params(net, input_shape=(1, 3, 224, 224)):
    """Number of learnable parameters of ``net``.

    BN running statistics are excluded; a Parameter shared by several layers counts
    once. Shapes that are still deferred (``in_channels=0``) are inferred from the
    graph at ``input_shape`` (N, C, H, W).
    """
    params = net.collect_params()
    inferred = None
    seen = set()
    total = 0
    for name, param in params.items():
        if _RUNNING_STATS.search(name) or id(param) in seen:
            continue
        seen.add(id(param))
        shape = param.shape
        if shape is None or any(int(d) <= 0 for d in shape):
            if inferred is None:
                inferred = infer_param_shapes(net, input_shape)
            shape = inferred[name]
        total += int(np.prod(shape)) if len(shape) else 1
    return total


def graph_shapes(net, input_shape):
    """(nodes, shape_of) for the symbol of ``net``: the graph's JSON node list and a
    function giving the inferred shape of input entry ``(node_id, output_index)``."""
    sym = _symbol(net)
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=_normalise_input_shape(input_shape))
    if out_shapes is None:
        raise ValueError('cannot infer shapes of %s for input %r'
                         % (type(net).__name__, input_shape))
    by_name = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())['nodes']

    def shape_of(entry):
        node = nodes[entry[0]]
        if node['op'] == 'null':
            return by_name[node['name']]
        name = node['name'] + '_output'
        if name in by_name and entry[1] == 0:
            return by_name[name]
        return by_name['%s%d' % (name, entry[1])]

    return nodes, shape_of


def count_macs(net, input_shape=(1, 3, 224, 224), exclude=None):
    """Multiply-accumulates per sample of every Convolution, Deconvolution and
    FullyConnected node in the graph of ``net`` for ``input_shape``: (N, C, H, W) or
    (C, H, W) for images, or any batched shape such as (N, D) for a Dense block
    (every node's count is taken per sample, i.e. without the batch axis).

    Grouped convolutions count ``Cin/groups`` inputs per output. Nodes whose name
    starts with a prefix in ``exclude`` (or in ``net.macs_exclude_prefixes``) are
    skipped, e.g. a hypernetwork that generates kernels.
    """
    shape = _normalise_input_shape(input_shape)
    exclude = tuple(exclude or ()) + tuple(getattr(net, 'macs_exclude_prefixes', ()))
    nodes, shape_of = graph_shapes(net, shape)
    total = 0
    for idx, node in enumerate(nodes):
        op = node['op']
        if op not in _COUNTED_OPS or (exclude and node['name'].startswith(exclude)):
            continue
        weight = shape_of(node['inputs'][1])
        if op == 'Convolution':
            # every output element needs Cin/groups * kh * kw MACs
            total += int(np.prod(shape_of((idx, 0))[1:])) * int(np.prod(weight[1:]))
        elif op == 'Deconvolution':
            # every input element is scattered to Cout/groups * kh * kw outputs
            total += int(np.prod(shape_of(node['inputs'][0])[1:])) * int(np.prod(weight[1:]))
        else:
            out = shape_of((idx, 0))
            flatten = node.get('attrs', {}).get('flatten', 'True') in ('True', 'true', '1')
            rows = 1 if flatten else int(np.prod(out[1:-1]))
            total += rows * int(np.prod(weight))
    return total
