"""Evaluation options shared with the trainer and the exporter: devices and dtype
(``--ctx``/``--num-gpus``, ``--dtype``), multi-crop views (``--ten-crop``/``--five-crop``)
and the resize interpolation (``--interpolation``)."""
import numpy as np

from .loop import EvalError

__all__ = ['INTERPOLATIONS', 'parse_contexts', 'check_dtype', 'crop_views', 'MultiCrop']

#: ``--interpolation`` names -> OpenCV codes (as ``mx.image.imresize`` and Gluon's
#: ``transforms.Resize`` take them)
INTERPOLATIONS = {'nearest': 0, 'bilinear': 1, 'bicubic': 2, 'area': 3, 'lanczos': 4}


def parse_contexts(ctx_text=None, num_gpus=0, flag='--ctx'):
    """``--ctx cpu|gpu0,gpu1`` (wins) or ``--num-gpus N`` -> [mx.Context]; EvalError (one
    line) for a token it cannot read or GPUs this MXNet build does not have."""
    import mxnet as mx
    if num_gpus is not None and num_gpus < 0:
        raise EvalError('--num-gpus must be >= 0, got %d' % num_gpus)
    if ctx_text:
        contexts = []
        for token in ctx_text.replace(' ', '').split(','):
            if token == 'cpu':
                contexts.append(mx.cpu())
            elif token.startswith('gpu') and token[3:].isdigit():
                contexts.append(mx.gpu(int(token[3:])))
            else:
                raise EvalError('%s: cannot read %r (use cpu or gpu0,gpu1,...)' % (flag, token))
    else:
        contexts = [mx.gpu(i) for i in range(num_gpus)] if num_gpus else [mx.cpu()]
    gpus = [c for c in contexts if c.device_type == 'gpu']
    if gpus:
        visible = mx.context.num_gpus()
        wanted = max(c.device_id for c in gpus) + 1
        if wanted > visible:
            raise EvalError('%s: %d GPU(s) asked for, %d visible (this mxnet build: %s)'
                            % ('--ctx' if ctx_text else '--num-gpus', wanted, visible,
                               'CPU-only' if visible == 0 else 'CUDA'))
    return contexts


def check_dtype(dtype, contexts):
    """float16 runs on GPUs only: MXNet 1.9's CPU kernels have no float16 convolution."""
    if dtype == 'float16' and all(c.device_type == 'cpu' for c in contexts):
        raise EvalError('--dtype float16 needs a GPU (--ctx gpu0 or --num-gpus 1): MXNet\'s '
                        'CPU operators have no float16 convolution; on CPU use float32')


def crop_views(images, size, flips):
    """The 4 corner crops and the centre crop (``size`` square) of (N, C, S, S) ``images``,
    each (N, C, size, size), and with ``flips`` their horizontal mirrors (ten views)."""
    side_h, side_w = images.shape[2], images.shape[3]
    if size > min(side_h, side_w):
        raise EvalError('crop %d is larger than the resized image %dx%d' % (size, side_h, side_w))
    top, left = (side_h - size) // 2, (side_w - size) // 2
    corners = [(0, 0), (0, side_w - size), (side_h - size, 0), (side_h - size, side_w - size),
               (top, left)]
    views = [images[:, :, y:y + size, x:x + size] for y, x in corners]
    if flips:
        views += [v[:, :, :, ::-1] for v in views]
    return [np.ascontiguousarray(v) for v in views]


class MultiCrop:
    """A predictor seen through five or ten crops: the mean of the crops' logits (as
    LW-DNA's ten-crop test, ``output.view(bs, ncrops, -1).mean(1)``). Its input is the
    (N, C, S, S) resized image, S = ceil(size / crop_ratio)."""

    def __init__(self, predictor, size, flips):
        self.predictor, self.size, self.flips = predictor, size, flips

    def __call__(self, batch):
        views = crop_views(batch, self.size, self.flips)
        return np.mean([np.asarray(self.predictor(v)) for v in views], axis=0)
