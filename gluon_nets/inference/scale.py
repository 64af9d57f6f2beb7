"""Exact rewrites of multi-scale aggregation graphs (ScaleNet's SA blocks) for oneDNN.

A traced ScaleNet inference graph computes, per SA block::

    u -> branch i: [max-pool] -> conv2.i (width padded to 16) -> slice_axis(0, c_i)
                  -> [resize: nearest deconvolution of ones, or repeat/Pad/avg-pool chains
                      (bilinear)] -> Concat -> ReLU -> conv3 (1x1)

``slice_axis`` at odd widths and a ``Concat`` at channel offsets that are not multiples
of oneDNN's 16-channel block run as MXNet's own operators on the plain layout, with a
reorder out of and back into the blocked layout around each; the bilinear chains
(``repeat``, edge ``Pad``, average pooling, twice) are six plain-layout operators on
maps of 3x3 pixels. Two rewrites, both exact up to float32 summation order:

* :func:`aligned_branch_concat`: every branch keeps its zero-padded width (no
  ``slice_axis``), so every ``Concat`` offset is a multiple of 16; the padded channels
  are exactly 0 (zero filters, zero bias), and conv3 gets zero input columns at their
  positions (the ReLU between maps 0 to 0).
* :func:`small_resize_as_deconvolution`: a linear resize chain (``repeat`` / ``Pad`` /
  average ``Pooling``, what ScaleNet builds for bilinear resizes) from a map of at most
  ``max_pixels`` pixels, read from a stride-1 "same" convolution, becomes that
  convolution evaluated at every pixel as separate channels (one conv with a
  map-sized kernel and a 1x1 output, the same multiply-adds) followed by a grouped
  ``Deconvolution`` whose kernel is the resize's response to each input pixel (found
  by running the chain on one-hot maps). Two oneDNN operators instead of seven.
"""
import json

import numpy as np

from .graph import live_graph, used_params

__all__ = ['aligned_branch_concat', 'small_resize_as_deconvolution', 'one_pixel_convs_as_1x1']

_RESIZE_OPS = ('repeat', 'Pad', 'pad', 'Pooling')


