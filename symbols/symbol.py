"""Format ``symbol``: the plain MXNet graph, ``<stem>-symbol.json`` + ``<stem>-0000.params``.

Check: the reloaded graph reproduces the net bit for bit.
"""
import os

import numpy as np

from .checks import ExportError, relative_error
from .loaders import load
from .rewrites import inline_subgraphs

__all__ = ['save', 'keep_pair', 'save_onednn_graph']


def keep_pair(src_prefix, tmp, stem):
    """Move the checkpoint pair at ``src_prefix`` to ``<tmp>/<stem>-*``; returns
    ``{'symbol': file name, 'params': file name}`` (also used by fused and int8)."""
    os.replace(src_prefix + '-symbol.json', os.path.join(tmp, stem + '-symbol.json'))
    os.replace(src_prefix + '-0000.params', os.path.join(tmp, stem + '-0000.params'))
    return {'symbol': stem + '-symbol.json', 'params': stem + '-0000.params'}


def save_onednn_graph(block, prefix, x):
    """Export the oneDNN ``block`` (fused or quantized) to ``prefix`` with its fused
    FullyConnected subgraphs inlined, reload it and run it on the NDArray ``x``;
    returns (reloaded block, its numpy output)."""
    block.export(prefix)
    inline_subgraphs(prefix + '-symbol.json')
    reloaded = load(prefix, epoch=0)
    for _ in range(2):   # twice: static-memory graphs fail from the second call on
        out = reloaded(x).asnumpy()
    return reloaded, out


def save(tmp, stem, plain, x, ref, checks):
    """Check the plain export at ``plain`` against ``ref`` (the net's logits on the
    (N, C, S, S) check input ``x``) and keep it as ``<stem>``; returns its files."""
    import mxnet as mx
    out = load(plain, epoch=0)(mx.nd.array(x)).asnumpy()
    if not np.array_equal(out, ref):
        raise ExportError('the exported graph differs from the net (max rel err %.3g); '
                          'the model has a Python-side branch the graph does not capture'
                          % relative_error(out, ref))
    checks['reload_bit_identical'] = True
    return keep_pair(plain, tmp, stem)
