"""ED-Net: ResNet / ResNeXt / SE bottlenecks with a lightweight encoder-decoder path.

Jin et al., "A Lightweight Encoder-Decoder Path for Deep Residual Networks", IEEE TNNLS;
reference code megvii-research/ED-Net (PyTorch, commit 9632993, no weights, no licence).

Every bottleneck gets a second path beside the residual one. It reads the *shortcut's
output* (the projected tensor in a strided or widening block, the input otherwise),
encodes it with a 3x3 stride-2 conv (32 groups, C -> ed_width) + BN + ReLU and decodes
it back with a 3x3 stride-2 transposed conv (32 groups, ed_width -> C) + BN::

    proj = shortcut(x)
    out  = relu(residual(x) + proj + decoder(encoder(proj)))

One parametrised block, :class:`EDBottleneck`, serves all sixteen registered models: it
subclasses the shared :class:`gluon_nets.nn.Bottleneck` (whose ``residual()`` includes
the optional :class:`gluon_nets.nn.SqueezeExcite`) and only adds the ED path.

Widths (stage s = 0..3, block output ``out = 256 * 2**s`` in every family):

=============  ===========================  =========  =================  =========
family         residual width               3x3 groups  ED width           ED groups
=============  ===========================  =========  =================  =========
ResNet         floor(64 * 2**s * ratio)     1          64 * 2**s          32
ResNeXt CxKd   C * K * 2**s                 C          128 * 2**s         32
=============  ===========================  =========  =================  =========

With ``bottleneck_ratio=1`` / ``cardinality=32, bottleneck_width=4`` these are exactly
the reference's ``resnet*_ed`` / ``resnext*_ed`` (ResNeXt expansion 2, ResNeXt-101 is
32x4d). ``ed=False`` drops the ED path and leaves the plain ResNet / ResNeXt baseline.

Input sizes: the reference runs only for 221..224-pixel sides (fixed 7x7 head pool, fixed
SE pools, ``output_padding`` 1 in layer1-3 and 0 in layer4). There our nets are exactly the
reference. As an extension, any side length works: pooling is global and each stage's
decoder ``output_padding`` follows the parity of that stage's map (even -> 1, odd -> 0), so
the decoder always gives back the shortcut's size. The paddings are set from ``input_size``
at construction and re-chosen automatically when an NDArray of another size is fed (the
cached graph is then rebuilt). A symbolic call (``count_macs``, ``export``, use inside a
hybridized parent) uses the current setting: build with ``input_size=`` for other sizes.
"""
import math

import mxnet as mx
import numpy as np
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..model_zoo import (ConversionPlan, get_model, register_converter, register_family,
                         register_model)
from ..nn import Bottleneck, ConvBNAct, ResNetStem, batch_norm, resnet_stage_blocks

__all__ = ['EDBottleneck', 'EDDecoder', 'EDNet', 'EDNetInit', 'ed_output_paddings',
           'ed_resnet', 'ed_resnext', 'reference_state_dict_name']

ED_GROUPS = 32          # groups of the encoder / decoder in every reference model
STAGE_OUT = (256, 512, 1024, 2048)
STAGE_STRIDES = (1, 2, 2, 2)
_REFERENCE_DEPTHS = (50, 101, 152)  # blocks per stage: nn.RESNET_STAGE_BLOCKS

_PAPER = ('Jin, Xie, Wei, Zhao, Zhang, Tan, "A Lightweight Encoder-Decoder Path for Deep '
          'Residual Networks", IEEE TNNLS')
_REF = 'megvii-research/ED-Net@96329937dbdbdb5a7ad20f151368d81161cf91fe:%s'


def _halve(size):
    """Output side of every stride-2 layer of the net (7x7/2 pad 3, 3x3/2 pad 1, 1x1/2, max
    pool 3x3/2 pad 1, floor rounding): ceil(size / 2)."""
    return (size - 1) // 2 + 1


