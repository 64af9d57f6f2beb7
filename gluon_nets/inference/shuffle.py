"""Exact graph rewrites for channel-shuffle nets (ShuffleNet v1, MENet) on oneDNN.

A traced ShuffleNet/MENet unit is, after BatchNorm folding, a chain of small operators
that MXNet runs on the plain NCHW layout, each costing a dispatch (~10-30 us at batch 1)
and, around oneDNN convolutions, a layout reorder (``bench/profile_kernels.py``):

* the channel shuffle ``Reshape(0, -4, g, -1, -2) -> SwapAxis(1, 2) -> Reshape(0, -3, -2)``;
* MENet's / ShuffleNet's grouped 1x1 convolutions written per group (``split`` -> g dense convolutions
  -> ``Concat``) and its depthwise convolutions split at the 16-channel boundary
  (``slice_axis`` x 2 -> 2 convolutions -> ``Concat``): kernel-choice workarounds;
* ``concat_channels``' ``expand_dims`` -> 5-D ``Concat`` -> ``Reshape`` (a training
  workaround for oneDNN's concat backward).

The rewrites here remove them without changing the function (exact up to float32
summation order; ``optimize`` checks <= 1e-5):

* :func:`merge_channel_splits`: convolutions of consecutive channel slices of one tensor,
  concatenated, become one convolution (depthwise, or grouped for per-group dense ones);
* :func:`fold_channel_shuffle`: a shuffle whose input is a convolution (through ReLU)
  read by nothing else is folded into that convolution's output rows: out[s] = in[p(s)],
  so the convolution's weight and bias rows are permuted; a grouped convolution becomes
  one dense convolution with the block-diagonal weight, rows permuted (g times the
  multiply-adds of that convolution, no data movement, one operator instead of four);
* :func:`plain_channel_concats`: the 5-D concat pattern back to one 4-D ``Concat``;
* :func:`unaligned_concat_as_sum`: a concat of a dense convolution's output and other
  maps at offsets off oneDNN's 16-channel blocks (ShuffleNet's 216 + 24) as the
  widened convolution plus 0/1 placement convolutions (a sum, fused into the conv);
* :func:`split_unaligned_depthwise` (after channel padding): the depthwise convolutions
  that stayed at widths like 57 split at 16 channels again, as MENet's model does.

All work on the Symbol JSON (``json.loads(sym.tojson())``) and a {name: numpy array}
parameter dict, and return new ones (the inputs are not modified) plus a count.
"""
import copy

import numpy as np

from .graph import live_graph, used_params

__all__ = ['merge_channel_splits', 'fold_channel_shuffle', 'plain_channel_concats',
           'shuffle_permutation', 'pointwise_form', 'split_unaligned_depthwise',
           'unaligned_concat_as_sum', 'shuffle_rewrites']

_CONCATS = ('Concat', 'concat')
_SPLITS = ('SliceChannel', 'split')
_RESHAPES = ('Reshape', 'reshape')


def _attrs(node):
    return node.get('attrs', {})


def _int(node, key, default):
    return int(_attrs(node).get(key, default))


def _shape_attr(node):
    """The ``shape`` attribute of a Reshape as a tuple of ints ('(0, -3, -2)' -> (0, -3, -2))."""
    text = _attrs(node).get('shape', '()').strip('()[] ')
    return tuple(int(v) for v in text.split(',') if v.strip())


def shuffle_permutation(channels, groups):
    """p with shuffle(x)[:, s] = x[:, p[s]] for ShuffleNet's channel shuffle of ``groups``:
    the (groups, channels / groups) channel grid transposed."""
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


