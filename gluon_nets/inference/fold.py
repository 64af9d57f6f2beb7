"""Graph-level BatchNorm folding: a traced MXNet Symbol + its parameters -> the same
function with every inference BatchNorm whose input is a linear image of convolutions
folded into those convolutions' weights and biases.

Works on the Symbol JSON, so it applies to every family without knowing its blocks.
``BatchNorm(x)`` (axis 1; ``_contrib_BatchNormWithReLU`` becomes conv -> ``relu``) is
``scale * x + shift`` per channel in inference, and it is pushed back through

* ``Convolution`` / ``Deconvolution``: into the weight's output-channel rows and the bias,
* ``Concat`` (dim 1): each input gets its slice (MENet's per-group 1x1 convolutions),
* ``elemwise_add``: both summands get ``scale``, the first one ``shift`` (OctConv's
  ``h2h + upsample(l2h)``),
* ``UpSampling`` (nearest): it copies pixels, so scale and shift pass through,

when every node on the way is read only by the next one, and every weight and bias is
a plain parameter read by that convolution alone (a weight computed in the graph is
left alone). Per output channel c, in float64 (stored float32)::

    scale_c = gamma_c / sqrt(var_c + eps)   (gamma_c = 1 when fix_gamma)
    shift_c = beta_c - mean_c * scale_c
    W'_c = W_c * scale_c,   b'_c = b_c * scale_c + shift_c (the shift only on one path)
"""
import json

import numpy as np

from .graph import used_params, with_nodes

__all__ = ['fold_batchnorm_graph', 'materialize_weight_slices', 'fold_constants']

_BN_OPS = ('BatchNorm', '_contrib_BatchNormWithReLU')
_CONV_OPS = ('Convolution', 'Deconvolution')
_ADD_OPS = ('elemwise_add', '_Plus', '_plus')


def _flag(value, default=False):
    if value is None:
        return default
    return str(value).lower() in ('true', '1')


