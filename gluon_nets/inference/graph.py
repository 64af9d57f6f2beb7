"""Writing an edited MXNet Symbol JSON graph back: the one place every graph rewrite
of :mod:`gluon_nets.inference` (and the symbol exporter) rebuilds ``nodes``,
``arg_nodes`` and ``heads``.

A graph is the dict ``json.loads(symbol.tojson())`` gives: ``nodes`` (each with ``op``,
``name``, ``inputs`` as ``[node, output, version]`` entries), ``arg_nodes``, ``heads``
and ``node_row_ptr`` (a cache MXNet recomputes; dropped here).
"""

__all__ = ['with_nodes', 'live_order', 'live_graph', 'used_params']


def with_nodes(graph, nodes, heads):
    """``graph`` with ``nodes`` (inputs already renumbered) and ``heads`` (``[node,
    output, 0]`` entries) in place of its own; ``arg_nodes`` recomputed. ``graph`` is
    not modified."""
    new_graph = {key: value for key, value in graph.items() if key != 'node_row_ptr'}
    new_graph['nodes'] = nodes
    new_graph['arg_nodes'] = [k for k, node in enumerate(nodes) if node['op'] == 'null']
    new_graph['heads'] = heads
    return new_graph


def _identity(entry):
    return entry[0], entry[1]


def live_order(nodes, heads, resolve=_identity):
    """(order, index): the keys of ``nodes`` (a list or a dict of nodes) that ``heads``
    reach, inputs before readers, and {key: position in order}. ``resolve`` maps an
    input or head entry to the ``(key, output)`` actually read (a rewrite that
    redirects readers). Iterative: deep nets overflow Python's recursion limit."""
    order, index = [], {}
    for head in heads:
        stack = [(resolve(head)[0], False)]
        while stack:
            key, expanded = stack.pop()
            if key in index:
                continue
            if expanded:
                index[key] = len(order)
                order.append(key)
                continue
            stack.append((key, True))
            for entry in reversed(nodes[key]['inputs']):
                source = resolve(entry)[0]
                if source not in index:
                    stack.append((source, False))
    return order, index


def live_graph(graph, nodes, heads, resolve=_identity):
    """``graph`` rebuilt from the edited ``nodes`` (list or dict, inputs as entries
    ``(key, output, ...)``): only what ``heads`` reach, in topological order, every
    entry mapped through ``resolve`` and renumbered."""
    order, index = live_order(nodes, heads, resolve)

    def entry(e):
        key, output = resolve(e)
        return [index[key], output, 0]
    out = [dict(nodes[key], inputs=[entry(e) for e in nodes[key]['inputs']]) for key in order]
    return with_nodes(graph, out, [entry(h) for h in heads])


def used_params(graph, params):
    """The entries of ``params`` ({name: value}) that are variables of ``graph``."""
    used = {node['name'] for node in graph['nodes'] if node['op'] == 'null'}
    return {name: value for name, value in params.items() if name in used}