def _up(value, multiple):
    return -(-value // multiple) * multiple


class _Graph:
    """A Symbol JSON node list being edited: nodes are appended, and a node's readers
    are redirected with :meth:`alias`; :meth:`dump` writes the live nodes in
    topological order."""

    def __init__(self, graph):
        self.graph = graph
        self.nodes = [dict(n, attrs=dict(n.get('attrs', {})), inputs=[list(e) for e in n['inputs']])
                      for n in graph['nodes']]
        self.aliases = {}
        self.readers = {}
        for i, node in enumerate(self.nodes):
            for e in node['inputs']:
                self.readers.setdefault(e[0], []).append(i)
        self.heads = {h[0] for h in graph['heads']}

    def only_reader(self, i):
        """The node reading node ``i`` (output 0) when exactly one does, else None."""
        readers = self.readers.get(i, [])
        if len(readers) != 1 or i in self.heads:
            return None
        node = self.nodes[readers[0]]
        if sum(1 for e in node['inputs'] if e[0] == i) != 1:
            return None
        return readers[0]

    def add(self, node):
        self.nodes.append(node)
        return len(self.nodes) - 1

    def variable(self, name):
        return self.add({'op': 'null', 'name': name, 'inputs': []})

    def alias(self, i, j):
        """Readers of node ``i`` read node ``j`` instead."""
        self.aliases[i] = j

    def _resolve(self, entry):
        k = entry[0]
        while k in self.aliases:
            k = self.aliases[k]
        return k, entry[1]

    def dump(self, params):
        new_graph = live_graph(self.graph, self.nodes, self.graph['heads'], self._resolve)
        return new_graph, used_params(new_graph, params)


def _int(attrs, key, default):
    return int(attrs.get(key, default))


def _tuple(attrs, key, default):
    value = attrs.get(key)
    if value in (None, 'None', '()'):
        return default
    return tuple(int(v) for v in value.strip('()[] ').split(',') if v.strip())


def _own_param(g, params, entry):
    node = g.nodes[entry[0]]
    return node['op'] == 'null' and node['name'] in params and len(g.readers.get(entry[0], [])) == 1


def _plain_conv(g, params, i):
    """Convolution ``i`` is ungrouped, NCHW, undilated, with weight (and bias) that are
    parameters of its own."""
    node = g.nodes[i]
    attrs = node['attrs']
    return (node['op'] == 'Convolution' and _int(attrs, 'num_group', 1) == 1
            and attrs.get('layout', 'None') in ('None', 'NCHW')
            and _tuple(attrs, 'dilate', (1, 1)) in ((1, 1), ())
            and len(_tuple(attrs, 'kernel', ())) == 2
            and all(_own_param(g, params, e) for e in node['inputs'][1:]))


def _ones_deconv(g, params, i):
    node = g.nodes[i]
    return (node['op'] == 'Deconvolution' and node['name'].endswith('_as_deconv')
            and _own_param(g, params, node['inputs'][1]) and len(node['inputs']) == 2)


def _resize_op(node):
    if node['op'] == 'Pooling':
        attrs = node['attrs']
        return attrs.get('pool_type', 'max') in ('avg', 'max') and \
            not attrs.get('global_pool', 'False') in ('True', 'true', '1')
    if node['op'] in ('Pad', 'pad'):
        return node['attrs'].get('mode', 'constant') == 'edge' or \
            float(node['attrs'].get('constant_value', 0)) == 0
    return node['op'] == 'repeat' and _int(node['attrs'], 'axis', -1) in (2, 3)


def aligned_branch_concat(graph, params, multiple=16, relu_into_branches=True):
    """The graph with every ``Concat -> ReLU -> Convolution`` whose inputs are branch
    convolutions (each optionally sliced to its first channels and resized by
    channel-wise operators) rewritten so that every branch keeps a width that is a
    multiple of ``multiple``: the extra channels have zero filters and zero bias, so
    they are 0 through the resize, the concat and the ReLU, and the reading convolution
    gets zero input columns there. With ``relu_into_branches`` the ReLU after the concat
    moves into each branch, right after its convolution where the resize commutes with
    it (nearest copies, max pools, repeats and pads pick values: relu(max) = max(relu)),
    so that oneDNN fuses it into the convolution, else right before the concat.
    Returns (graph, params, rewritten concats); neither input is modified."""
    g = _Graph(graph)
    params = dict(params)
    count = 0
    for ci in range(len(graph['nodes'])):
        concat = g.nodes[ci]
        if concat['op'] not in ('Concat', 'concat') or _int(concat['attrs'], 'dim', 1) != 1:
            continue
        relu = g.only_reader(ci)
        if relu is None or not (g.nodes[relu]['op'] == 'relu' or (
                g.nodes[relu]['op'] == 'Activation'
                and g.nodes[relu]['attrs'].get('act_type') == 'relu')):
            continue
        reader = g.only_reader(relu)
        if reader is None or not _plain_conv(g, params, reader) or \
                g.nodes[reader]['inputs'][0][0] != relu:
            continue
        branches = []
        for entry in concat['inputs']:
            branch = _branch(g, params, entry, ci)
            if branch is None:
                break
            branches.append(branch)
        else:
            old_widths = [b['width'] for b in branches]
            new_widths = [_up(b['channels'], multiple) for b in branches]
            if old_widths == new_widths and all(b['slice'] is None for b in branches):
                continue
            w3name = g.nodes[g.nodes[reader]['inputs'][1][0]]['name']
            w3 = params[w3name]
            if w3.shape[1] != sum(old_widths):
                continue
            new_w3 = np.zeros((w3.shape[0], sum(new_widths)) + w3.shape[2:], np.float32)
            old_at = new_at = 0
            for b, old, new in zip(branches, old_widths, new_widths):
                c = b['channels']
                new_w3[:, new_at:new_at + c] = w3[:, old_at:old_at + c]
                old_at += old
                new_at += new
                _widen_branch(g, params, b, new)
            params[w3name] = new_w3
            _set_shape(g, reader, 1, new_w3.shape)
            if relu_into_branches:
                for position, b in enumerate(branches):
                    _relu_into_branch(g, b, ci, position)
                g.alias(relu, ci)
            count += 1
    if not count:
        return graph, params, 0
    new_graph, params = g.dump(params)
    return new_graph, params, count


def _branch(g, params, entry, concat):
    """{'conv', 'slice', 'ones', 'channels', 'width'} of the branch feeding ``entry`` of
    the concat, or None when it is not conv [-> slice_axis(0, c)] -> channel-wise ops."""
    if entry[1] != 0:
        return None
    k, ones, prev = entry[0], [], concat
    while True:
        if g.only_reader(k) != prev:
            return None
        node = g.nodes[k]
        if _ones_deconv(g, params, k):
            ones.append(k)
        elif not _resize_op(node):
            break
        prev, k = k, node['inputs'][0][0]
        if node['inputs'][0][1] != 0:
            return None
    sliced = None
    node = g.nodes[k]
    if node['op'] == 'slice_axis':
        attrs = node['attrs']
        if _int(attrs, 'axis', 0) != 1 or _int(attrs, 'begin', 0) != 0 or \
                attrs.get('end', 'None') == 'None' or node['inputs'][0][1] != 0:
            return None
        sliced, prev, k = k, k, node['inputs'][0][0]
        if g.only_reader(k) != prev:
            return None
    if not _plain_conv(g, params, k):
        return None
    filters = _int(g.nodes[k]['attrs'], 'num_filter', 0)
    channels = _int(g.nodes[sliced]['attrs'], 'end', 0) if sliced is not None else filters
    if not 0 < channels <= filters:
        return None
    return {'conv': k, 'slice': sliced, 'ones': ones, 'channels': channels,
            'width': channels}


def _commutes_with_relu(g, k):
    node = g.nodes[k]
    if node['op'] == 'Pooling':
        return node['attrs'].get('pool_type', 'max') == 'max'
    if node['op'] in ('Pad', 'pad'):
        return node['attrs'].get('mode', 'constant') == 'edge' or \
            float(node['attrs'].get('constant_value', 0)) == 0
    return node['op'] in ('repeat', 'Deconvolution')    # ones deconvolutions only here


def _relu_into_branch(g, branch, concat, position):
    """A ReLU on the branch feeding input ``position`` of ``concat``: after its conv
    when every op on the way commutes with ReLU, else just before the concat."""
    entry = g.nodes[concat]['inputs'][position]
    chain, k = [], entry[0]
    while k != branch['conv']:
        chain.append(k)
        k = g.nodes[k]['inputs'][0][0]
    chain = [k for k in chain if k != branch['slice']]
    after = branch['conv'] if all(_commutes_with_relu(g, k) for k in chain) else entry[0]
    relu = g.add({'op': 'Activation', 'name': g.nodes[after]['name'] + '_branch_relu',
                  'attrs': {'act_type': 'relu'}, 'inputs': [[after, 0, 0]]})
    reader = chain[-1] if after == branch['conv'] and chain else concat
    if reader == concat:
        g.nodes[concat]['inputs'][position] = [relu, 0, 0]
    else:
        for e in g.nodes[reader]['inputs'][:1]:
            if e[0] in (after, branch['slice']):
                e[0] = relu


def _set_shape(g, node_index, position, shape):
    var = g.nodes[g.nodes[node_index]['inputs'][position][0]]
    if '__shape__' in var.get('attrs', {}):
        var['attrs']['__shape__'] = str(tuple(shape))


def _widen_branch(g, params, branch, width):
    """Branch conv with ``width`` filters (zeros past its channels), no slice, and
    ones-deconvolutions of that width."""
    conv = g.nodes[branch['conv']]
    c = branch['channels']
    wname = g.nodes[conv['inputs'][1][0]]['name']
    weight = params[wname]
    new = np.zeros((width,) + weight.shape[1:], np.float32)
    new[:c] = weight[:c]
    params[wname] = new
    _set_shape(g, branch['conv'], 1, new.shape)
    if len(conv['inputs']) > 2 and conv['attrs'].get('no_bias', 'False') not in ('True', 'true', '1'):
        bname = g.nodes[conv['inputs'][2][0]]['name']
        bias = np.zeros(width, np.float32)
        bias[:c] = params[bname][:c]
        params[bname] = bias
        _set_shape(g, branch['conv'], 2, bias.shape)
    conv['attrs']['num_filter'] = str(width)
    if branch['slice'] is not None:
        g.alias(branch['slice'], branch['conv'])
    for k in branch['ones']:
        node = g.nodes[k]
        wname = g.nodes[node['inputs'][1][0]]['name']
        params[wname] = np.ones((width,) + params[wname].shape[1:], np.float32)
        _set_shape(g, k, 1, params[wname].shape)
        node['attrs']['num_filter'] = node['attrs']['num_group'] = str(width)


def _data_shape(g, shapes, node, input_name, input_shape):
    """Shape of ``node``'s first input (the graph input itself included)."""
    source = g.nodes[node['inputs'][0][0]]
    if source['op'] == 'null':
        return tuple(input_shape) if source['name'] == input_name else None
    return shapes.get(source['name']) if node['inputs'][0][1] == 0 else None


def _chain_response(g, chain, pixels_shape):
    """The output of the resize ops ``chain`` (node indices, first applied first) for
    each one-hot input map of ``pixels_shape`` = (p, q): array (p*q, H, W)."""
    import mxnet as mx
    p, q = pixels_shape
    nodes = [{'op': 'null', 'name': 'data', 'inputs': []}]
    for k in chain:
        node = g.nodes[k]
        nodes.append({'op': node['op'], 'name': node['name'], 'attrs': node['attrs'],
                      'inputs': [[len(nodes) - 1, 0, 0]]})
    sym = mx.sym.load_json(json.dumps({'nodes': nodes, 'arg_nodes': [0],
                                       'heads': [[len(nodes) - 1, 0, 0]], 'attrs': {}}))
    basis = np.eye(p * q, dtype=np.float32).reshape(p * q, 1, p, q)
    out = sym.eval(ctx=mx.cpu(), data=mx.nd.array(basis))[0].asnumpy()
    return out[:, 0]


def small_resize_as_deconvolution(graph, params, input_name, input_shape, max_pixels=16):
    """The graph with every chain of ``repeat`` / ``Pad`` / average ``Pooling`` that
    resizes the output of a stride-1 'same' convolution (its only reader) from a map of
    at most ``max_pixels`` pixels (ScaleNet's bilinear 3x3 -> 7x7 and 3x3 -> 14x14)
    rewritten as two oneDNN operators:

    * a grouped convolution with one-hot kernels of the map's size (one group per
      channel): output channel (f, pixel) is the input channel f at that pixel, a 1x1
      map (exact: one product by 1.0, the rest by 0);
    * a ``Deconvolution`` with one group per channel, kernel = the output map, whose
      weight for (f, pixel) is the chain's response to a one-hot map at that pixel
      (found by running the chain itself; the chain is linear, so this is the same
      map up to float32 summation order).

    Tried and slower (bench in docs/scalenet.md): folding the one-hot step into the
    convolution (its weights grow by the pixel count: memory-bound at batch 1), and a
    grouped convolution with the flipped kernel instead of the deconvolution (2x slower
    net). Only chains that are linear in the input (repeats, edge or zero pads, average
    pools) are taken. Returns (graph, params, rewritten chains); neither input is
    modified."""
    from .rewrites import output_shapes
    g = _Graph(graph)
    params = dict(params)
    shapes = None
    count = 0
    for ci in range(len(graph['nodes'])):
        if not _plain_conv(g, params, ci):
            continue
        chain, k = [], ci
        while True:
            nxt = g.only_reader(k)
            if nxt is None or g.nodes[nxt]['inputs'][0][:2] != [k, 0] \
                    or not _resize_op(g.nodes[nxt]) or \
                    g.nodes[nxt]['op'] == 'Pooling' and g.nodes[nxt]['attrs'].get('pool_type') != 'avg':
                break
            chain.append(nxt)
            k = nxt
        if not any(g.nodes[k]['op'] == 'Pooling' for k in chain):
            continue
        conv = g.nodes[ci]
        attrs = conv['attrs']
        kernel = _tuple(attrs, 'kernel', ())
        pad = _tuple(attrs, 'pad', (0, 0))
        if _tuple(attrs, 'stride', (1, 1)) not in ((1, 1), ()) or \
                any(p != kk // 2 or kk % 2 == 0 for p, kk in zip(pad, kernel)):
            continue
        if shapes is None:
            shapes = output_shapes(graph, input_name, input_shape, params)
        in_shape = _data_shape(g, shapes, conv, input_name, input_shape)
        out_shape = shapes.get(g.nodes[chain[-1]]['name'])
        if in_shape is None or out_shape is None or len(in_shape) != 4:
            continue
        p, q = int(in_shape[2]), int(in_shape[3])
        if p * q > max_pixels:
            continue
        response = _chain_response(g, chain, (p, q))        # (p*q, H, W)
        filters = _int(attrs, 'num_filter', 0)
        pixels = p * q
        height, width = int(out_shape[2]), int(out_shape[3])
        # one-hot grouped conv: channel (f, pixel) = the conv's output f at that pixel
        oname = conv['name'] + '_pixels_weight'
        params[oname] = np.tile(np.eye(pixels, dtype=np.float32).reshape(pixels, 1, p, q),
                                (filters, 1, 1, 1))
        pixel_conv = g.add({'op': 'Convolution', 'name': conv['name'] + '_pixels',
                            'inputs': [[ci, 0, 0], [g.variable(oname), 0, 0]],
                            'attrs': {'kernel': '(%d, %d)' % (p, q),
                                      'num_filter': str(filters * pixels),
                                      'num_group': str(filters), 'no_bias': 'True'}})
        # grouped deconvolution of the 1x1 map: each pixel spreads its response
        dname = conv['name'] + '_resize_weight'
        params[dname] = np.tile(response[None], (filters, 1, 1, 1)).reshape(
            filters * pixels, 1, height, width).astype(np.float32)
        deconv = g.add({'op': 'Deconvolution', 'name': conv['name'] + '_resize',
                        'inputs': [[pixel_conv, 0, 0], [g.variable(dname), 0, 0]],
                        'attrs': {'kernel': '(%d, %d)' % (height, width),
                                  'num_filter': str(filters), 'num_group': str(filters),
                                  'no_bias': 'True'}})
        g.alias(chain[-1], deconv)
        count += 1
    if not count:
        return graph, params, 0
    new_graph, params = g.dump(params)
    return new_graph, params, count


def one_pixel_convs_as_1x1(graph, params, input_name, input_shape):
    """The graph with every 'same' convolution (odd kernel, padding kernel // 2,
    stride 1) that runs on a 1x1 map (ScaleNet's last stage: a 3x3 branch conv after a
    4x4 max-pool of a 7x7 map) as a 1x1 convolution with the kernel's centre tap: the
    other taps only ever see padding. Same numbers (the dropped products are all
    ``w * 0``), 1 / k^2 of the weight to read. Returns (graph, params, count); neither
    input is modified."""
    from .rewrites import output_shapes
    g = _Graph(graph)
    params = dict(params)
    shapes = None
    count = 0
    for ci in range(len(graph['nodes'])):
        if not _plain_conv(g, params, ci):
            continue
        attrs = g.nodes[ci]['attrs']
        kernel = _tuple(attrs, 'kernel', ())
        if kernel == (1, 1) or any(k % 2 == 0 for k in kernel) or \
                _tuple(attrs, 'stride', (1, 1)) not in ((1, 1), ()) or \
                _tuple(attrs, 'pad', (0, 0)) != tuple(k // 2 for k in kernel):
            continue
        if shapes is None:
            shapes = output_shapes(graph, input_name, input_shape, params)
        in_shape = _data_shape(g, shapes, g.nodes[ci], input_name, input_shape)
        if in_shape is None or len(in_shape) != 4 or tuple(in_shape[2:]) != (1, 1):
            continue
        wname = g.nodes[g.nodes[ci]['inputs'][1][0]]['name']
        rh, rw = kernel[0] // 2, kernel[1] // 2
        params[wname] = np.ascontiguousarray(params[wname][:, :, rh:rh + 1, rw:rw + 1])
        _set_shape(g, ci, 1, params[wname].shape)
        attrs['kernel'], attrs['pad'] = '(1, 1)', '(0, 0)'
        count += 1
    if not count:
        return graph, params, 0
    new_graph, params = g.dump(params)
    return new_graph, params, count