def fold_batchnorm_graph(graph, params):
    """Fold BatchNorm into the convolutions it reads (see the module docstring).

    Parameters
    ----------
    graph : dict
        A Symbol's JSON (``json.loads(sym.tojson())``); not modified.
    params : dict of str -> numpy.ndarray
        Every parameter and auxiliary state of the graph, by variable name; not modified.

    Returns
    -------
    (graph, params, folded): the rewritten JSON dict, the parameters it reads (new
    arrays for rewritten convolutions; the folded BNs' statistics dropped) and the
    number of BatchNorm nodes folded.
    """
    graph, params = materialize_weight_slices(graph, params)
    nodes = graph['nodes']
    readers, outputs_read = {}, {}
    for i, node in enumerate(nodes):
        for entry in node['inputs']:
            readers.setdefault(entry[0], []).append(i)
            outputs_read.setdefault(entry[0], set()).add(entry[1])
    for head in graph['heads']:
        readers.setdefault(head[0], []).append(-1)
        outputs_read.setdefault(head[0], set()).add(head[1])
    params = dict(params)
    claimed = set()   # convolutions already rewritten (never fold twice into one)

    def is_var(entry):
        return nodes[entry[0]]['op'] == 'null'

    def only_reader(entry, reader):
        return readers.get(entry[0]) == [reader] and outputs_read.get(entry[0]) == {entry[1]}

    def targets(entry, reader):
        """[(conv index, first channel, channels)] a per-channel affine map on ``entry``
        can be pushed into, or None; ``reader`` is the node reading ``entry``."""
        i = entry[0]
        node = nodes[i]
        if entry[1] != 0 or not only_reader(entry, reader) or i in claimed:
            return None
        attrs = node.get('attrs', {})
        if node['op'] in _CONV_OPS:
            if attrs.get('layout', 'None') not in ('None', 'NCHW', 'NCW', 'NCDHW'):
                return None
            weights = node['inputs'][1:]
            if not all(is_var(e) and only_reader(e, i) for e in weights):
                return None
            return [(i, 0, int(attrs['num_filter']))]
        if node['op'] == 'Concat' and int(attrs.get('dim', 1)) == 1:
            out, offset = [], 0
            for e in node['inputs']:
                part = targets(e, i)
                if part is None:
                    return None
                out += [(c, offset + o, n) for c, o, n in part]
                offset += sum(n for _, _, n in part)
            return out
        if node['op'] == 'UpSampling' and attrs.get('sample_type', 'nearest') == 'nearest' \
                and len(node['inputs']) == 1:
            return targets(node['inputs'][0], i)
        return None

    def add_targets(entry, reader):
        """Like :func:`targets`, also through sums: [(targets, receives shift)]."""
        node = nodes[entry[0]]
        if node['op'] in _ADD_OPS and entry[1] == 0 and only_reader(entry, reader):
            parts = [targets(e, entry[0]) for e in node['inputs']]
            if any(p is None for p in parts):
                return None
            return [(p, k == 0) for k, p in enumerate(parts)]
        part = targets(entry, reader)
        return None if part is None else [(part, True)]

    def fold_into(conv_index, scale, shift):
        conv = nodes[conv_index]
        names = [nodes[e[0]]['name'] for e in conv['inputs'][1:]]
        weight = params[names[0]].astype(np.float64)
        channels = int(conv['attrs']['num_filter'])
        bias = params[names[1]].astype(np.float64) if len(names) > 1 else np.zeros(channels)
        if conv['op'] == 'Convolution':       # (out, in / g, k...)
            weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
        else:                                 # Deconvolution: (in, out / g, k...)
            groups = int(conv['attrs'].get('num_group', 1))
            shape = weight.shape
            grouped = weight.reshape((groups, shape[0] // groups, shape[1]) + shape[2:])
            grouped = grouped * scale.reshape((groups, 1, shape[1]) + (1,) * (len(shape) - 2))
            weight = grouped.reshape(shape)
        params[names[0]] = weight.astype(np.float32)
        bias_name = conv['name'] + '_folded_bias'
        params[bias_name] = (bias * scale + shift).astype(np.float32)
        if len(names) > 1:
            params.pop(names[1], None)
        claimed.add(conv_index)
        return bias_name

    folded_bn = {}     # BN node index -> its data entry (the BN is replaced by it)
    new_bias = {}      # conv index -> bias variable name
    for i, node in enumerate(nodes):
        if node['op'] not in _BN_OPS:
            continue
        attrs = node.get('attrs', {})
        stats = node['inputs'][1:]
        if int(attrs.get('axis', 1)) != 1 or outputs_read.get(i, {0}) != {0} or \
                len(stats) != 4 or not all(is_var(e) and only_reader(e, i) for e in stats):
            continue
        plan = add_targets(node['inputs'][0], i)
        if plan is None:
            continue
        gamma, beta, mean, var = (params[nodes[e[0]]['name']].astype(np.float64) for e in stats)
        if _flag(attrs.get('fix_gamma'), default=True):
            gamma = np.ones_like(gamma)
        scale = gamma / np.sqrt(var + float(attrs.get('eps', 1e-3)))
        shift = beta - mean * scale
        for part, with_shift in plan:
            for conv_index, first, channels in part:
                new_bias[conv_index] = fold_into(
                    conv_index, scale[first:first + channels],
                    shift[first:first + channels] if with_shift else np.zeros(channels))
        for e in stats:
            params.pop(nodes[e[0]]['name'], None)
        folded_bn[i] = node['inputs'][0]
    return _rebuild(graph, params, folded_bn, new_bias), params, len(folded_bn)


def _rebuild(graph, params, folded_bn, new_bias):
    """The node list without the folded BNs (and the variables nobody reads any more),
    with a bias variable per rewritten convolution and a ``relu`` where a folded BN
    carried one; unread parameters are removed from ``params`` in place."""
    nodes = graph['nodes']
    dropped = set()
    for i in folded_bn:
        dropped.update(e[0] for e in nodes[i]['inputs'][1:])
    for c in new_bias:
        dropped.update(e[0] for e in nodes[c]['inputs'][2:])
    out, index = [], {}

    def resolve(entry):
        target = index[entry[0]]
        if isinstance(target, tuple):       # a folded BN: read what replaced it
            return list(target[0])
        return [target, entry[1], 0]

    for i, node in enumerate(nodes):
        if i in dropped:
            continue
        if i in folded_bn:
            data = resolve(folded_bn[i])
            if node['op'] == '_contrib_BatchNormWithReLU':
                out.append({'op': 'Activation', 'name': node['name'] + '_relu',
                            'attrs': {'act_type': 'relu'}, 'inputs': [data]})
                data = [len(out) - 1, 0, 0]
            index[i] = (data,)
            continue
        if i in new_bias:     # data, weight, and the new bias (the old one is dropped)
            inputs = [resolve(e) for e in node['inputs'][:2]]
            out.append({'op': 'null', 'name': new_bias[i], 'inputs': []})
            inputs.append([len(out) - 1, 0, 0])
            node = dict(node, attrs=dict(node.get('attrs', {}), no_bias='False'))
        else:
            inputs = [resolve(e) for e in node['inputs']]
        out.append(dict(node, inputs=inputs))
        index[i] = len(out) - 1
    new_graph = with_nodes(graph, out, [resolve(h) for h in graph['heads']])
    kept = used_params(new_graph, params)
    for name in [k for k in params if k not in kept]:
        del params[name]
    return new_graph


def _slice_value(node, value, output):
    """numpy value of output ``output`` of a ``SliceChannel`` / ``slice_axis`` node."""
    attrs = node.get('attrs', {})
    if node['op'] in ('SliceChannel', 'split'):
        axis = int(attrs.get('axis', 1))
        part = np.split(value, int(attrs['num_outputs']), axis=axis)[output]
        return np.squeeze(part, axis) if _flag(attrs.get('squeeze_axis')) else part
    axis = int(attrs['axis'])
    end = attrs.get('end', 'None')
    index = [slice(None)] * value.ndim
    index[axis] = slice(int(attrs['begin']), None if end == 'None' else int(end))
    return value[tuple(index)]


def materialize_weight_slices(graph, params):
    """The graph with every convolution weight/bias that is a slice of a parameter
    (``split`` / ``slice_axis`` of a variable: MENet's per-group and aligned depthwise
    convolutions) read from a parameter of its own, so it can be folded; unread nodes
    are dropped. Returns (graph, params); neither input is modified."""
    nodes = graph['nodes']
    params = dict(params)
    replace = {}     # (conv index, input position) -> new variable name
    for i, node in enumerate(nodes):
        if node['op'] not in _CONV_OPS:
            continue
        for pos, entry in enumerate(node['inputs'][1:], start=1):
            src = nodes[entry[0]]
            if src['op'] in ('SliceChannel', 'split', 'slice_axis') and \
                    nodes[src['inputs'][0][0]]['op'] == 'null':
                name = '%s_%s' % (node['name'], 'weight' if pos == 1 else 'bias')
                params[name] = _slice_value(src, params[nodes[src['inputs'][0][0]]['name']],
                                            entry[1])
                replace[(i, pos)] = name
    if not replace:
        return graph, params
    return _replace_inputs(graph, params, replace)


def _replace_inputs(graph, params, replace):
    """The graph with input ``pos`` of node ``i`` read from a new variable
    ``replace[(i, pos)]`` (its value already in ``params``), unread nodes dropped;
    returns (graph, params of the variables it reads)."""
    nodes = graph['nodes']
    out, index = [], {}
    for i, node in enumerate(nodes):
        inputs = []
        for pos, entry in enumerate(node['inputs']):
            if (i, pos) in replace:
                out.append({'op': 'null', 'name': replace[(i, pos)], 'inputs': []})
                inputs.append([len(out) - 1, 0, 0])
            else:
                inputs.append([index[entry[0]], entry[1], 0])
        out.append(dict(node, inputs=inputs))
        index[i] = len(out) - 1
    heads = [[index[h[0]], h[1], 0] for h in graph['heads']]
    # keep only what the heads read
    live, stack = set(), [h[0] for h in heads]
    while stack:
        k = stack.pop()
        if k not in live:
            live.add(k)
            stack.extend(e[0] for e in out[k]['inputs'])
    keep = [k for k in range(len(out)) if k in live]
    remap = {k: j for j, k in enumerate(keep)}
    nodes = [dict(out[k], inputs=[[remap[e[0]], e[1], 0] for e in out[k]['inputs']])
             for k in keep]
    new_graph = with_nodes(graph, nodes, [[remap[h[0]], h[1], 0] for h in heads])
    return new_graph, used_params(new_graph, params)


# operators that compute a value from their inputs alone (no randomness, no state)
_CONSTANT_SAFE = ('Concat', 'concat', 'slice_axis', 'slice', 'SliceChannel', 'split', 'Reshape',
                  'reshape', 'transpose', 'expand_dims', 'zeros_like', 'ones_like', 'Flatten',
                  'broadcast_mul', 'broadcast_add', 'broadcast_sub', 'broadcast_div',
                  'elemwise_mul', 'elemwise_add', 'elemwise_sub', 'elemwise_div', '_mul_scalar',
                  '_plus_scalar',
                  '_minus_scalar', '_div_scalar', '_rdiv_scalar', 'sqrt', 'rsqrt', 'square',
                  '_zeros', '_ones', 'tile', 'repeat', 'Pad', 'pad', 'broadcast_to',
                  'broadcast_like', 'reshape_like', 'squeeze', 'Cast', 'cast', 'SwapAxis',
                  '_full', 'zeros', 'ones')
_SOURCES = ('_zeros', '_ones', '_full', 'zeros', 'ones')   # constants with no inputs


def fold_constants(graph, params, input_names):
    """The graph with every value computed from parameters alone (e.g. ScaleNet's weights
    padded with zero rows by a ``Concat`` in the graph, on every call) computed once and
    read from a new parameter; ``input_names``: the data variables. Returns
    (graph, params); neither input is modified."""
    import mxnet as mx
    nodes = graph['nodes']
    const = {}
    for i, node in enumerate(nodes):
        if node['op'] == 'null':
            const[i] = node['name'] not in input_names and node['name'] in params
        else:
            const[i] = (node['op'] in _CONSTANT_SAFE
                        and (bool(node['inputs']) or node['op'] in _SOURCES)
                        and all(const[e[0]] for e in node['inputs']))
    replace, values = {}, {}
    for i, node in enumerate(nodes):
        if const[i]:
            continue
        for pos, entry in enumerate(node['inputs']):
            if nodes[entry[0]]['op'] != 'null' and const[entry[0]]:
                key = (entry[0], entry[1])
                if key not in values:
                    sub = dict(graph, heads=[[entry[0], entry[1], 0]])
                    sub.pop('node_row_ptr', None)
                    sym = mx.sym.load_json(json.dumps(sub))
                    args = {n: mx.nd.array(params[n]) for n in
                            sym.list_arguments() + sym.list_auxiliary_states()}
                    values[key] = ('%s_const%d' % (nodes[entry[0]]['name'], entry[1]),
                                   sym.eval(ctx=mx.cpu(), **args)[0].asnumpy())
                replace[(i, pos)] = values[key][0]
    if not replace:
        return graph, params
    params = dict(params)
    params.update({name: value for name, value in values.values()})
    return _replace_inputs(graph, params, replace)
