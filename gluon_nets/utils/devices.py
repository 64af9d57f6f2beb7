"""``--ctx`` / ``--num-gpus`` / ``--dtype`` for the command lines (eval.py,
symbols.export): the devices, checked against what this MXNet build has, and the
float16 rule. MXNet is imported inside the functions (this layer imports none)."""

__all__ = ['DeviceError', 'parse_contexts', 'check_dtype']


class DeviceError(ValueError):
    """Devices or a dtype this build cannot honour; the message names the flag."""


def parse_contexts(ctx_text=None, num_gpus=0):
    """``--ctx cpu|gpu0,gpu1`` (wins) or ``--num-gpus N`` -> [mx.Context]. DeviceError
    (one line naming the flag) for an unreadable token, a negative count, or more GPUs
    than this build sees (a CPU-only build sees none)."""
    import mxnet as mx
    if num_gpus is not None and num_gpus < 0:
        raise DeviceError('--num-gpus must be >= 0, got %d' % num_gpus)
    if ctx_text:
        contexts = []
        for token in ctx_text.replace(' ', '').split(','):
            if token == 'cpu':
                contexts.append(mx.cpu())
            elif token.startswith('gpu') and token[3:].isdigit():
                contexts.append(mx.gpu(int(token[3:])))
            else:
                raise DeviceError('--ctx: cannot read %r (use cpu or gpu0,gpu1,...)' % token)
    else:
        contexts = [mx.gpu(i) for i in range(num_gpus)] if num_gpus else [mx.cpu()]
    gpus = [c for c in contexts if c.device_type == 'gpu']
    if gpus:
        visible = mx.context.num_gpus()
        wanted = max(c.device_id for c in gpus) + 1
        if wanted > visible:
            raise DeviceError('%s: %d GPU(s) asked for, %d visible (this mxnet build: %s)'
                              % ('--ctx' if ctx_text else '--num-gpus', wanted, visible,
                                 'CPU-only' if visible == 0 else 'CUDA'))
    return contexts


def check_dtype(dtype, contexts):
    """float16 runs on GPUs only: MXNet 1.9's CPU operators have no float16 convolution."""
    if dtype == 'float16' and all(c.device_type == 'cpu' for c in contexts):
        raise DeviceError('--dtype float16 needs a GPU (--ctx gpu0 or --num-gpus 1): MXNet\'s '
                          'CPU operators have no float16 convolution; on CPU use float32')