class _Graph:
    """A mutable view of a Symbol JSON graph: nodes by index, readers, new nodes appended,
    and :meth:`result` (dead nodes dropped, topologically renumbered)."""

    def __init__(self, graph, params):
        self.graph = graph
        self.nodes = copy.deepcopy(graph['nodes'])
        self.heads = [list(h) for h in graph['heads']]
        self.params = dict(params)
        self.readers = {}
        for i, node in enumerate(self.nodes):
            for e in node['inputs']:
                self.readers.setdefault(e[0], []).append(i)
        for h in self.heads:
            self.readers.setdefault(h[0], []).append(-1)

    def only_reader(self, index, reader):
        return self.readers.get(index) == [reader]

    def param(self, entry):
        """The numpy value of a parameter entry read by one node only, else None."""
        node = self.nodes[entry[0]]
        if node['op'] != 'null' or node['name'] not in self.params or \
                len(self.readers.get(entry[0], [])) != 1:
            return None
        return self.params[node['name']]

    def new_param(self, name, value):
        self.params[name] = np.ascontiguousarray(value, dtype=np.float32)
        self.nodes.append({'op': 'null', 'name': name, 'inputs': []})
        return [len(self.nodes) - 1, 0, 0]

    def redirect(self, old, new_entry):
        """Every reader of node ``old`` (output 0) reads ``new_entry`` instead."""
        for node in self.nodes:
            node['inputs'] = [list(new_entry) if e[0] == old and e[1] == 0 else e
                              for e in node['inputs']]
        self.heads = [list(new_entry) if h[0] == old and h[1] == 0 else h for h in self.heads]

    def result(self):
        graph = live_graph(self.graph, self.nodes, self.heads)
        return graph, used_params(graph, self.params)


_CONV_KEYS = ('kernel', 'stride', 'pad', 'dilate', 'layout', 'cudnn_off', 'workspace')


def _conv_signature(node):
    attrs = _attrs(node)
    return tuple(attrs.get(k) for k in _CONV_KEYS) + (attrs.get('no_bias', 'False'),)


def _slice_range(g, entry, channels):
    """(source entry, begin, end) of a channel slice ``entry`` (slice_axis axis 1, or an
    output of SliceChannel axis 1) of a tensor with ``channels`` channels, else None."""
    node = g.nodes[entry[0]]
    attrs = _attrs(node)
    if node['op'] == 'slice_axis' and int(attrs.get('axis', 0)) == 1:
        begin = int(attrs.get('begin', 0))
        end = attrs.get('end', 'None')
        end = channels if end in ('None', None) else int(end)
        if begin < 0 or end < 0:
            return None
        return node['inputs'][0], begin, end
    if node['op'] in _SPLITS and int(attrs.get('axis', 1)) == 1 and \
            attrs.get('squeeze_axis', 'False') in ('False', '0', 'false'):
        parts = int(attrs['num_outputs'])
        width = channels // parts
        return node['inputs'][0], entry[1] * width, (entry[1] + 1) * width
    return None