def ed_output_paddings(input_size):
    """Decoder ``output_padding`` (ph, pw) of each stage for an input of ``input_size``.

    ``input_size`` is an int or (H, W). The encoder maps a side n to ceil(n/2) = h and the
    3x3/2 pad-1 decoder maps h back to 2h - 1 + output_padding, which is n when the padding
    is 1 for even n and 0 for odd n. At 221..224 px this gives the reference's
    ((1, 1), (1, 1), (1, 1), (0, 0)).

    Returns a list of four (ph, pw) tuples.
    """
    if isinstance(input_size, (int, np.integer)):
        input_size = (input_size, input_size)
    sides = tuple(int(s) for s in input_size)
    if len(sides) != 2 or min(sides) < 1:
        raise ValueError('input_size must be a positive int or (H, W), got %r' % (input_size,))
    sides = tuple(_halve(_halve(s)) for s in sides)   # stem conv + max pool
    paddings = []
    for stride in STAGE_STRIDES:
        if stride == 2:
            sides = tuple(_halve(s) for s in sides)
        paddings.append(tuple(1 - s % 2 for s in sides))
    return paddings


class EDDecoder(HybridBlock):
    """Decoder of the ED path: 3x3 stride-2 pad-1 grouped transposed conv (no bias) -> BN.

    (N, in_channels, h, w) -> (N, channels, 2h - 1 + ph, 2w - 1 + pw). Attributes ``weight``
    (in_channels, channels // groups, 3, 3), the layout of PyTorch's ConvTranspose2d and of
    MXNet's Deconvolution (copied as is, no flip), and ``bn``. ``output_padding`` may be
    changed before the graph is (re)built; the owner net does that from the input size.
    Uses ``adj`` rather than ``target_shape``: a grouped Deconvolution with ``target_shape``
    fails in mxnet 1.9.1's oneDNN backend.
    """

    def __init__(self, in_channels, channels, groups=ED_GROUPS, output_padding=(1, 1),
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if in_channels % groups or channels % groups:
            raise ValueError('ED decoder: %d -> %d channels are not divisible by %d groups'
                             % (in_channels, channels, groups))
        self._channels = channels
        self._groups = groups
        self.output_padding = tuple(output_padding)
        with self.name_scope():
            self.weight = self.params.get('weight', shape=(in_channels, channels // groups, 3, 3))
            self.bn = batch_norm(channels, norm_kwargs)

    def hybrid_forward(self, F, x, weight):
        x = F.Deconvolution(x, weight, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                            adj=self.output_padding, num_filter=self._channels,
                            num_group=self._groups, no_bias=True, name='fwd')
        return self.bn(x)


class EDBottleneck(Bottleneck):
    """Bottleneck with an optional encoder-decoder path (the ED-Net block).

    (N, in_channels, H, W) -> (N, out_channels, H/strides, W/strides). The residual branch,
    shortcut and SE are the shared :class:`~gluon_nets.nn.Bottleneck` (1x1 in -> width, 3x3
    width -> width with ``strides`` and ``groups``, 1x1 width -> out, SE after bn3 when
    ``se_reduction``). With ``ed=True`` the block adds ``encoder`` (3x3/2 conv
    out -> ed_width, ``ed_groups`` groups, BN, ReLU) and ``decoder`` (:class:`EDDecoder`,
    ed_width -> out) applied to the shortcut's output, whose result is summed with the
    residual and the shortcut before the final ReLU.
    """

    def __init__(self, in_channels, width, out_channels, strides=1, groups=1, se_reduction=None,
                 ed=True, ed_width=None, ed_groups=ED_GROUPS, output_padding=(1, 1),
                 norm_kwargs=None, **kwargs):
        super().__init__(in_channels, width, width, out_channels, strides=strides, groups=groups,
                         se_reduction=se_reduction, norm_kwargs=norm_kwargs, **kwargs)
        self.encoder = self.decoder = None
        if ed:
            ed_width = ed_width or width
            if ed_width % ed_groups or out_channels % ed_groups:
                raise ValueError('ED path: %d and %d channels must be divisible by %d groups'
                                 % (out_channels, ed_width, ed_groups))
            with self.name_scope():
                self.encoder = ConvBNAct(out_channels, ed_width, 3, strides=2, padding=1,
                                         groups=ed_groups, norm_kwargs=norm_kwargs)
                self.decoder = EDDecoder(ed_width, out_channels, ed_groups, output_padding,
                                         norm_kwargs)

    def hybrid_forward(self, F, x):
        proj = self.shortcut(x)
        if self.decoder is not None:
            # the reference sums (residual + proj) + decoded; adding proj + decoded first is
            # the same up to float rounding and leaves conv3 -> bn3 -> add -> relu as the
            # pattern that oneDNN fuses into one conv (optimize_for('MKLDNN'))
            proj = proj + self.decoder(self.encoder(proj))
        return self.relu(self.residual(x) + proj)


@mx.init.register
class EDNetInit(mx.init.Initializer):
    """The reference's initialisation, per layer.

    * conv and transposed-conv weights (4-d): N(0, sqrt(2 / fan_out)) with PyTorch's
      fan_out = shape[0] * kh * kw, i.e. ``kaiming_normal_(mode='fan_out')``. For a
      transposed conv (in, out/groups, kh, kw) that is in * kh * kw, as in the reference.
    * dense weights (2-d: the classifier and the SE FCs): PyTorch's default Linear init,
      U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (std 1/sqrt(3 fan_in)).
    * biases 0; BN gamma 1, beta 0, running mean 0, var 1.

    ``MSRAPrelu(factor_type='out', slope=0)`` matches the conv weights but not the dense
    ones, hence this class. Every ED-Net net carries one as ``net.default_init``.
    """

    def _init_weight(self, name, arr):
        shape = arr.shape
        if len(shape) == 4:
            std = math.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
            arr[:] = mx.nd.random.normal(0, std, shape=shape, dtype=arr.dtype)
        elif len(shape) == 2:
            bound = 1.0 / math.sqrt(shape[1])
            arr[:] = mx.nd.random.uniform(-bound, bound, shape=shape, dtype=arr.dtype)
        else:
            raise ValueError('EDNetInit: no rule for weight %s of shape %s' % (name, shape))


class EDNet(HybridBlock):
    """ResNet-style net of :class:`EDBottleneck` stages; (N, 3, H, W) -> (N, classes).

    Attributes: ``stem`` (7x7/2 conv, BN, ReLU, 3x3/2 max pool), ``layer1``..``layer4``
    (HybridSequential of blocks), ``pool`` (global average), ``fc``; ``default_init``
    (:class:`EDNetInit`, the reference's initialisation). See the module docstring for the
    widths and the input-size rule.

    Parameters
    ----------
    layers : 4 ints, blocks per stage.
    widths, groups, ed_widths : 4 ints each, residual width / 3x3 groups / ED width per stage.
    se : bool, SE (reduction 16) on the residual.
    ed : bool, add the encoder-decoder path.
    classes : int.
    input_size : int or (H, W), the size the decoder paddings are first chosen for.
    """

    def __init__(self, layers, widths, groups, ed_widths, se=False, ed=True, classes=1000,
                 input_size=224, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        paddings = ed_output_paddings(input_size)
        self._input_size = self._sides(input_size)
        self.default_init = EDNetInit()
        with self.name_scope():
            self.stem = ResNetStem(64, norm_kwargs=norm_kwargs)
            in_channels = 64
            for s, (blocks, width, group, ed_width, out) in enumerate(
                    zip(layers, widths, groups, ed_widths, STAGE_OUT)):
                stage = nn.HybridSequential(prefix='layer%d_' % (s + 1))
                with stage.name_scope():
                    for i in range(blocks):
                        stage.add(EDBottleneck(
                            in_channels, width, out, STAGE_STRIDES[s] if i == 0 else 1, group,
                            se_reduction=16 if se else None, ed=ed, ed_width=ed_width,
                            output_padding=paddings[s], norm_kwargs=norm_kwargs))
                        in_channels = out
                setattr(self, 'layer%d' % (s + 1), stage)
            self.pool = nn.GlobalAvgPool2D()
            self.fc = nn.Dense(classes, in_units=in_channels)

    @staticmethod
    def _sides(size):
        return (size, size) if isinstance(size, (int, np.integer)) else tuple(size)

    def _decoders(self):
        for s in range(4):
            for block in getattr(self, 'layer%d' % (s + 1)):
                if block.decoder is not None:
                    yield s, block.decoder

    def set_input_size(self, input_size):
        """Choose every decoder's ``output_padding`` for ``input_size`` (int or (H, W)); the
        cached graph is dropped if anything changed. Returns the paddings per stage."""
        paddings = ed_output_paddings(input_size)
        changed = False
        for s, decoder in self._decoders():
            if decoder.output_padding != paddings[s]:
                decoder.output_padding = paddings[s]
                changed = True
        self._input_size = self._sides(input_size)
        if changed:
            self._clear_cached_op()
        return paddings

    def forward(self, x, *args):
        if isinstance(x, mx.nd.NDArray) and tuple(x.shape[2:]) != self._input_size:
            if x.ndim != 4:
                raise ValueError('ED-Net expects (N, 3, H, W) input, got shape %s' % (x.shape,))
            self.set_input_size(tuple(x.shape[2:]))
        return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(x))


def ed_resnet(depth, se=False, ed=True, bottleneck_ratio=1.0, classes=1000, input_size=224,
              **kwargs):
    """ED-ResNet builder; (N, 3, H, W) -> (N, classes).

    ``bottleneck_ratio`` scales the residual branch width (conv1 out, conv2, conv3 in:
    floor(64 * 2**s * ratio)); block outputs and the ED path (width 64 * 2**s, 32 groups)
    stay as in the reference. 1.0 is the reference.
    """
    layers = resnet_stage_blocks(depth, _REFERENCE_DEPTHS)
    if not bottleneck_ratio > 0:
        raise ValueError('bottleneck_ratio must be > 0, got %r' % (bottleneck_ratio,))
    widths = [int(math.floor(64 * 2 ** s * bottleneck_ratio)) for s in range(4)]
    if widths[0] < 1:
        raise ValueError('bottleneck_ratio %r leaves the first stage without channels'
                         % (bottleneck_ratio,))
    return EDNet(layers, widths, [1] * 4, [64 * 2 ** s for s in range(4)], se=se, ed=ed,
                 classes=classes, input_size=input_size, **kwargs)


def ed_resnext(depth, se=False, ed=True, cardinality=32, bottleneck_width=4, classes=1000,
               input_size=224, **kwargs):
    """ED-ResNeXt builder; (N, 3, H, W) -> (N, classes).

    Residual width ``cardinality * bottleneck_width * 2**s`` with ``cardinality`` groups in
    the 3x3 conv; block outputs (256 * 2**s, expansion 2 of the reference's 32x4d) and the
    ED path (width 128 * 2**s, 32 groups) stay as in the reference whatever the cardinality.
    (The reference class's own ``C`` argument would change all of them; it is only ever
    used with C=32, d=4, which is our default.)
    """
    layers = resnet_stage_blocks(depth, _REFERENCE_DEPTHS)
    for key, value in (('cardinality', cardinality), ('bottleneck_width', bottleneck_width)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError('%s must be a positive int, got %r' % (key, value))
    widths = [cardinality * bottleneck_width * 2 ** s for s in range(4)]
    return EDNet(layers, widths, [cardinality] * 4, [128 * 2 ** s for s in range(4)], se=se,
                 ed=ed, classes=classes, input_size=input_size, **kwargs)


# ---------------------------------------------------------------------------------------
# registry: one plain function per name; ed=False gives the plain baseline of each

register_family(
    'ednet', paper=_PAPER, reference=_REF % 'ed_resnet.py',
    # imagenet_train.py's validation: Resize(256) (torchvision, bilinear), CenterCrop(224),
    # ImageNet mean/std on 0-1 pixels
    data_config=dict(input_size=(3, 224, 224), crop_ratio=224 / 256, interpolation='bilinear',
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    classifier='fc',
    reference_init=lambda name: EDNetInit(),    # imagenet_train.py's kaiming fan_out
    weights='none: megvii-research/ED-Net publishes no weights (and declares no licence); '
            'checkpoints of its imagenet_train.py convert with python -m gluon_nets.convert')


@register_model('ednet')
def ed_resnet50(classes=1000, ed=True, bottleneck_ratio=1.0, input_size=224):
    """ED-ResNet-50 (reference ``resnet50_ed``); ``ed=False``: ResNet-50."""
    return ed_resnet(50, False, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet')
def ed_resnet101(classes=1000, ed=True, bottleneck_ratio=1.0, input_size=224):
    """ED-ResNet-101 (reference ``resnet101_ed``); ``ed=False``: ResNet-101."""
    return ed_resnet(101, False, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet', slow=True)
def ed_resnet152(classes=1000, ed=True, bottleneck_ratio=1.0, input_size=224):
    """ED-ResNet-152 (reference ``resnet152_ed``); ``ed=False``: ResNet-152."""
    return ed_resnet(152, False, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_se_resnet.py')
def ed_se_resnet50(classes=1000, ed=True, bottleneck_ratio=1.0, input_size=224):
    """ED-SE-ResNet-50 (reference ``se_resnet50_ed``); ``ed=False``: SE-ResNet-50."""
    return ed_resnet(50, True, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_se_resnet.py')
def ed_se_resnet101(classes=1000, ed=True, bottleneck_ratio=1.0, input_size=224):
    """ED-SE-ResNet-101 (reference ``se_resnet101_ed``); ``ed=False``: SE-ResNet-101."""
    return ed_resnet(101, True, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_se_resnet.py', slow=True)
def ed_se_resnet152(classes=1000, ed=True, bottleneck_ratio=1.0, input_size=224):
    """ED-SE-ResNet-152 (reference ``se_resnet152_ed``); ``ed=False``: SE-ResNet-152."""
    return ed_resnet(152, True, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_resnext.py')
def ed_resnext50_32x4d(classes=1000, ed=True, cardinality=32, bottleneck_width=4,
                       input_size=224):
    """ED-ResNeXt-50 32x4d (reference ``resnext50_ed``); ``ed=False``: ResNeXt-50 32x4d."""
    return ed_resnext(50, False, ed, cardinality, bottleneck_width, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_resnext.py')
def ed_resnext101_32x4d(classes=1000, ed=True, cardinality=32, bottleneck_width=4,
                        input_size=224):
    """ED-ResNeXt-101 32x4d (reference ``resnext101_ed``); ``ed=False``: ResNeXt-101 32x4d."""
    return ed_resnext(101, False, ed, cardinality, bottleneck_width, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_se_resnext.py')
def ed_se_resnext50_32x4d(classes=1000, ed=True, cardinality=32, bottleneck_width=4,
                          input_size=224):
    """ED-SE-ResNeXt-50 32x4d (reference ``se_resnext50_ed``)."""
    return ed_resnext(50, True, ed, cardinality, bottleneck_width, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_se_resnext.py')
def ed_se_resnext101_32x4d(classes=1000, ed=True, cardinality=32, bottleneck_width=4,
                           input_size=224):
    """ED-SE-ResNeXt-101 32x4d (reference ``se_resnext101_ed``)."""
    return ed_resnext(101, True, ed, cardinality, bottleneck_width, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_se_resnext.py', slow=True)
def ed_se_resnext152_32x4d(classes=1000, ed=True, cardinality=32, bottleneck_width=4,
                           input_size=224):
    """ED-SE-ResNeXt-152 32x4d (reference ``se_resnext152_ed``; it has no plain ResNeXt-152)."""
    return ed_resnext(152, True, ed, cardinality, bottleneck_width, classes, input_size)


# "-B" lightweight variants: NOT in the reference code; widths unknown (see docs/ednet.md).

@register_model('ednet')
def ed_resnet50_b(classes=1000, ed=True, bottleneck_ratio=0.5, input_size=224):
    """ED-ResNet-50 at half bottleneck width: an APPROXIMATION of the README's ED-ResNet-50-B.

    Not in the reference code, no weights; the README's 2.1 GFLOPs are not reproduced
    (1.94 G MACs with transposed convs counted on their input, 2.11 G on their output).
    """
    return ed_resnet(50, False, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet')
def ed_resnet101_b(classes=1000, ed=True, bottleneck_ratio=0.5, input_size=224):
    """ED-ResNet-101 at half bottleneck width: an APPROXIMATION of the README's ED-ResNet-101-B.

    Not a reproduction: 3.9 GFLOPs there, 3.43 G MACs here.
    """
    return ed_resnet(101, False, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet', slow=True)
def ed_resnet152_b(classes=1000, ed=True, bottleneck_ratio=0.5, input_size=224):
    """ED-ResNet-152 at half bottleneck width: an APPROXIMATION of the README's ED-ResNet-152-B.

    Not a reproduction: 5.6 GFLOPs there, 4.92 G MACs here.
    """
    return ed_resnet(152, False, ed, bottleneck_ratio, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_resnext.py')
def ed_resnext50_16x4d_b(classes=1000, ed=True, cardinality=16, bottleneck_width=4,
                         input_size=224):
    """ED-ResNeXt-50 16x4d: an APPROXIMATION of the README's ED-ResNeXt-50-B.

    The residual branches are 16x4d, the ED path is unchanged. Not a reproduction: 2.9
    GFLOPs there, 2.60 G MACs here.
    """
    return ed_resnext(50, False, ed, cardinality, bottleneck_width, classes, input_size)


@register_model('ednet', reference=_REF % 'ed_resnext.py')
def ed_resnext101_16x4d_b(classes=1000, ed=True, cardinality=16, bottleneck_width=4,
                          input_size=224):
    """ED-ResNeXt-101 16x4d: an APPROXIMATION of the README's ED-ResNeXt-101-B.

    The residual branches are 16x4d, the ED path is unchanged. Not a reproduction: 5.4
    GFLOPs there, 4.72 G MACs here.
    """
    return ed_resnext(101, False, ed, cardinality, bottleneck_width, classes, input_size)


# ---------------------------------------------------------------------------------------
# converter: reference state_dict names -> ours (a rename; no array is transformed)

_BLOCK_RENAMES = (
    ('conv1.', 'conv_conv1.'), ('conv2.', 'conv_conv2.'), ('conv3.', 'conv_conv3.'),
    ('bn1.', 'bn_bn1.'), ('bn2.', 'bn_bn2.'), ('bn3.', 'bn_bn3.'),
    ('se.fc1.', 'fc_reduction.'), ('se.fc2.', 'fc_extention.'),   # sic: the reference's name
    ('downsample.0.', 'shortcut.shortcut_conv.'), ('downsample.1.', 'shortcut.shortcut_bn.'),
    ('encoder.conv.', 'encoder.encoder_conv.'), ('encoder.bn.', 'encoder.encoder_bn.'),
    ('decoder.bn.', 'decoder.decoder_bn.'), ('decoder.', 'decoder.decoder_conv.'),
)
_LEAF_RENAMES = {'gamma': 'weight', 'beta': 'bias'}


def reference_state_dict_name(ours):
    """Reference (PyTorch state_dict) name of our structural parameter name, e.g.
    ``layer2.0.downsample.1.gamma`` -> ``layer2.layer2_block_0.shortcut.shortcut_bn.weight``."""
    head, _, leaf = ours.rpartition('.')
    leaf = _LEAF_RENAMES.get(leaf, leaf)
    parts = head.split('.')
    if parts[0] == 'stem':
        return '%s.%s' % (parts[1], leaf)
    if parts[0] == 'fc':
        return 'fc.%s' % leaf
    stage, index, rest = parts[0], parts[1], '.'.join(parts[2:]) + '.'
    for mine, theirs in _BLOCK_RENAMES:
        if rest.startswith(mine):
            rest = theirs + rest[len(mine):]
            break
    else:
        raise KeyError('no reference name for %s' % ours)
    return '%s.%s_block_%s.%s%s' % (stage, stage, index, rest, leaf)


@register_converter('ednet')
def _convert_ednet(name, state_dict, **kwargs):
    """Reference ED-Net state_dict (``module.``/``{'state_dict'}`` already stripped by the
    caller) -> plan for ``get_model(name, **kwargs)``: BN weight/bias -> gamma/beta, running
    statistics by name, ``num_batches_tracked`` skipped, tensors copied as is (the
    transposed-conv layout is the same in both frameworks)."""
    net = get_model(name, **kwargs)
    mapping = {ours: reference_state_dict_name(ours)
               for ours in net._collect_params_with_prefix()}
    return ConversionPlan(net, mapping)
