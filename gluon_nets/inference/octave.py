"""Exact rewrites of traced OctConv inference graphs (Symbol JSON) for oneDNN.

:func:`gluon_nets.inference.optimize` runs them (:func:`octave_rewrites`) on OctConv
graphs after BatchNorm folding and the generic rewrites of :mod:`.rewrites`. They look
for graph patterns, not for OctConv blocks, and change at most the order in which the
same products are summed:

``shared_subexpressions``
    A deterministic operator with the same inputs and attributes as an earlier one is
    read from that one (a stride-2 octave bottleneck pools its input ``x_high`` 2x2 for
    ``conv1``'s h->l path and again for its shortcut ``conv4``).
``merged_sums``
    A tree of sums containing convolutions is rewritten ``conv + (the rest)``, with the
    convolutions of one kind merged into one over their concatenated inputs:
    ``(h2h + upsample(l2h)) + x`` -> ``h2h + (upsample(l2h) + x)``, a projection
    block's ``(conv3.h2h + upsample(l2h)) + conv4.h`` -> ``conv([a, x'], [W3 | W4]) +
    upsample(l2h)``. MXNet 1.9.1's oneDNN partitioner mixes up the inputs of fused
    convolutions when a convolution is summed with a sum that is itself a fused
    conv + sum ("Shape inconsistent" on an unrelated convolution), so ``optimize``
    turned such sums into ``broadcast_add`` (not fused, plain layout: a reorder on each
    side); in the rewritten form every residual sum and its ReLU fuse into a
    convolution and no fused sum reads another one.
``upsampling_before_pointwise``
    ``upsample(conv1x1(x_l))`` -> ``conv1x1(upsample(x_l))`` for narrow low parts
    (<= 32 channels), so that ``merged_sums`` runs l->h and h->h as one convolution
    over ``[x_h, upsample(x_l)]``.

Each function takes and returns ``(graph, params, count)`` and modifies neither input.
"""
import json

import numpy as np

from .graph import live_graph

__all__ = ['shared_subexpressions', 'merged_sums', 'octave_rewrites']

_SUMS = ('elemwise_add', '_Plus', '_plus')


class _Graph(object):
    """A Symbol JSON as nodes keyed by an id (the traced index; names need not be
    unique), inputs as ``(id, output)``; emitted again in a topological order by
    :meth:`to_json` (only the nodes the heads reach)."""

    def __init__(self, graph):
        nodes = graph['nodes']
        self.extra = {k: v for k, v in graph.items()
                      if k not in ('nodes', 'arg_nodes', 'heads', 'node_row_ptr')}
        self.nodes = {i: dict(node, inputs=[(e[0], e[1]) for e in node['inputs']])
                      for i, node in enumerate(nodes)}
        self.order = list(range(len(nodes)))
        self.names = {node['name'] for node in nodes}
        self.heads = [(h[0], h[1]) for h in graph['heads']]

    def add(self, node):
        """Add ``node`` (inputs as ids); returns its id."""
        key = len(self.order)
        self.order.append(key)
        self.nodes[key] = node
        self.names.add(node['name'])
        return key

    def readers(self):
        """{id: [(reader id, input position)]}; a head counts as reader ``None``."""
        out = {key: [] for key in self.nodes}
        for key, node in self.nodes.items():
            for pos, (src, _) in enumerate(node['inputs']):
                out[src].append((key, pos))
        for src, _ in self.heads:
            out[src].append((None, None))
        return out

    def new_name(self, base):
        name, k = base, 0
        while name in self.names:
            k += 1
            name = '%s%d' % (base, k)
        return name

    def to_json(self):
        return live_graph(self.extra, self.nodes, self.heads)


# deterministic operators whose result depends on their inputs and attributes alone
_PURE = ('Pooling', 'Activation', 'Concat', 'concat', 'Flatten', 'Reshape', 'UpSampling',
         'Convolution', 'Deconvolution', 'elemwise_add', 'broadcast_add', 'relu', 'clip')


def shared_subexpressions(graph, params):
    """The graph with every deterministic operator that has the same op, attributes and
    inputs as an earlier one read from that one instead (exact: the same computation)."""
    g = _Graph(graph)
    seen, alias, count = {}, {}, 0
    for key in g.order:
        node = g.nodes[key]
        node['inputs'] = [(alias.get(s, s), o) for s, o in node['inputs']]
        if node['op'] not in _PURE or not node['inputs']:
            continue
        sig = (node['op'], json.dumps(node.get('attrs', {}), sort_keys=True),
               tuple(node['inputs']))
        if sig in seen:
            alias[key] = seen[sig]
            count += 1
        else:
            seen[sig] = key
    if not count:
        return graph, params, 0
    g.heads = [(alias.get(s, s), o) for s, o in g.heads]
    for key in alias:
        del g.nodes[key]
    return g.to_json(), params, count


