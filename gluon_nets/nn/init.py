"""Initialisers the families' reference trainings use (``--init reference``)."""
import math

import mxnet as mx

__all__ = ['KaimingInit']


@mx.init.register
class KaimingInit(mx.init.Initializer):
    """PyTorch's ``kaiming_normal_`` (ReLU gain) on conv weights and ``kaiming_uniform_``
    on dense weights, as a reference script that calls them explicitly has it.

    * 4-d weights (out, in/groups, kh, kw): N(0, 2 / fan), fan = in/groups * kh * kw
      (``conv_mode='in'``) or out * kh * kw (``'out'``).
    * 2-d weights (out, in): U(+-sqrt(6 / in)) (kaiming-uniform, fan_in, ReLU gain).
    * biases 0, BN gamma 1 and beta 0 (the Initializer defaults).

    ``MSRAPrelu(factor_type=..., slope=0)`` matches the conv rule but draws dense weights
    from a normal law, hence this class.
    """

    def __init__(self, conv_mode='out'):
        if conv_mode not in ('in', 'out'):
            raise ValueError('conv_mode must be "in" or "out", got %r' % (conv_mode,))
        super().__init__(conv_mode=conv_mode)
        self.conv_mode = conv_mode

    def _init_weight(self, name, arr):
        shape = arr.shape
        if len(shape) == 4:
            fan = (shape[1] if self.conv_mode == 'in' else shape[0]) * shape[2] * shape[3]
            arr[:] = mx.nd.random.normal(0, math.sqrt(2.0 / fan), shape=shape, dtype=arr.dtype)
        elif len(shape) == 2:
            bound = math.sqrt(6.0 / shape[1])
            arr[:] = mx.nd.random.uniform(-bound, bound, shape=shape, dtype=arr.dtype)
        else:
            raise ValueError('KaimingInit: no rule for weight %s of shape %s' % (name, shape))
