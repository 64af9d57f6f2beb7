"""LW-DNA nets with their widths padded for fast CPU kernels, computing the same function."""
import numpy as np
import mxnet as mx

from .config import validate_config
from .nets import LWDNAResNet

__all__ = ['pad_widths', 'map_widths', 'cpu_widths', 'PaddedLWDNAResNet']


def map_widths(config, width_of):
    """``config`` (a normalised width config) with every width ``w`` replaced by
    ``width_of(w)``."""
    return {'stem': width_of(config['stem']),
            'stage_out': [width_of(w) for w in config['stage_out']],
            'blocks': [[[width_of(w) for w in block] for block in stage]
                       for stage in config['blocks']]}


def _round_up(width, multiple):
    return -(-width // multiple) * multiple


def cpu_widths(config, depth, multiple=16):
    """The widths oneDNN runs ``config`` (of ResNet-``depth``) fastest at, each no narrower
    than the config's: every width rounded up to ``multiple`` (the float32 lanes of one
    SIMD register: 16 on AVX-512, 8 on AVX2), and, on AVX-512 (``multiple=16``), the
    widths of the bottlenecks' 3x3 convs to the smallest multiple of 32 or of 48.

    Why the 3x3 rule: MXNet 1.9.1's oneDNN (2.4) runs a 3x3 conv on its fast f32
    ``brgconv:avx512_core`` kernel only when the output width is a multiple of 32 or 48
    (seen in its verbose log: 224, 240, 256, 288, 512 do; 80, 112, 272, 496 run the
    older ``jit:avx512_common`` kernel). On the golden LW-DNA-50 shrink config this
    costs 1.4% more MACs than rounding to 16 (4.12 vs 4.06 G) and ran 3-5% faster at
    batch 1 (at par at batch 16), 1 thread, in interleaved A/B runs
    (docs/lwdna.md "Speed"). Basic-block depths (18, 34) get the plain rounding (not
    measured).
    """
    cfg = validate_config(config, depth)
    padded = map_widths(cfg, lambda width: _round_up(width, multiple))
    if multiple == 16 and depth >= 50:
        padded['blocks'] = [[[conv1, min(_round_up(conv2, 32), _round_up(conv2, 48))]
                             for conv1, conv2 in stage] for stage in padded['blocks']]
    return padded


def _widths(config):
    return [config['stem']] + list(config['stage_out']) + \
        [w for stage in config['blocks'] for block in stage for w in block]


def pad_widths(net, multiple=8, ctx=None, config=None, unpadded_files=False):
    """An :class:`LWDNAResNet` computing exactly what ``net`` computes, with every width
    rounded up to a multiple of ``multiple`` (padding: zero kernels, BN gamma = beta = mean
    = 0 and var = 1, zero classifier columns, so every padded channel stays 0).

    Why: oneDNN (MXNet's CPU backend) runs its direct convolution kernels only when the
    output channels are a multiple of 8 (16 for the AVX-512 kernels); the irregular widths
    that :func:`.search.shrink` finds (65, 57, 983, ...) fall back to im2col + GEMM, about
    twice as slow per MAC. Padding costs a few percent more MACs (3.71 -> 3.88 G for the
    golden ResNet-50 config at ``multiple=8``). ``net`` must be initialised; returns an
    initialised net (same depth, classes and norm_kwargs) on ``ctx`` (a context or a list;
    default: ``net``'s first context). ``config``: the padded widths themselves (a config no narrower than
    ``net.config`` anywhere) instead of rounding every width up to ``multiple``.
    ``unpadded_files``: return a :class:`PaddedLWDNAResNet`, whose parameter files have
    ``net``'s layout (to train padded: every padded entry gets an exactly zero gradient,
    so it stays zero under SGD, momentum, weight decay or Adam).
    """
    if not isinstance(net, LWDNAResNet):
        raise TypeError('pad_widths expects an LWDNAResNet, got %s' % type(net).__name__)
    if int(multiple) != multiple or multiple < 1:
        raise ValueError('multiple must be a positive integer, got %r' % (multiple,))

    cfg = net.config
    padded = map_widths(cfg, lambda width: _round_up(width, multiple)) if config is None \
        else validate_config(config, net.depth)
    narrower = [(a, b) for a, b in zip(_widths(cfg), _widths(padded)) if b < a]
    if narrower:
        raise ValueError('pad_widths: config width %d is narrower than the net\'s %d (padding '
                         'only widens)' % (narrower[0][1], narrower[0][0]))
    source = net._collect_params_with_prefix()
    ctx = ctx or next(iter(source.values())).list_ctx()[0]
    if unpadded_files:
        out = PaddedLWDNAResNet(net.depth, cfg, padded, classes=net.fc._units,
                                norm_kwargs=net.norm_kwargs)
    else:
        out = LWDNAResNet(net.depth, config=padded, classes=net.fc._units,
                          norm_kwargs=net.norm_kwargs)
    for name, param in out._collect_params_with_prefix().items():
        old = source[name].data().asnumpy()
        value = np.full(param.shape, _fill(name), np.float32)
        value[tuple(slice(0, n) for n in old.shape)] = old
        param._load_init(mx.nd.array(value), ctx)
    return out


def _fill(name):
    """The value of a padded entry: BN running variances 1 (any positive value is exact:
    gamma = beta = mean = 0 there), everything else 0."""
    return 1.0 if name.endswith('running_var') else 0.0


class PaddedLWDNAResNet(LWDNAResNet):
    """An :class:`LWDNAResNet` with the zero-padded widths ``config`` whose parameter files
    have the layout of the unpadded net of ``real_config`` (what ``eval.py``,
    ``convert`` and a resumed run expect): ``save_parameters`` writes the real slices,
    ``load_parameters`` reads files of either layout (unpadded ones are zero-padded).
    Built by ``pad_widths(net, ..., unpadded_files=True)``; trained by
    ``train_imagenet.py --lwdna-pad N``.
    """

    def __init__(self, depth, real_config, config, classes=1000, norm_kwargs=None, **kwargs):
        super().__init__(depth, config=config, classes=classes, norm_kwargs=norm_kwargs,
                         **kwargs)
        self.real_config = validate_config(real_config, depth)
        real = LWDNAResNet(depth, config=self.real_config, classes=classes,
                           norm_kwargs=norm_kwargs)
        self._real_shapes = {name: param.shape
                             for name, param in real._collect_params_with_prefix().items()}

    def save_parameters(self, filename, deduplicate=False):
        """The parameters in the unpadded net's layout (``mx.nd.save``, as Gluon's)."""
        arrays = {}
        for name, param in self._collect_params_with_prefix().items():
            value = param._reduce().asnumpy()
            arrays[name] = mx.nd.array(
                value[tuple(slice(0, n) for n in self._real_shapes[name])], dtype=value.dtype)
        mx.nd.save(filename, arrays)

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False,
                        cast_dtype=False, dtype_source='current'):
        """Gluon's ``load_parameters`` (structural names), taking unpadded arrays too."""
        loaded = mx.nd.load(filename)
        params = self._collect_params_with_prefix()
        if not isinstance(loaded, dict):
            raise ValueError('%s holds no named parameters' % filename)
        if not allow_missing:
            for name in params:
                if name not in loaded:
                    raise ValueError("Parameter '%s' is missing in file '%s'" % (name, filename))
        for name, array in loaded.items():
            if name not in params:
                if ignore_extra:
                    continue
                raise ValueError("Parameter '%s' loaded from file '%s' is not present in "
                                 "this net" % (name, filename))
            shape = params[name].shape
            if array.shape != shape:
                if array.shape != self._real_shapes[name]:
                    raise ValueError("Parameter '%s' of shape %s in file '%s' fits neither "
                                     "%s nor the unpadded %s" % (
                                         name, array.shape, filename, shape,
                                         self._real_shapes[name]))
                value = np.full(shape, _fill(name), dtype=array.dtype)
                value[tuple(slice(0, n) for n in array.shape)] = array.asnumpy()
                array = mx.nd.array(value, dtype=array.dtype)
            params[name]._load_init(array, ctx, cast_dtype=cast_dtype,
                                    dtype_source=dtype_source)
