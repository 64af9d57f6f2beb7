"""Exact rewrites of an exported graph file, made before a format's own checks.

* :func:`split_bn_relu` -- ``_contrib_BatchNormWithReLU`` as BatchNorm -> relu (fused,
  ONNX and int8: neither mxnet 1.9.1's ONNX exporter nor its oneDNN partitioner knows it)
* :func:`inline_subgraphs` -- fused FullyConnected subgraphs back to plain operators
  (fused and int8; see ``symbols.loaders.INLINED_SUBGRAPHS``)
* :func:`conv_operand_first` -- every residual add with its convolution operand first
  (fused and int8: mxnet 1.9.1's oneDNN conv+sum fusion miswires the graph otherwise)
"""
import json

from .loaders import INLINED_SUBGRAPHS

__all__ = ['split_bn_relu', 'inline_subgraphs', 'conv_operand_first', 'op_counts']


def _read_graph(symbol_file):
    with open(symbol_file) as f:
        return json.load(f)


def _write_rewritten_graph(symbol_file, graph, nodes, resolve):
    """Write ``graph`` with ``nodes`` (a rewritten node list) in place of its own, its
    argument nodes and heads (mapped through ``resolve``) recomputed, to ``symbol_file``."""
    from gluon_nets.utils.atomic import write_text_atomic
    from gluon_nets.inference.graph import with_nodes
    graph = with_nodes(graph, nodes, [resolve(h) for h in graph['heads']])
    write_text_atomic(symbol_file, json.dumps(graph))


def inline_subgraphs(symbol_file, ops=INLINED_SUBGRAPHS):
    """Rewrite ``symbol_file`` with every node of ``ops`` replaced by the operators of
    its subgraph; returns how many were expanded."""
    graph = _read_graph(symbol_file)
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


def split_bn_relu(symbol_file):
    """Rewrite every ``_contrib_BatchNormWithReLU`` node of ``symbol_file`` as the
    exact pair BatchNorm -> Activation(relu). mxnet 1.9.1 has no ONNX converter for the
    fused operator, and its oneDNN partitioner mis-infers shapes around it (found on
    the OctConv ResNets); the pair is what both know. Returns how many were split."""
    graph = _read_graph(symbol_file)
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


_ADD_OPS = ('elemwise_add', '_plus', '_Plus')


def _is_conv_output(nodes, entry):
    """True when graph entry ``entry`` is a Convolution's output, directly or through the
    BatchNorm the oneDNN pass folds into it: the operand its conv+sum fusion takes."""
    node = nodes[entry[0]]
    if node['op'] == 'BatchNorm' and entry[1] == 0:
        node = nodes[node['inputs'][0][0]]
    return node['op'] == 'Convolution'


def conv_operand_first(symbol_file):
    """Rewrite ``symbol_file`` so that every two-operand add whose second operand is a
    (batch-normalised) convolution output and whose first is not has them swapped;
    returns how many were swapped. Exact: float addition is commutative bit for bit.

    Why: mxnet 1.9.1's oneDNN conv+sum fusion, given ``add(other, bn(conv(x)))`` where
    ``other`` is not itself a fusable conv (OctConv's ``bn(conv_hh + upsample(conv_lh))``
    residual branch), connects fused convolutions of the graph to the wrong inputs
    (``Shape inconsistent, Provided = [48,48,3,3], inferred shape=(48,64,1,1)`` on every
    OctConv ResNet/ResNeXt; reproduced on a 5-node graph in tests/test_symbols.py).
    Found by bisecting the graph (the first failing head) and by switching the pass's
    fusions off one at a time (``MXNET_DISABLE_MKLDNN_FUSE_CONV_SUM=1`` alone cures it).
    With the conv operand first the same fusions are made and are right (checked by the
    fused format's 1e-5 comparison like every rewrite)."""
    graph = _read_graph(symbol_file)
    nodes = graph['nodes']
    swapped = 0
    for node in nodes:
        if node['op'] in _ADD_OPS and len(node['inputs']) == 2:
            first, second = node['inputs']
            if _is_conv_output(nodes, second) and not _is_conv_output(nodes, first):
                node['inputs'] = [second, first]
                swapped += 1
    if swapped:
        from gluon_nets.utils.atomic import write_text_atomic
        write_text_atomic(symbol_file, json.dumps(graph))
    return swapped


def op_counts(symbol_file, prefix=''):
    """{operator: node count} of the operators of ``symbol_file`` starting with ``prefix``."""
    counts = {}
    for node in _read_graph(symbol_file)['nodes']:
        if node['op'] != 'null' and node['op'].startswith(prefix):
            counts[node['op']] = counts.get(node['op'], 0) + 1
    return counts
