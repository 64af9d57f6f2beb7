"""Exact operator rewrites of a traced inference graph (Symbol JSON) for oneDNN.

``upsampling_as_deconvolution``: MXNet's ``UpSampling`` (nearest) is not a oneDNN
operator: it runs MXNet's own kernel on the plain NCHW layout, so every one of them
costs a reorder out of oneDNN's blocked layout before it and another after it (OctConv's
``h2h + upsample(l2h)`` in every block; `bench/profile_kernels.py` shows the UpSampling
and reorder time). The same values come from a depthwise ``Deconvolution`` with a
``scale x scale`` kernel of ones and stride ``scale``: each output pixel is exactly one
input pixel times 1.0 (bit-exact), and oneDNN runs it in the blocked layout.
"""
import json

import numpy as np

from .graph import with_nodes

__all__ = ['upsampling_as_deconvolution', 'output_shapes']


def output_shapes(graph, input_name, input_shape, params=None):
    """{node name: shape of its first output} of the Symbol JSON ``graph`` fed
    ``input_shape`` at ``input_name`` (and the shapes of ``params``, {name: array}:
    a graph that computes weights, e.g. ScaleNet's padded ones, needs them)."""
    import mxnet as mx
    sym = mx.sym.load_json(json.dumps(graph)).get_internals()
    known = {name: params[name].shape for name in sym.list_arguments() if name in (params or {})}
    known[input_name] = tuple(input_shape)
    _, shapes, _ = sym.infer_shape(**known)
    out = {}
    for name, shape in zip(sym.list_outputs(), shapes):
        if name.endswith('_output'):
            out.setdefault(name[:-len('_output')], shape)
    return out


def upsampling_as_deconvolution(graph, params, input_name, input_shape):
    """The graph with every single-input nearest ``UpSampling`` (integer scale) written as
    a depthwise ``Deconvolution`` of ones (see the module docstring); ``params`` gets the
    kernels. Returns (graph, params, count); neither input is modified."""
    nodes = graph['nodes']
    targets = [i for i, n in enumerate(nodes) if n['op'] == 'UpSampling'
               and n.get('attrs', {}).get('sample_type', 'nearest') == 'nearest'
               and len(n['inputs']) == 1]
    if not targets:
        return graph, params, 0
    shapes = output_shapes(graph, input_name, input_shape, params)
    params = dict(params)
    out, index, count = [], {}, 0
    for i, node in enumerate(nodes):
        inputs = [[index[e[0]], e[1], 0] for e in node['inputs']]
        if i in targets and len(shapes.get(node['name'], ())) == 4:
            channels = int(shapes[node['name']][1])
            scale = int(node['attrs']['scale'])
            weight = node['name'] + '_ones_weight'
            params[weight] = np.ones((channels, 1, scale, scale), np.float32)
            out.append({'op': 'null', 'name': weight, 'inputs': []})
            inputs.append([len(out) - 1, 0, 0])
            node = {'op': 'Deconvolution', 'name': node['name'] + '_as_deconv', 'inputs': inputs,
                    'attrs': {'kernel': '(%d, %d)' % (scale, scale),
                              'stride': '(%d, %d)' % (scale, scale),
                              'num_filter': str(channels), 'num_group': str(channels),
                              'no_bias': 'True'}}
            count += 1
        else:
            node = dict(node, inputs=inputs)
        out.append(node)
        index[i] = len(out) - 1
    new_graph = with_nodes(graph, out, [[index[h[0]], h[1], 0] for h in graph['heads']])
    return new_graph, params, count


# operators that map a zero channel to a zero channel, channel by channel
_ZERO_KEEPING = {'Activation': lambda a: a.get('act_type', 'relu') == 'relu',
                 'relu': lambda a: True,
                 'clip': lambda a: float(a.get('a_min', 0)) <= 0 <= float(a.get('a_max', 0)),
                 'Pooling': lambda a: a.get('pool_type', 'max') in ('max', 'avg'),
                 'LeakyReLU': lambda a: a.get('act_type', 'leaky') in ('leaky', 'prelu', 'elu'),
                 'UpSampling': lambda a: a.get('sample_type', 'nearest') == 'nearest'}