def merge_channel_splits(graph, params, shapes, kinds=('depthwise', 'grouped'), form=None):
    """Fold ``Concat(conv_0(x[c0:c1]), conv_1(x[c1:c2]), ...)`` (channel slices of one
    tensor that together cover it, in order) into one convolution of ``x``: depthwise
    when every part is depthwise, grouped (``num_group`` = parts) when every part is a
    dense convolution of the same width. ``shapes``: {node name: output shape}
    (:func:`gluon_nets.inference.rewrites.output_shapes`). Returns (graph, params, count)."""
    g = _Graph(graph, params)
    count = 0
    for i, node in enumerate(list(g.nodes)):
        if node['op'] not in _CONCATS or _int(node, 'dim', 1) != 1 or len(node['inputs']) < 2:
            continue
        parts = []
        for e in node['inputs']:
            conv = g.nodes[e[0]]
            if conv['op'] != 'Convolution' or e[1] != 0 or not g.only_reader(e[0], i):
                break
            weight = g.param(conv['inputs'][1])
            bias = g.param(conv['inputs'][2]) if len(conv['inputs']) > 2 else None
            if weight is None or (len(conv['inputs']) > 2 and bias is None):
                break
            data = conv['inputs'][0]
            src = g.nodes[data[0]]
            if src['op'] not in _SPLITS + ('slice_axis',):
                break
            x = src['inputs'][0]
            x_shape = shapes.get(g.nodes[x[0]]['name']) if x[1] == 0 else None
            if x_shape is None or len(x_shape) != 4:
                break
            sliced = _slice_range(g, data, int(x_shape[1]))
            if sliced is None:
                break
            parts.append((e[0], conv, weight, bias, sliced))
        else:
            sources = {(p[4][0][0], p[4][0][1]) for p in parts}
            convs = {p[0] for p in parts}
            slices = {p[1]['inputs'][0][0] for p in parts}
            if any(set(g.readers.get(s, [])) - convs for s in slices):
                continue      # a slice is also read elsewhere
            sigs = {_conv_signature(p[1]) for p in parts}
            bounds = [(p[4][1], p[4][2]) for p in parts]
            channels = int(shapes[g.nodes[parts[0][4][0][0]]['name']][1])
            covers = bounds[0][0] == 0 and bounds[-1][1] == channels and \
                all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            if len(sources) != 1 or len(sigs) != 1 or not covers:
                continue
            widths = [b - a for a, b in bounds]
            outs = [int(_attrs(p[1])['num_filter']) for p in parts]
            groups = [_int(p[1], 'num_group', 1) for p in parts]
            weight = np.concatenate([p[2] for p in parts])
            if all(gr == w == o for gr, w, o in zip(groups, widths, outs)):
                if 'depthwise' not in kinds:
                    continue
                num_group = channels                          # depthwise
            elif all(gr == 1 for gr in groups) and len(set(widths)) == 1 and \
                    len(set(outs)) == 1:
                num_group = len(parts)                        # per-group dense -> grouped
                out_shape = shapes.get(node['name'])
                pixels = int(np.prod(out_shape[2:])) if out_shape else 0
                chosen = 'grouped' if form is None else form(channels, sum(outs), num_group, pixels, 'per_group')
                if 'grouped' not in kinds or chosen not in ('grouped', 'dense'):
                    continue
                if chosen == 'dense':
                    weight, num_group = _dense_weight(weight, num_group), 1
            else:
                continue
            first = parts[0][1]
            name = first['name'] + '_merged'
            inputs = [list(parts[0][4][0]), g.new_param(name + '_weight', weight)]
            if parts[0][3] is not None:
                inputs.append(g.new_param(name + '_bias',
                                          np.concatenate([p[3] for p in parts])))
            attrs = dict(_attrs(first), num_filter=str(sum(outs)), num_group=str(num_group))
            g.nodes.append({'op': 'Convolution', 'name': name, 'attrs': attrs,
                            'inputs': inputs})
            g.redirect(i, [len(g.nodes) - 1, 0, 0])
            count += 1
    if not count:
        return graph, params, 0
    graph, params = g.result()
    return graph, params, count


def _dense_weight(weight, groups):
    """The (out, in, kh, kw) dense weight of a grouped convolution's (out, in / groups,
    kh, kw) one: block-diagonal (zeros between the groups)."""
    out, per_in = weight.shape[:2]
    per_out = out // groups
    dense = np.zeros((out, per_in * groups) + weight.shape[2:], weight.dtype)
    for k in range(groups):
        dense[k * per_out:(k + 1) * per_out, k * per_in:(k + 1) * per_in] = \
            weight[k * per_out:(k + 1) * per_out]
    return dense


def _shuffle_groups(g, index):
    """(groups, last node index) when node ``index`` starts a channel shuffle
    ``Reshape(0, -4, g, -1, -2) -> SwapAxis(1, 2) -> Reshape(0, -3, -2)``, else None."""
    node = g.nodes[index]
    if node['op'] not in _RESHAPES:
        return None
    shape = _shape_attr(node)
    if len(shape) != 5 or shape[0] != 0 or shape[1] != -4 or shape[3:] != (-1, -2) or \
            shape[2] < 1 or len(g.readers.get(index, [])) != 1:
        return None
    swap = g.readers[index][0]
    if swap < 0 or g.nodes[swap]['op'] != 'SwapAxis' or \
            {_int(g.nodes[swap], 'dim1', 0), _int(g.nodes[swap], 'dim2', 0)} != {1, 2} or \
            len(g.readers.get(swap, [])) != 1:
        return None
    back = g.readers[swap][0]
    if back < 0 or g.nodes[back]['op'] not in _RESHAPES or \
            _shape_attr(g.nodes[back]) != (0, -3, -2):
        return None
    return shape[2], back


