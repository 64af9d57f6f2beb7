"""Evaluation options shared with the trainer and the exporter: devices and dtype
(``--ctx``/``--num-gpus``, ``--dtype``), multi-crop views (``--ten-crop``/``--five-crop``)
and the resize interpolation (``--interpolation``)."""
import numpy as np

from .loop import EvalError

__all__ = ['INTERPOLATIONS', 'parse_contexts', 'check_dtype', 'crop_views', 'MultiCrop']

#: ``--interpolation`` names -> OpenCV codes (as ``mx.image.imresize`` and Gluon's
#: ``transforms.Resize`` take them)
INTERPOLATIONS = {'nearest': 0, 'bilinear': 1, 'bicubic': 2, 'area': 3, 'lanczos': 4}


def parse_contexts(ctx_text=None, num_gpus=0):
    """:func:`gluon_nets.utils.devices.parse_contexts`, its error as :class:`EvalError`."""
    from ..utils import devices
    try:
        return devices.parse_contexts(ctx_text, num_gpus)
    except devices.DeviceError as err:
        raise EvalError(str(err)) from None


def check_dtype(dtype, contexts):
    """:func:`gluon_nets.utils.devices.check_dtype`, its error as :class:`EvalError`."""
    from ..utils import devices
    try:
        devices.check_dtype(dtype, contexts)
    except devices.DeviceError as err:
        raise EvalError(str(err)) from None


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
