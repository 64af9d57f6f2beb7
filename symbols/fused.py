"""Format ``fused``: the oneDNN-partitioned graph (``optimize_for('MKLDNN')``: BN folded
into the conv, conv+act(+add) fused), saved like ``symbol``.

Check: within :data:`TOLERANCE` relative of the plain graph, in memory and reloaded.
"""
import os

from .checks import ExportError, error_line, relative_error
from .loaders import load
from .rewrites import conv_operand_first, op_counts
from .symbol import keep_pair, save_onednn_graph

__all__ = ['save', 'TOLERANCE']

TOLERANCE = 1e-5     # max |fused - plain| / max |plain|


def save(tmp, stem, plain, x, ref, checks):
    """Fuse the plain export at ``plain``, check it against ``ref`` (the net's logits on
    the (N, C, S, S) check input ``x``) and keep it as ``<stem>``; returns its files."""
    import mxnet as mx
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        raise ExportError('--fuse needs an MXNet build with oneDNN (MKLDNN); this one has none')
    x = mx.nd.array(x)
    swapped = conv_operand_first(plain + '-symbol.json')
    if swapped:
        checks['conv_operand_first'] = swapped
    block = load(plain, epoch=0)
    try:
        block.optimize_for(x, backend='MKLDNN', static_alloc=True, static_shape=True)
        fused_out = block(x).asnumpy()
    except mx.base.MXNetError as err:
        raise ExportError('the oneDNN partitioner (optimize_for MKLDNN) fails on this graph: %s'
                          % error_line(err)) from None
    err = relative_error(fused_out, ref)
    if not err <= TOLERANCE:
        raise ExportError('the oneDNN-fused graph differs from the plain one by %.3g relative '
                          '(tolerance %g)' % (err, TOLERANCE))
    fused = os.path.join(tmp, '.fused')
    _, fused_out = save_onednn_graph(block, fused, x)
    err = relative_error(fused_out, ref)
    if not err <= TOLERANCE:
        raise ExportError('the saved oneDNN-fused graph differs from the plain one by %.3g '
                          'relative (tolerance %g)' % (err, TOLERANCE))
    checks['fused_max_rel_err'] = err
    checks['fused_ops'] = op_counts(fused + '-symbol.json', prefix='_sg_')
    return keep_pair(fused, tmp, stem)