def fold_channel_shuffle(graph, params, grouped=True):
    """Fold every channel shuffle whose input is ``Convolution [-> relu]`` (each read by
    the next only) into that convolution: weight and bias rows permuted (a grouped
    convolution written dense first, see the module docstring). Returns
    (graph, params, count)."""
    g = _Graph(graph, params)
    count = 0
    for i in range(len(g.nodes)):
        found = _shuffle_groups(g, i)
        if found is None:
            continue
        groups, last = found
        entry = g.nodes[i]['inputs'][0]
        act = None
        if g.nodes[entry[0]]['op'] == 'Activation' and \
                _attrs(g.nodes[entry[0]]).get('act_type') == 'relu' and \
                g.only_reader(entry[0], i):
            act, entry = entry[0], g.nodes[entry[0]]['inputs'][0]
        conv_index = entry[0]
        conv = g.nodes[conv_index]
        if conv['op'] != 'Convolution' or entry[1] != 0 or \
                not g.only_reader(conv_index, act if act is not None else i):
            continue
        weight = g.param(conv['inputs'][1])
        bias = g.param(conv['inputs'][2]) if len(conv['inputs']) > 2 else None
        if weight is None or (len(conv['inputs']) > 2 and bias is None) or \
                weight.shape[0] % groups or not grouped and _int(conv, 'num_group', 1) != 1:
            continue
        perm = shuffle_permutation(weight.shape[0], groups)
        dense = _dense_weight(weight, _int(conv, 'num_group', 1))
        conv['inputs'][1] = g.new_param(conv['name'] + '_shuffled_weight', dense[perm])
        if bias is not None:
            conv['inputs'][2] = g.new_param(conv['name'] + '_shuffled_bias', bias[perm])
        conv['attrs'] = dict(_attrs(conv), num_group='1')
        g.redirect(last, [act if act is not None else conv_index, 0, 0])
        count += 1
    if not count:
        return graph, params, 0
    graph, params = g.result()
    return graph, params, count


def plain_channel_concats(graph, params):
    """``Reshape(0, 0, 0, -3)(Concat(dim 1)(expand_dims(a, 4), expand_dims(b, 4), ...))``
    (``gluon_nets.nn.concat_channels``) -> ``Concat(dim 1)(a, b, ...)``: the same values.
    Returns (graph, params, count)."""
    g = _Graph(graph, params)
    count = 0
    for i, node in enumerate(list(g.nodes)):
        if node['op'] not in _RESHAPES or _shape_attr(node) != (0, 0, 0, -3):
            continue
        cat_entry = node['inputs'][0]
        cat = g.nodes[cat_entry[0]]
        if cat['op'] not in _CONCATS or _int(cat, 'dim', 1) != 1 or \
                not g.only_reader(cat_entry[0], i):
            continue
        parts = []
        for e in cat['inputs']:
            expand = g.nodes[e[0]]
            if expand['op'] != 'expand_dims' or _int(expand, 'axis', 0) != 4 or \
                    not g.only_reader(e[0], cat_entry[0]):
                break
            parts.append(list(expand['inputs'][0]))
        else:
            g.nodes.append({'op': 'Concat', 'name': cat['name'] + '_4d',
                            'attrs': {'dim': '1', 'num_args': str(len(parts))},
                            'inputs': parts})
            g.redirect(i, [len(g.nodes) - 1, 0, 0])
            count += 1
    if not count:
        return graph, params, 0
    graph, params = g.result()
    return graph, params, count