def _conv_key(node):
    """What two convolutions must share to run as one over concatenated inputs."""
    attrs = node.get('attrs', {})
    if int(attrs.get('num_group', 1)) != 1 or attrs.get('layout', 'None') not in ('None', 'NCHW'):
        return None
    return tuple(attrs.get(k, d) for k, d in (
        ('kernel', None), ('stride', '(1, 1)'), ('pad', '(0, 0)'), ('dilate', '(1, 1)'),
        ('num_filter', None)))


def merged_sums(graph, params, input_name=None, input_shape=None):
    """Every sum of convolutions and other maps (a tree of two-input sums, each read once)
    rewritten as ``conv + (rest)``: convolutions of the same kernel, stride, padding and
    width over inputs of the same size become ONE convolution over their concatenated
    inputs (weights concatenated along the input axis, biases added; the same
    multiply-adds), and that convolution is summed last, so that oneDNN fuses the whole
    sum (+ ReLU) into it. OctConv: ``(h2h + upsample(l2h)) + x`` ->
    ``h2h + (upsample(l2h) + x)``; a projection block's ``(conv3.h2h + upsample(l2h)) +
    conv4.h`` -> ``conv([a, x'], [W3 | W4]) + upsample(l2h)``, its low part
    ``conv3.l + conv4.l`` -> one convolution.

    Why: MXNet 1.9.1's oneDNN partitioner mixes up the inputs of fused convolutions when
    a convolution is summed with a sum that is itself a fused conv + sum, so ``optimize``
    turned such sums into ``broadcast_add`` (not fused, plain layout: a reorder on each
    side); in the rewritten form no fused sum reads another one. A sum of convolutions
    that cannot run as one is left as traced.
    Returns (graph, params, rewritten sums).
    """
    from .rewrites import output_shapes
    g = _Graph(graph)
    readers = g.readers()
    shapes = output_shapes(graph, input_name, input_shape, params)

    names = [node['name'] for node in graph['nodes']]
    twice = {n for n in names if names.count(n) > 1} if len(set(names)) < len(names) else set()

    def shape_of(entry):     # shapes are by name: a name used twice has no known shape
        name = g.nodes[entry[0]]['name']
        if name == input_name and g.nodes[entry[0]]['op'] == 'null':
            return tuple(input_shape)
        return shapes.get(name) if entry[1] == 0 and name not in twice else None

    def is_sum(key):
        node = g.nodes[key]
        return node['op'] in _SUMS and len(node['inputs']) == 2

    def single(entry):
        return entry[1] == 0 and len(readers[entry[0]]) == 1

    def own_params(node):
        return all(g.nodes[s]['op'] == 'null' and g.nodes[s]['name'] in params
                   and len(readers[s]) == 1 for s, _ in node['inputs'][1:])

    def tree(key):
        """(leaf entries, sum nodes) of the sum tree rooted at ``key``."""
        terms, sums = [], [key]
        for entry in g.nodes[key]['inputs']:
            if is_sum(entry[0]) and single(entry):
                more, inner = tree(entry[0])
                terms.extend(more)
                sums.extend(inner)
            else:
                terms.append(entry)
        return terms, sums

    roots = [n for n in g.order if is_sum(n) and not (
        len(readers[n]) == 1 and readers[n][0][0] is not None and is_sum(readers[n][0][0]))]
    params = dict(params)
    count = 0
    for root in roots:
        terms, sums = tree(root)
        convs = [t for t in terms if g.nodes[t[0]]['op'] == 'Convolution']
        if len(terms) == 2 and len(convs) < 2 or not convs:
            continue     # conv + x: oneDNN fuses it as it is
        keys = set()
        for t in convs:
            node = g.nodes[t[0]]
            in_shape = shape_of(node['inputs'][0])
            if single(t) and own_params(node) and _conv_key(node) and in_shape:
                keys.add(_conv_key(node) + tuple(in_shape[2:]))
            else:
                keys.add(t)
        if len(keys) != 1:
            continue     # different convolutions: left as traced
        conv = _merge_convs(g, params, convs, single) if len(convs) > 1 else convs[0]
        others = [t for t in terms if t not in convs]
        if not others:   # only convolutions: the root becomes the merged one
            g.nodes[root] = dict(g.nodes[conv[0]], name=g.nodes[root]['name'])
            del g.nodes[conv[0]]
            for extra in sums[1:]:
                del g.nodes[extra]
            count += 1
            continue
        # conv + (the other terms summed left to right), reusing the tree's sum nodes
        spare = sums[1:]
        acc = others[0]
        for term in others[1:]:
            node = spare.pop()
            g.nodes[node]['inputs'] = [acc, term]
            acc = (node, 0)
        g.nodes[root]['inputs'] = [conv, acc]
        for extra in spare:
            del g.nodes[extra]
        count += 1
    if not count:
        return graph, params, 0
    return g.to_json(), params, count


