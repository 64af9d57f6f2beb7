"""Backbones from classifiers: the stage feature maps of any HybridBlock (timm's
``features_only``), and classifier access (timm's ``get_classifier`` /
``reset_classifier``) for a net whose final layer is a named attribute.

Written here rather than per family: the stage outputs are found from the traced graph
(the last feature map at each spatial reduction before global pooling), so one
implementation serves every family and every future model; a family whose layout the
rule does not fit can pass explicit node names.
"""
import mxnet as mx
from mxnet.gluon import HybridBlock, nn

__all__ = ['FeatureNet', 'find_stage_outputs', 'get_classifier', 'reset_classifier']


def _graph(net, input_shape):
    """(nodes, preds, shape) of the traced graph: op nodes in topological order plus
    the data input; ``preds[i]`` are the op/data nodes feeding node ``i``, ``shape[i]``
    the shape of its first output."""
    import json
    out = net(mx.sym.var('data'))
    if isinstance(out, (list, tuple)):
        out = mx.sym.Group(list(out))
    internals = out.get_internals()
    _, out_shapes, _ = internals.infer_shape(data=tuple(input_shape))
    if out_shapes is None:
        raise ValueError('cannot infer the shapes of %s for input %s'
                         % (type(net).__name__, tuple(input_shape)))
    by_name = dict(zip(internals.list_outputs(), out_shapes))
    graph = json.loads(out.tojson())
    nodes, preds, shape = [], {}, {}
    for idx, node in enumerate(graph['nodes']):
        if node['op'] == 'null' and node['name'] != 'data':
            continue
        nodes.append(idx)
        preds[idx] = sorted({e[0] for e in node['inputs'] if e[0] in preds})
        key = node['name'] if node['op'] == 'null' else node['name'] + '_output'
        shape[idx] = by_name.get(key) or by_name.get(key + '0')
    names = {idx: (graph['nodes'][idx]['name'] + ('' if graph['nodes'][idx]['op'] == 'null'
                                                  else '_output')) for idx in nodes}
    if names[nodes[-1]] not in by_name:          # multi-output last node: entry 0
        names[nodes[-1]] = graph['nodes'][nodes[-1]]['name'] + '_output0'
    head = graph['heads'][0][0]
    return nodes, preds, shape, names, head


def _output_dominators(nodes, preds, head, removed=None):
    """Nodes every path from the data input to ``head`` passes through (``removed``
    deleted from the graph), by the DAG dominator rule: idom(v) = common dominator of
    v's predecessors, taken in topological order."""
    idom, depth = {}, {}
    source = nodes[0]
    for v in nodes:
        if v == removed:
            continue
        if v == source:
            idom[v], depth[v] = None, 0
            continue
        ps = [p for p in preds[v] if p in idom]
        if not ps:
            continue                               # not reachable from the data input
        d = ps[0]
        for p in ps[1:]:
            a, b = d, p
            while a != b:
                if depth[a] >= depth[b]:
                    a = idom[a]
                else:
                    b = idom[b]
            d = a
        idom[v], depth[v] = d, depth[d] + 1
    if head not in idom:
        return None                                # removing ``removed`` cut the graph
    doms, v = set(), idom[head]
    while v is not None:
        doms.add(v)
        v = idom[v]
    return doms


def find_stage_outputs(net, input_shape=(1, 3, 224, 224)):
    """Stage outputs of ``net``: [(node output name, channels, reduction)], one per
    spatial reduction (2, 4, 8, ...) up to that of the map entering global pooling.

    A stage output is a point the whole net passes through: a node that dominates the
    output (every path from the input to the logits goes through it), or, for
    two-path nets such as OctConv, the high-frequency node X of a pair (X, Y) that
    together cut the graph (Y, at a coarser resolution, dominates the output once X is
    removed, and not before) and first meet at X's resolution. Per reduction the last such node in topological order is taken; nodes
    inside the next stage's first block (before its strided conv) are bypassed by the
    shortcut and do not qualify.
    """
    nodes, preds, shape, names, head = _graph(net, input_shape)
    height, width = input_shape[2], input_shape[3]

    def reduction(v):
        s = shape.get(v)
        if s is None or len(s) != 4 or s[0] != input_shape[0] or s[2] <= 1 or s[3] <= 1:
            return None
        r = int(round(height / float(s[2])))
        return r if r >= 2 and int(round(width / float(s[3]))) == r else None

    reductions = {v: reduction(v) for v in nodes}
    deepest = max((r for r in reductions.values() if r), default=None)
    if deepest is None:
        raise ValueError('%s has no strided feature maps for input %s'
                         % (type(net).__name__, tuple(input_shape)))
    base = _output_dominators(nodes, preds, head)
    succs = {v: [] for v in nodes}
    for v in nodes:
        for p in preds[v]:
            succs[p].append(v)

    def descendants(v):
        seen, stack = set(), [v]
        while stack:
            for w in succs[stack.pop()]:
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        return seen

    order = {v: i for i, v in enumerate(nodes)}

    def octave_partner(v, r, others):
        # (v, y) is a stage output pair when they first meet at v's resolution (the next
        # block mixes the two frequencies); a block's shortcut, which also cuts the graph
        # together with v, meets v only at the block's end, at the coarser resolution
        mine = descendants(v)
        for y in others - base:
            if not (reductions.get(y) and reductions[y] > r):
                continue
            common = mine & descendants(y)
            if common and reductions.get(min(common, key=order.get)) == r:
                return True
        return False

    found = {}
    for r in sorted({r for r in reductions.values() if r}):
        for v in reversed(nodes):
            if reductions[v] != r:
                continue
            if v in base:
                found[r] = v
                break
            others = _output_dominators(nodes, preds, head, removed=v)
            if others is not None and octave_partner(v, r, others):
                found[r] = v
                break
    # the deepest level is the map that enters global pooling; pooled side branches
    # (ScaleNet) reach coarser reductions inside blocks but never dominate
    levels = sorted(found)
    return [(_occurrence(names, nodes, found[r]), int(shape[found[r]][1]), r) for r in levels]