def pointwise_form(in_channels, out_channels, groups, pixels, current):
    """The form a grouped 1x1 convolution written per group (``current`` 'per_group')
    runs fastest in on MXNet 1.9.1's oneDNN, by our measurements (docs/menet.md):
    'dense' (block-diagonal weight: x groups multiply-adds, but one blocked kernel, no
    split/concat of the map, and the shuffle after it folds into its rows) on maps of
    >= 14 x 14 pixels; 'grouped' when the widths per group are multiples of 8 (oneDNN's
    8/16-blocked grouped kernel); else None (leave it per group: the 4-blocked grouped
    kernel was 2-5x slower)."""
    if current != 'per_group':
        return None
    if pixels >= 14 * 14:
        return 'dense'
    if (in_channels // groups) % 8 == 0 and (out_channels // groups) % 8 == 0:
        return 'grouped'
    return None


def split_unaligned_depthwise(graph, params, multiple=16):
    """Every depthwise convolution wider than ``multiple`` channels whose width is not a
    multiple of it, run as two: the first ``multiple * (C // multiple)`` channels and
    the rest (``slice_axis`` x 2, ``Concat``): oneDNN's fast depthwise kernels need a
    multiple of 16 channels, and fall back to one GEMM per channel otherwise (this is
    what MENet's own ``_AlignedDepthwiseConv2D`` does). Returns (graph, params, count)."""
    g = _Graph(graph, params)
    count = 0
    for i, node in enumerate(list(g.nodes)):
        if node['op'] != 'Convolution':
            continue
        weight = g.param(node['inputs'][1]) if len(node['inputs']) > 1 else None
        bias = g.param(node['inputs'][2]) if len(node['inputs']) > 2 else None
        channels = weight.shape[0] if weight is not None else 0
        if weight is None or weight.shape[1] != 1 or _int(node, 'num_group', 1) != channels \
                or channels <= multiple or channels % multiple == 0 or \
                (len(node['inputs']) > 2 and bias is None):
            continue
        aligned = channels // multiple * multiple
        outs = []
        for k, (begin, end) in enumerate(((0, aligned), (aligned, channels))):
            name = '%s_part%d' % (node['name'], k)
            g.nodes.append({'op': 'slice_axis', 'name': name + '_slice',
                            'attrs': {'axis': '1', 'begin': str(begin), 'end': str(end)},
                            'inputs': [list(node['inputs'][0])]})
            inputs = [[len(g.nodes) - 1, 0, 0],
                      g.new_param(name + '_weight', weight[begin:end])]
            if bias is not None:
                inputs.append(g.new_param(name + '_bias', bias[begin:end]))
            g.nodes.append({'op': 'Convolution', 'name': name, 'inputs': inputs,
                            'attrs': dict(_attrs(node), num_filter=str(end - begin),
                                          num_group=str(end - begin))})
            outs.append([len(g.nodes) - 1, 0, 0])
        g.nodes.append({'op': 'Concat', 'name': node['name'] + '_aligned',
                        'attrs': {'dim': '1', 'num_args': '2'}, 'inputs': outs})
        g.redirect(i, [len(g.nodes) - 1, 0, 0])
        count += 1
    if not count:
        return graph, params, 0
    graph, params = g.result()
    return graph, params, count


def shuffle_rewrites(graph, params, input_name, input_shape, form=None):
    """The rewrites that go before channel padding: 4-D concats, per-group 1x1
    convolutions in the ``form`` they run fastest in, split depthwise convolutions
    merged, channel shuffles folded into the dense convolutions that produce them
    (free: a row permutation), and concats at unaligned offsets written as sums.
    ``form``: see :func:`pointwise_form` (the default). Returns (graph, params,
    {rewrite: count})."""
    from .rewrites import output_shapes
    form = form or pointwise_form
    report = {}
    graph, params, report['concats_4d'] = plain_channel_concats(graph, params)
    shapes = output_shapes(graph, input_name, input_shape, params)
    graph, params, report['pointwise_merged'] = merge_channel_splits(
        graph, params, shapes, kinds=('grouped',), form=form)
    graph, params, report['depthwise_merged'] = merge_channel_splits(
        graph, params, shapes, kinds=('depthwise',))
    graph, params, report['shuffles_folded'] = fold_channel_shuffle(graph, params,
                                                                   grouped=False)
    shapes = output_shapes(graph, input_name, input_shape, params)
    graph, params, report['concats_as_sum'] = unaligned_concat_as_sum(graph, params, shapes)
    return graph, params, report


def unaligned_concat_as_sum(graph, params, shapes, multiple=16):
    """``Concat(dim 1)(conv(a), b, ...)`` whose parts meet at channel offsets that are not
    multiples of ``multiple`` (ShuffleNet's stage-1 downsampling unit: 216 + 24) ->
    ``conv'(a) + place(b) + ...``: the convolution (the only one among the parts; dense,
    own weight and bias, read by the concat alone) widened to the whole width with zero rows, every other part put at
    its offset by a 1x1 convolution with a 0/1 weight. Every output channel is then one
    value plus exact zeros (exact), oneDNN runs no unaligned concat (slow in any layout),
    and the sum fuses into the convolution. Returns (graph, params, count)."""
    g = _Graph(graph, params)
    count = 0
    for i, node in enumerate(list(g.nodes)):
        if node['op'] not in _CONCATS or _int(node, 'dim', 1) != 1 or len(node['inputs']) < 2:
            continue
        widths = []
        for e in node['inputs']:
            shape = shapes.get(g.nodes[e[0]]['name']) if e[1] == 0 else None
            if shape is None or len(shape) != 4:
                break
            widths.append(int(shape[1]))
        else:
            offsets = np.cumsum([0] + widths)
            if all(o % multiple == 0 for o in offsets[1:-1]):
                continue
            conv_pos = None
            for k, e in enumerate(node['inputs']):
                conv = g.nodes[e[0]]
                if conv['op'] == 'Convolution' and e[1] == 0 and _int(conv, 'num_group', 1) == 1 \
                        and g.only_reader(e[0], i) and len(conv['inputs']) == 3 and \
                        g.param(conv['inputs'][1]) is not None and \
                        g.param(conv['inputs'][2]) is not None:
                    conv_pos = k
                    break
            if conv_pos is None or sum(g.nodes[e[0]]['op'] == 'Convolution'
                                       for e in node['inputs']) > 1:
                continue    # (per-group convs: merge_channel_splits' business)
            total = int(offsets[-1])
            conv = g.nodes[node['inputs'][conv_pos][0]]
            weight, bias = g.param(conv['inputs'][1]), g.param(conv['inputs'][2])
            begin = int(offsets[conv_pos])
            wide = np.zeros((total,) + weight.shape[1:], np.float32)
            wide[begin:begin + weight.shape[0]] = weight
            wide_bias = np.zeros(total, np.float32)
            wide_bias[begin:begin + weight.shape[0]] = bias
            conv['inputs'][1] = g.new_param(conv['name'] + '_wide_weight', wide)
            conv['inputs'][2] = g.new_param(conv['name'] + '_wide_bias', wide_bias)
            conv['attrs'] = dict(_attrs(conv), num_filter=str(total))
            total_entry = list(node['inputs'][conv_pos])
            for k, e in enumerate(node['inputs']):
                if k == conv_pos:
                    continue
                place = np.zeros((total, widths[k], 1, 1), np.float32)
                place[int(offsets[k]) + np.arange(widths[k]), np.arange(widths[k])] = 1
                name = '%s_place%d' % (node['name'], k)
                g.nodes.append({'op': 'Convolution', 'name': name, 'inputs': [
                    list(e), g.new_param(name + '_weight', place)], 'attrs': {
                        'kernel': '(1, 1)', 'num_filter': str(total), 'no_bias': 'True'}})
                g.nodes.append({'op': 'elemwise_add', 'name': name + '_sum', 'inputs': [
                    total_entry, [len(g.nodes) - 1, 0, 0]]})
                total_entry = [len(g.nodes) - 1, 0, 0]
            g.redirect(i, total_entry)
            count += 1
    if not count:
        return graph, params, 0
    graph, params = g.result()
    return graph, params, count
