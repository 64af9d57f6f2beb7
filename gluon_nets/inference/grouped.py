"""Exact rewrites of grouped (transposed) convolutions for oneDNN, on a traced inference
graph (Symbol JSON), applied by :func:`gluon_nets.inference.optimize` after BN folding.

Why (ED-Net's encoder-decoder path: a 3x3 stride-2 conv with 32 groups, out -> p, and a
3x3 stride-2 ``Deconvolution`` with 32 groups, p -> out; ``bench/profile_kernels.py`` and
the per-layer A/B in docs/ednet.md): MXNet 1.9.1's oneDNN

* runs a ``Deconvolution`` that has a bias (every one after BN folding) 20-100x slower than
  the same deconvolution without it (ED-ResNet-50 layer2, batch 1: 7.6 ms vs 0.04 ms): the
  bias is added by a slow generic loop after the blocked-layout kernel;
* runs grouped kernels with 2 channels per group on a plain-layout GEMM (and 4 or 8
  channels per group on 4/8-channel blocks), several times slower than its 16-channel
  blocked kernels, with layout reorders around them.

So:

:func:`deconvolution_bias_into_sum`
    A deconvolution's bias is moved where it costs nothing: when the deconvolution's only
    reader is a sum (a tree of ``elemwise_add``), into the bias of a convolution summed
    in the same tree (ED-Net: the block's last 1x1 convolution). Otherwise it becomes a depthwise 1x1 convolution of ones with that
    bias after the deconvolution (``x * 1 + b``, bit-exact; a oneDNN depthwise kernel
    in the blocked layout: ED layer1's merged decoder at batch 1 takes 3.5 ms with its
    bias, 0.31 ms without, 0.66 ms with the 1x1 bias conv). Exact up to float32
    summation order.
:func:`merge_groups`
    A grouped convolution / deconvolution with few channels per group gets fewer, wider
    groups: ``m`` neighbouring groups become one with block-diagonal weights (zeros
    between the original groups), so every output is the same sum of the same products
    plus exact zeros (bit-exact in exact arithmetic; summation order may differ). More
    multiply-adds (x m), far faster kernels. Depthwise convolutions (1 channel in and out
    per group) are left alone: oneDNN has dedicated kernels for them.
"""
import numpy as np

from .graph import with_nodes

__all__ = ['merge_groups', 'merged_group_count', 'deconvolution_bias_into_sum',
           'optimize_grouped']

_SUMS = ('elemwise_add', '_Plus', '_plus')   # elementwise: both sides have one shape
_PARTNERS = ('Convolution',)


def _attrs(node):
    return node.get('attrs', {})


def _flag(value):
    return str(value).lower() in ('true', '1')


def _has_bias(node):
    return not _flag(_attrs(node).get('no_bias', 'False')) and len(node['inputs']) > 2


def _readers(nodes):
    readers = {}
    for i, node in enumerate(nodes):
        for e in node['inputs']:
            readers.setdefault(e[0], []).append(i)
    return readers


def merged_group_count(op, groups, in_per_group, out_per_group):
    """The number of groups ``op`` ('Convolution' or 'Deconvolution') with ``groups``
    groups of ``in_per_group`` -> ``out_per_group`` channels is rewritten to (``groups``:
    unchanged).

    The rule, from a per-layer A/B at ED-ResNet-50's shapes (1 thread, batch 1 and 16,
    docs/ednet.md): a convolution with fewer than 4 channels per group on either side runs
    on oneDNN's plain-layout GEMM: merged until both sides have >= 16 (ED layer1 encoder,
    8 -> 2 per group: about 3x faster as 4 groups of 64 -> 16); with 4 or more per group
    it was as fast unmerged (and ResNeXt's 4-channel groups stay as they are). A
    deconvolution with fewer than 16 per group: merged until both sides have >= 16
    (layer1 decoder 2 -> 8 per group: about 5x faster as 4 groups of 16 -> 64, without
    its bias); its output then comes in oneDNN's 16-channel blocks like the tensor it
    is summed with, so that sum runs the fast kernel instead of the reference one. At
    most 8 groups merge into one (8x the multiply-adds of the layer); depthwise layers
    (1 -> 1 per group) never.
    """
    small = min(in_per_group, out_per_group)
    if groups <= 1 or (in_per_group == 1 and out_per_group == 1):
        return groups
    trigger, target = (4, 16) if op == 'Convolution' else (16, 16)
    if small >= trigger:
        return groups
    best = 1
    for m in range(2, 9):
        if groups % m == 0:
            best = m
            if small * m >= target:
                break
    return groups // best