def _occurrence(names, nodes, v):
    """``(output name, k)``: the k-th graph output of that name (Gluon may give two nodes
    one name, so a name alone does not identify a node)."""
    return names[v], sum(1 for u in nodes if u < v and names[u] == names[v])


class FeatureNet(HybridBlock):
    """The stage feature maps of ``net`` as a HybridBlock: (N, 3, H, W) -> list of
    (N, C_i, H / r_i, W / r_i), with ``feature_info`` = [{'num_chs', 'reduction',
    'module'}] per output.

    It holds ``net``'s children (all but the classifier) under their own attribute
    names, so its structural parameter names are ``net``'s and a converted checkpoint
    of the classifier model loads with ``load_parameters(path, ignore_extra=True)``.
    The Parameters are ``net``'s own objects (same weights). Graph taps need a traced
    graph, so the block is always hybridized.
    """

    def __init__(self, net, nodes, exclude=()):
        super().__init__(prefix=net.prefix)
        object.__setattr__(self, '_backbone', net)
        self._nodes = [n for n, _, _ in nodes]
        self.feature_info = [dict(num_chs=c, reduction=r, module=n[0]) for n, c, r in nodes]
        for name, child in net._children.items():
            if name not in exclude:
                setattr(self, name, child)
        for name, param in net._reg_params.items():
            setattr(self, name, param)
        self.params.update(net.params)          # parameters made with self.params.get
        self.hybridize()

    def hybridize(self, active=True, **kwargs):
        # imperative mode cannot tap inner nodes: stay hybridized
        super().hybridize(True, **kwargs)

    def hybrid_forward(self, F, x, **params):
        if F is mx.nd:
            raise RuntimeError('FeatureNet runs hybridized only')
        with self._backbone.name_scope():
            out = self._backbone.hybrid_forward(F, x, **params)
        if isinstance(out, (list, tuple)):
            out = F.Group(list(out))
        internals = out.get_internals()
        outputs = internals.list_outputs()
        picked = []
        for name, k in self._nodes:
            positions = [i for i, o in enumerate(outputs) if o == name]
            picked.append(internals[positions[k]])
        return picked


def _classifier_parent(net, attr):
    parent = net
    *path, last = attr.split('.')
    for part in path:
        parent = getattr(parent, part)
    return parent, last


def get_classifier(net, attr):
    """The block at attribute path ``attr`` of ``net`` (its final layer)."""
    parent, last = _classifier_parent(net, attr)
    return getattr(parent, last)


def reset_classifier(net, attr, num_classes, init=None, ctx=None):
    """Replace the final layer at ``attr`` by a new one with ``num_classes`` outputs (same
    kind, inputs, bias and parameter prefix); it is initialised (``init``, default
    Xavier) when the rest of ``net`` is. Returns the new block."""
    parent, last = _classifier_parent(net, attr)
    old = getattr(parent, last)
    if isinstance(old, nn.Dense):
        new = nn.Dense(num_classes, in_units=old._in_units, use_bias=old.bias is not None,
                       flatten=old._flatten, prefix=old.prefix)
    elif isinstance(old, nn.Conv2D):
        new = nn.Conv2D(num_classes, old._kwargs['kernel'], strides=old._kwargs['stride'],
                        padding=old._kwargs['pad'], in_channels=old._in_channels,
                        use_bias=old.bias is not None, prefix=old.prefix)
    else:
        raise TypeError('cannot reset a classifier of type %s (attribute %s); expected Dense '
                        'or Conv2D' % (type(old).__name__, attr))
    setattr(parent, last, new)
    initialised = [p for p in net.collect_params().values()
                   if p._data is not None and p not in new.collect_params().values()]
    if initialised:
        ctx = ctx or initialised[0].list_ctx()
        new.initialize(init or mx.init.Xavier(), ctx=ctx)
    if hasattr(net, '_clear_cached_op'):
        net._clear_cached_op()
    return new