_SUMS = ('elemwise_add', 'broadcast_add', '_Plus', '_plus')


def _attr_int(node, key, default):
    return int(node.get('attrs', {}).get(key, default))


def pad_channels(graph, params, input_name, input_shape, multiple=16):
    """The graph with the output channels of every plain convolution whose width is not
    a multiple of ``multiple`` padded with zero kernels (zero bias) up to one, and every
    reader adjusted so that the function is unchanged: zero input columns in the next
    convolutions (at the padded positions, through concats), wider depthwise
    upsampling deconvolutions, and zero-keeping operators (ReLU, pooling, sums) passed
    through. A padded channel is 0 everywhere, so the result is exact up to float32
    summation order.

    Why: oneDNN runs its AVX-512 kernels on 16-channel blocks; a width like OctConv's
    56 / 8 (alpha .125) puts the convolutions on 8-channel blocks (``jit:avx2``) or
    GEMM, 2-4x slower per multiply-add (``bench/profile_kernels.py``).

    A convolution is left unpadded when a reader of its output cannot take padded
    channels (a grouped convolution, a dense layer, a sum with an unpadded tensor, ...).
    Returns (graph, params, padded convolutions); neither input is modified.
    """
    nodes = graph['nodes']
    shapes = output_shapes(graph, input_name, input_shape, params)

    def up(c):
        return -(-c // multiple) * multiple

    readers = {}
    for node in nodes:
        for e in node['inputs']:
            readers[e[0]] = readers.get(e[0], 0) + 1

    def own_param(entry):      # a parameter read by this node alone (safe to rewrite)
        node = nodes[entry[0]]
        return node['op'] == 'null' and node['name'] in params and readers[entry[0]] == 1

    def plain_conv(node):
        return node['op'] == 'Convolution' and _attr_int(node, 'num_group', 1) == 1 and \
            node.get('attrs', {}).get('layout', 'None') in ('None', 'NCHW') and \
            len(shapes.get(node['name'], ())) == 4 and all(own_param(e) for e in node['inputs'][1:])

    def depthwise(node):     # one channel in and out per group, own kernels
        return node['op'] == 'Convolution' and len(node['inputs']) > 1 and \
            all(own_param(e) for e in node['inputs'][1:]) and \
            _attr_int(node, 'num_group', 1) == int(node.get('attrs', {}).get('num_filter', 0)) \
            == params[nodes[node['inputs'][1][0]]['name']].shape[0] and \
            params[nodes[node['inputs'][1][0]]['name']].shape[1] == 1

    def ones_deconv(node):   # our depthwise upsampling deconvolution
        return node['op'] == 'Deconvolution' and node['name'].endswith('_as_deconv') and \
            own_param(node['inputs'][1])

    candidates = {i for i, n in enumerate(nodes)
                  if plain_conv(n) and int(n['attrs']['num_filter']) % multiple}
    while True:
        # maps[i]: None (as traced) or (padded width, real channel positions, source convs)
        maps, conflict = {}, None
        for i, node in enumerate(nodes):
            ins = [maps.get(e[0]) if e[1] == 0 else None for e in node['inputs']]
            padded_in = [m for m in ins if m is not None]
            op = node['op']
            if op == 'null':
                maps[i] = None
            elif op == 'Convolution' and plain_conv(node) and (not padded_in or ins[0] is not None
                                                               and not any(ins[1:])):
                if i in candidates:
                    c = int(node['attrs']['num_filter'])
                    maps[i] = (up(c), np.arange(c), {i})
                else:
                    maps[i] = None
            elif not padded_in:
                maps[i] = None
            elif op in _ZERO_KEEPING and _ZERO_KEEPING[op](node.get('attrs', {})) \
                    and len(node['inputs']) == 1 or ones_deconv(node) and not any(ins[1:]) \
                    or depthwise(node) and ins[0] is not None and not any(ins[1:]):
                # (a depthwise convolution gets zero kernels and biases at the padding)
                maps[i] = ins[0]
            elif op in _SUMS and all(m is not None for m in ins) and \
                    len({(m[0], tuple(m[1])) for m in ins}) == 1:
                maps[i] = (ins[0][0], ins[0][1], set().union(*(m[2] for m in ins)))
            elif op in ('Concat', 'concat') and _attr_int(node, 'dim', 1) == 1:
                width, real, sources = 0, [], set()
                for e, m in zip(node['inputs'], ins):
                    if m is None:
                        c = int(shapes[nodes[e[0]]['name']][1]) if e[1] == 0 else None
                        if c is None:
                            conflict = set().union(*(p[2] for p in padded_in))
                            break
                        m = (c, np.arange(c), set())
                    real.append(width + m[1])
                    width += m[0]
                    sources |= m[2]
                maps[i] = (width, np.concatenate(real), sources)
            else:
                conflict = set().union(*(m[2] for m in padded_in))
            if conflict:
                break
        if not conflict:
            for head in graph['heads']:
                if maps.get(head[0]) is not None:
                    conflict = maps[head[0]][2]
                    break
        if not conflict:
            break
        candidates -= conflict
    if not candidates:
        return graph, params, 0
    graph_params, params = params, dict(params)
    out = []
    for i, node in enumerate(nodes):
        node = dict(node, attrs=dict(node.get('attrs', {})))
        if depthwise(node) and maps.get(i) is not None:
            width, real = maps[i][0], maps[i][1]
            for pos in range(1, len(node['inputs'])):
                pname = nodes[node['inputs'][pos][0]]['name']
                value = params[pname]
                new = np.zeros((width,) + value.shape[1:], np.float32)
                new[real] = value
                params[pname] = new
            node['attrs']['num_filter'] = node['attrs']['num_group'] = str(width)
        elif node['op'] == 'Convolution' and (i in candidates or (
                node['inputs'] and maps.get(node['inputs'][0][0]) is not None)):
            wname = nodes[node['inputs'][1][0]]['name']
            weight = params[wname]
            oc = weight.shape[0]
            width_in = maps.get(node['inputs'][0][0])
            cin = width_in[0] if width_in else weight.shape[1]
            oc_new = up(oc) if i in candidates else oc
            new = np.zeros((oc_new, cin) + weight.shape[2:], np.float32)
            cols = width_in[1] if width_in else np.arange(cin)
            new[:oc, cols] = weight
            params[wname] = new
            if len(node['inputs']) > 2 and i in candidates:
                bname = nodes[node['inputs'][2][0]]['name']
                params[bname] = np.concatenate(
                    [params[bname], np.zeros(oc_new - oc, np.float32)]).astype(np.float32)
            node['attrs']['num_filter'] = str(oc_new)
        elif ones_deconv(node) and maps.get(i) is not None:
            wname = nodes[node['inputs'][1][0]]['name']
            width = maps[i][0]
            params[wname] = np.ones((width,) + params[wname].shape[1:], np.float32)
            node['attrs']['num_filter'] = node['attrs']['num_group'] = str(width)
        out.append(node)
    # a variable may carry its traced shape (``__shape__``): give the widened ones theirs
    for node in out:
        if node['op'] == 'null' and '__shape__' in node.get('attrs', {}) and \
                node['name'] in params and params[node['name']] is not graph_params.get(node['name']):
            node['attrs']['__shape__'] = str(tuple(params[node['name']].shape))
    new_graph = dict(graph, nodes=out)
    new_graph.pop('node_row_ptr', None)
    return new_graph, params, len(candidates)