def _merge_weight(weight, groups, new_groups):
    """Block-diagonal weight of ``new_groups`` groups from ``weight`` of ``groups``.
    Convolution weights are (out, in / g, *k), Deconvolution weights (in, out / g, *k):
    the same block structure over the first two axes, so one function serves both."""
    m = groups // new_groups
    rows, per_group = weight.shape[:2]
    kernel = weight.shape[2:]
    per_row_group = rows // groups        # rows (out for conv, in for deconv) per group
    new = np.zeros((rows, per_group * m) + kernel, weight.dtype)
    view = new.reshape((new_groups, m, per_row_group, m, per_group) + kernel)
    old = weight.reshape((new_groups, m, per_row_group, per_group) + kernel)
    for j in range(m):
        view[:, j, :, j] = old[:, j]
    return new


def merge_groups(graph, params):
    """The graph with every grouped ``Convolution`` / ``Deconvolution`` (NCHW, weight a
    parameter read by it alone) that :func:`merged_group_count` says to merge rewritten
    with fewer groups and block-diagonal weights (see the module docstring). Returns
    (graph, params, merged layers); neither input is modified."""
    nodes = graph['nodes']
    readers = _readers(nodes)
    params = dict(params)
    out, count = [], 0
    for node in nodes:
        attrs = _attrs(node)
        groups = int(attrs.get('num_group', 1))
        if node['op'] in ('Convolution', 'Deconvolution') and groups > 1 and \
                attrs.get('layout', 'None') in ('None', 'NCHW', 'NCW', 'NCDHW'):
            wnode = node['inputs'][1][0]
            wname = nodes[wnode]['name']
            if nodes[wnode]['op'] == 'null' and wname in params and len(readers[wnode]) == 1:
                weight = params[wname]
                transposed = node['op'] == 'Deconvolution'
                rows, per_group = weight.shape[:2]
                ipg, opg = (rows // groups, per_group) if transposed else (per_group, rows // groups)
                new_groups = merged_group_count(node['op'], groups, ipg, opg)
                if new_groups != groups:
                    params[wname] = _merge_weight(weight, groups, new_groups)
                    node = dict(node, attrs=dict(attrs, num_group=str(new_groups)))
                    count += 1
        out.append(node)
    if not count:
        return graph, params, 0
    for node in out:      # a weight variable may carry its traced shape
        if node['op'] == 'null' and '__shape__' in _attrs(node) and node['name'] in params:
            node['attrs'] = dict(node['attrs'], __shape__=str(tuple(params[node['name']].shape)))
    new_graph = dict(graph, nodes=out)
    new_graph.pop('node_row_ptr', None)
    return new_graph, params, count


def _sum_tree_partner(nodes, readers, params, start):
    """A node summed with ``start`` (its only reader a tree of ``elemwise_add``s) that
    has a bias parameter of its own, read by that sum alone: its index, or None."""
    def single_reader(i):
        return len(readers.get(i, [])) == 1

    if not single_reader(start) or nodes[readers[start][0]]['op'] not in _SUMS:
        return None
    root = readers[start][0]
    while single_reader(root) and nodes[readers[root][0]]['op'] in _SUMS:
        root = readers[root][0]
    stack, leaves = [root], []
    while stack:
        i = stack.pop()
        for e in nodes[i]['inputs']:
            j = e[0]
            if e[1] == 0 and nodes[j]['op'] in _SUMS and single_reader(j):
                stack.append(j)
            elif j != start:
                leaves.append((j, e[1]))
    for j, output in leaves:
        node = nodes[j]
        if output == 0 and node['op'] in _PARTNERS and _has_bias(node) and single_reader(j):
            bias = node['inputs'][2][0]
            if nodes[bias]['op'] == 'null' and nodes[bias]['name'] in params and \
                    len(readers[bias]) == 1:
                return j
    return None


def deconvolution_bias_into_sum(graph, params):
    """The graph with every ``Deconvolution`` bias (a parameter of its own) moved out of
    the deconvolution (see the module docstring): into the bias of a convolution summed
    with it, else into a depthwise 1x1 convolution of ones after it. Returns (graph,
    params, moved into a sum partner, moved into a 1x1 convolution); neither input is
    modified."""
    nodes = graph['nodes']
    readers = _readers(nodes)
    params = dict(params)
    moves, separate = {}, []          # deconv index -> partner index; deconvs kept apart
    for i, node in enumerate(nodes):
        if node['op'] != 'Deconvolution' or not _has_bias(node) or \
                _attrs(node).get('layout', 'None') not in ('None', 'NCHW'):
            continue
        bias = node['inputs'][2][0]
        if nodes[bias]['op'] != 'null' or nodes[bias]['name'] not in params or \
                len(readers[bias]) != 1:
            continue
        partner = _sum_tree_partner(nodes, readers, params, i)
        if partner is not None and partner not in moves.values():
            moves[i] = partner
        else:
            separate.append(i)
    if not moves and not separate:
        return graph, params, 0, 0
    for i, partner in moves.items():
        name = nodes[nodes[partner]['inputs'][2][0]]['name']
        params[name] = (params[name].astype(np.float64) +
                        params[nodes[nodes[i]['inputs'][2][0]]['name']]).astype(np.float32)
    out, index = [], {}
    for i, node in enumerate(nodes):
        if node['op'] == 'null' and any(nodes[d]['inputs'][2][0] == i for d in list(moves) + separate):
            index[i] = None                     # the moved bias variable: dropped
            continue
        inputs = [[index[e[0]], e[1], 0] for e in node['inputs']]
        if i in moves or i in separate:
            node = dict(node, inputs=inputs[:2], attrs=dict(_attrs(node), no_bias='True'))
            out.append(node)
            if i in separate:
                bias_name = nodes[nodes[i]['inputs'][2][0]]['name']
                channels = int(_attrs(node)['num_filter'])
                kernel = len(params[nodes[nodes[i]['inputs'][1][0]]['name']].shape) - 2
                wname = node['name'] + '_bias_ones_weight'
                params[wname] = np.ones((channels, 1) + (1,) * kernel, np.float32)
                out.append({'op': 'null', 'name': wname, 'inputs': []})
                out.append({'op': 'null', 'name': bias_name, 'inputs': []})
                out.append({'op': 'Convolution', 'name': node['name'] + '_bias',
                            'inputs': [[len(out) - 3, 0, 0], [len(out) - 2, 0, 0],
                                       [len(out) - 1, 0, 0]],
                            'attrs': {'kernel': str((1,) * kernel), 'num_filter': str(channels),
                                      'num_group': str(channels), 'no_bias': 'False'}})
        else:
            node = dict(node, inputs=inputs)
            out.append(node)
        index[i] = len(out) - 1
    new_graph = with_nodes(graph, out, [[index[h[0]], h[1], 0] for h in graph['heads']])
    return new_graph, params, len(moves), len(separate)


def optimize_grouped(graph, params):
    """Both rewrites, bias first: (graph, params, {'deconv_bias_moved': n,
    'deconv_bias_as_conv': n, 'groups_merged': n})."""
    graph, params, moved, separate = deconvolution_bias_into_sum(graph, params)
    graph, params, merged = merge_groups(graph, params)
    return graph, params, {'deconv_bias_moved': moved, 'deconv_bias_as_conv': separate,
                           'groups_merged': merged}
