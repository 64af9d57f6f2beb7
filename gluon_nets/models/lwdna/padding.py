"""LW-DNA nets with their widths padded for fast CPU kernels, computing the same function."""
import numpy as np
import mxnet as mx

from .nets import LWDNAResNet

__all__ = ['pad_widths']


def pad_widths(net, multiple=8, ctx=None):
    """An :class:`LWDNAResNet` computing exactly what ``net`` computes, with every width
    rounded up to a multiple of ``multiple`` (padding: zero kernels, BN gamma = beta = mean
    = 0 and var = 1, zero classifier columns, so every padded channel stays 0).

    Why: oneDNN (MXNet's CPU backend) runs its direct convolution kernels only when the
    output channels are a multiple of 8 (16 for the AVX-512 kernels); the irregular widths
    that :func:`.search.shrink` finds (65, 57, 983, ...) fall back to im2col + GEMM, about
    twice as slow per MAC. Padding costs a few percent more MACs (3.71 -> 3.88 G for the
    golden ResNet-50 config at ``multiple=8``). ``net`` must be initialised; returns an
    initialised net (same depth, classes and norm_kwargs) on ``ctx`` (default: ``net``'s
    context).
    """
    if not isinstance(net, LWDNAResNet):
        raise TypeError('pad_widths expects an LWDNAResNet, got %s' % type(net).__name__)
    if int(multiple) != multiple or multiple < 1:
        raise ValueError('multiple must be a positive integer, got %r' % (multiple,))

    def up(width):
        return -(-width // multiple) * multiple

    cfg = net.config
    padded = {'stem': up(cfg['stem']), 'stage_out': [up(w) for w in cfg['stage_out']],
              'blocks': [[[up(w) for w in block] for block in stage] for stage in cfg['blocks']]}
    source = net._collect_params_with_prefix()
    ctx = ctx or next(iter(source.values())).list_ctx()[0]
    out = LWDNAResNet(net.depth, config=padded, classes=net.fc._units,
                      norm_kwargs=net.norm_kwargs)
    for name, param in out._collect_params_with_prefix().items():
        old = source[name].data().asnumpy()
        value = np.ones(param.shape, np.float32) if name.endswith('running_var') else \
            np.zeros(param.shape, np.float32)
        value[tuple(slice(0, n) for n in old.shape)] = old
        param._load_init(mx.nd.array(value), ctx)
    return out