def _merge_convs(g, params, convs, single):
    """Replace the convolutions ``convs`` (entries; same attributes, inputs of the same
    size) by one over the concatenation of their inputs (a Concat read by one of them
    alone is spliced in); returns its entry. Edits ``g`` and ``params`` in place."""
    first = g.nodes[convs[0][0]]
    pieces, weights, biases = [], [], []
    for t in convs:
        node = g.nodes[t[0]]
        src = node['inputs'][0]
        src_node = g.nodes[src[0]]
        if src_node['op'] in ('Concat', 'concat') and single(src) and \
                int(src_node.get('attrs', {}).get('dim', 1)) == 1:
            pieces.extend(src_node['inputs'])
            del g.nodes[src[0]]
        else:
            pieces.append(src)
        weights.append(params.pop(g.nodes[node['inputs'][1][0]]['name']))
        del g.nodes[node['inputs'][1][0]]
        if len(node['inputs']) > 2:
            biases.append(params.pop(g.nodes[node['inputs'][2][0]]['name']))
            del g.nodes[node['inputs'][2][0]]
        if t is not convs[0]:
            del g.nodes[t[0]]
    name = first['name']
    cat = g.add({'op': 'Concat', 'name': g.new_name(name + '_merged_concat'), 'inputs': pieces,
                 'attrs': {'dim': '1', 'num_args': str(len(pieces))}})
    wname = g.new_name(name + '_merged_weight')
    params[wname] = np.ascontiguousarray(np.concatenate(weights, axis=1), np.float32)
    inputs = [(cat, 0), (g.add({'op': 'null', 'name': wname, 'inputs': []}), 0)]
    attrs = dict(first.get('attrs', {}))
    if biases:
        bname = g.new_name(name + '_merged_bias')
        params[bname] = np.sum(np.stack(biases), axis=0, dtype=np.float64).astype(np.float32)
        inputs.append((g.add({'op': 'null', 'name': bname, 'inputs': []}), 0))
        attrs['no_bias'] = 'False'
    else:
        attrs['no_bias'] = 'True'
    g.nodes[convs[0][0]] = dict(first, inputs=inputs, attrs=attrs)
    return convs[0]


def octave_rewrites(graph, params, input_name, input_shape):
    """All rewrites of this module in order: (graph, params, {rewrite: count})."""
    counts = {}
    graph, params, counts['shared_subexpressions'] = shared_subexpressions(graph, params)
    graph, params, counts['upsampling_before_pointwise'] = upsampling_before_pointwise(
        graph, params)
    graph, params, counts['merged_sums'] = merged_sums(graph, params, input_name, input_shape)
    return graph, params, counts


def upsampling_before_pointwise(graph, params, max_channels=32):
    """``upsample_x2(conv1x1(b))`` -> ``conv1x1(upsample_x2(b))`` where ``b`` has at most
    ``max_channels`` channels (the upsampling is the depthwise deconvolution of ones that
    :func:`.rewrites.upsampling_as_deconvolution` made). A 1x1 convolution and a nearest
    upsampling commute exactly (every output pixel is the same dot product), so the
    l->h convolution of an octave layer then runs at the high resolution beside h->h,
    and :func:`merged_sums` merges the two into one convolution over ``[x_h, up(x_l)]``:
    no separate l->h convolution (with 16 input channels oneDNN runs it at 4-15
    GMAC/s), no upsampling of its wide output, no extra sum; it costs 4x the l->h
    multiply-adds, which is why only narrow low parts qualify."""
    g = _Graph(graph)
    readers = g.readers()
    params = dict(params)
    count = 0
    for key in list(g.order):
        node = g.nodes.get(key)
        if node is None or node['op'] != 'Deconvolution' or \
                not node['name'].endswith('_as_deconv') or len(node['inputs']) != 2:
            continue
        src = node['inputs'][0]
        conv = g.nodes[src[0]]
        attrs = conv.get('attrs', {})
        if conv['op'] != 'Convolution' or src[1] != 0 or len(readers[src[0]]) != 1 or \
                _conv_key(conv) is None or attrs.get('kernel') not in ('(1, 1)', '(1,1)') or \
                attrs.get('stride', '(1, 1)') not in ('(1, 1)', '(1,1)') or \
                attrs.get('pad', '(0, 0)') not in ('(0, 0)', '(0,0)'):
            continue
        wkey = conv['inputs'][1][0]
        if g.nodes[wkey]['op'] != 'null' or g.nodes[wkey]['name'] not in params:
            continue
        cin = params[g.nodes[wkey]['name']].shape[1]
        ones_key = node['inputs'][1][0]
        if cin > max_channels or len(readers[ones_key]) != 1:
            continue
        ones = params[g.nodes[ones_key]['name']]
        params[g.nodes[ones_key]['name']] = np.ones((cin,) + ones.shape[1:], np.float32)
        dattrs = dict(node['attrs'], num_filter=str(cin), num_group=str(cin))
        g.nodes[src[0]] = dict(node, attrs=dattrs, inputs=[conv['inputs'][0], (ones_key, 0)])
        g.nodes[key] = dict(conv, inputs=[src] + conv['inputs'][1:])
        count += 1
    if not count:
        return graph, params, 0
    return g.to_json(), params, count

