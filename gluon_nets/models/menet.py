"""MENet (Merging-and-Evolution networks) and the two baselines of its repository,
ShuffleNet v1 and MobileNet v1.

Paper: Qin et al., "Merging and Evolution: Improving Convolutional Neural Networks
for Mobile Applications", IJCNN 2018 (arXiv 1803.09127). Reference code:
clavichord93/MENet (PyTorch 0.2), ``pyvision/models/ImageNet/{MENet,ShuffleNet,MobileNet}.py``.

Layout (NCHW, 224 px input)::

    stem      3x3/2 conv -> BN -> ReLU -> 3x3/2 max pool        (N, stem, 56, 56)
    stage 1   1 downsampling unit + 3 units, width A             (N, A, 28, 28)
    stage 2   1 downsampling unit + 7 units, width 2A            (N, 2A, 14, 14)
    stage 3   1 downsampling unit + 3 units, width 4A            (N, 4A, 7, 7)
    head      global average pool -> Dense(classes)             (N, classes)

A MENet unit is a ShuffleNet v1 unit whose depthwise output is gated, elementwise and
at full resolution, by a narrow dense "side" branch (merging 1x1 -> evolution 3x3 ->
1x1 -> sigmoid) that reads the shuffled compress output.

Input size: the reference head is a fixed 7x7 average pool, which is global at 224 px
only. We pool globally, so 224 px gives the reference's numbers exactly and every
other size (down to 1 px; the net downsamples by 32 with padding) is well defined:
the logits are the classifier applied to the mean of the last feature map. The
reference's last map is ceil(H / 32) wide: its fixed pool is global for 193-224 px,
averages only the top-left 7x7 window for 225-416 px and fails for <= 192 and >= 417 px.
"""
import mxnet as mx
import numpy as np
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..model_zoo import (ConversionPlan, get_model, register_converter, register_family,
                         register_model)
from ..nn import ChannelShuffle, ConvBNAct, concat_channels
from ..nn.init import KaimingInit

__all__ = ['ShuffleUnit', 'MEUnit', 'MENet', 'MobileNetV1', 'menet', 'shufflenet',
           'mobilenet', 'shufflenet_widths', 'fold_batchnorm']

_PAPER = 'Qin et al., Merging and Evolution: Improving CNNs for Mobile Applications, IJCNN 2018'
_REF = 'clavichord93/MENet@7f2f1c21ba7a8c24fa75be8f84452756a8fd8b0b:pyvision/models/ImageNet/'
_SHUFFLENET_PAPER = 'Zhang et al., ShuffleNet, CVPR 2018 (baseline as coded in clavichord93/MENet)'
_MOBILENET_PAPER = 'Howard et al., MobileNets, arXiv 1704.04861 (baseline as coded in clavichord93/MENet)'


class _NamedSequential(HybridBlock):
    """Runs its children in the order they were added, under the names given, so that
    structural parameter names read like the reference's (``features.stage_1_1...``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._order = []

    def add(self, name, block):
        setattr(self, name, block)
        self._order.append(name)

    def hybrid_forward(self, F, x):
        for name in self._order:
            x = getattr(self, name)(x)
        return x


class _Stem(HybridBlock):
    """3x3/2 conv -> BN -> ReLU [-> 3x3/2 max pool]; (N, 3, H, W) -> (N, C, H/4, W/4)."""

    def __init__(self, channels, pool=True, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = ConvBNAct(3, channels, 3, 2, 1, norm_kwargs=norm_kwargs)
            self.pool = nn.MaxPool2D(3, 2, 1) if pool else None

    def hybrid_forward(self, F, x):
        x = self.conv(x)
        return self.pool(x) if self.pool is not None else x


class _PerGroupConv2D(nn.Conv2D):
    """A grouped 1x1 convolution run as one dense convolution per group.

    Same parameter (``weight`` of shape (out, in / groups, 1, 1)), same numbers and the same
    MACs as ``nn.Conv2D(groups=g)``; only the oneDNN kernel differs. When the widths per
    group are multiples of 4 but not of 16 (MENet's stage 3: 304 -> 76 for 228-g3), oneDNN
    1.9/2.x picks its 4-channel-blocked grouped kernel, which we measured 5-25x slower than
    g dense convolutions plus a split and a concat (bench/menet.py).
    """

    def hybrid_forward(self, F, x, weight, bias=None):
        groups = self._kwargs['num_group']
        kwargs = dict(self._kwargs, num_group=1, num_filter=self._channels // groups)
        inputs = F.split(x, num_outputs=groups, axis=1)
        weights = F.split(weight, num_outputs=groups, axis=0)
        biases = (F.split(bias, num_outputs=groups, axis=0) if bias is not None
                  else [None] * groups)
        outs = []
        for i in range(groups):
            if biases[i] is None:
                outs.append(F.Convolution(inputs[i], weights[i], **kwargs))
            else:
                outs.append(F.Convolution(inputs[i], weights[i], biases[i], **kwargs))
        return F.concat(*outs, dim=1)


class _AlignedDepthwiseConv2D(nn.Conv2D):
    """A depthwise convolution run as two: the first ``16 * (C // 16)`` channels and the rest.

    Same parameter, numbers and MACs as ``nn.Conv2D(groups=C)`` (each channel is its own
    convolution anyway). oneDNN has a fast depthwise kernel only for channel counts that
    are multiples of 16 and falls back to one small GEMM per channel otherwise (MENet's
    57/114/228 channels): splitting off the aligned part was 2-13x faster (bench/menet.py).
    """

    def hybrid_forward(self, F, x, weight, bias=None):
        channels = self._channels
        aligned = channels // 16 * 16
        outs = []
        for begin, end in ((0, aligned), (aligned, channels)):
            kwargs = dict(self._kwargs, num_group=end - begin, num_filter=end - begin)
            args = [F.slice_axis(x, axis=1, begin=begin, end=end),
                    F.slice_axis(weight, axis=0, begin=begin, end=end)]
            if bias is not None:
                args.append(F.slice_axis(bias, axis=0, begin=begin, end=end))
            outs.append(F.Convolution(*args, **kwargs))
        return F.concat(*outs, dim=1)


def _depthwise(channels, strides, act, norm_kwargs):
    """3x3 depthwise conv -> BN [-> act] as a ConvBNAct, channel-aligned where that is faster."""
    block = ConvBNAct(channels, channels, 3, strides, 1, groups=channels, act=act,
                      norm_kwargs=norm_kwargs)
    if channels > 16 and channels % 16:
        with block.name_scope():
            block.conv = _AlignedDepthwiseConv2D(channels, 3, strides, 1, groups=channels,
                                                 use_bias=False, in_channels=channels)
    return block


def _use_per_group(in_channels, out_channels, groups):
    """Whether a grouped 1x1 conv should run per group (see :class:`_PerGroupConv2D`)."""
    if groups == 1:
        return False
    per_in, per_out = in_channels // groups, out_channels // groups
    return per_in % 4 == 0 and per_out % 4 == 0 and not (per_in % 16 == 0 and per_out % 16 == 0)


def _pointwise(in_channels, channels, groups, act, norm_kwargs):
    """1x1 (grouped) conv -> BN [-> act] as a ConvBNAct, per group where that is faster."""
    block = ConvBNAct(in_channels, channels, 1, groups=groups, act=act, norm_kwargs=norm_kwargs)
    if _use_per_group(in_channels, channels, groups):
        with block.name_scope():
            block.conv = _PerGroupConv2D(channels, 1, groups=groups, use_bias=False,
                                         in_channels=in_channels)
    return block


class ShuffleUnit(HybridBlock):
    """ShuffleNet v1 unit, the grouped-conv bottleneck that MENet builds on.

    compress 1x1 (groups ``compress_groups``) -> BN -> ReLU -> channel shuffle(``groups``)
    -> depthwise 3x3 (stride 2 if ``downsample``) -> BN -> [gate] -> expand 1x1 (groups)
    -> BN, then ``relu(out + x)``, or ``relu(concat(out, avgpool3x3/2(x)))`` when
    ``downsample`` (the expand then makes ``channels - in_channels`` maps so that the
    concatenation is ``channels`` wide).

    (N, in_channels, H, W) -> (N, channels, H', W'), H' = ceil(H / 2) if downsample.
    The bottleneck width is ``channels // 4`` (of the full width, also when downsampling).
    Subclasses change :meth:`gate` (identity here).
    """

    def __init__(self, in_channels, channels, groups, downsample=False, compress_groups=None,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        compress_groups = groups if compress_groups is None else compress_groups
        bottleneck = channels // 4
        out_channels = channels - in_channels if downsample else channels
        _check_unit(in_channels, channels, bottleneck, out_channels, groups, compress_groups,
                    downsample)
        self.downsample = downsample
        with self.name_scope():
            self.compress = _pointwise(in_channels, bottleneck, compress_groups, 'relu',
                                       norm_kwargs)
            self.shuffle = ChannelShuffle(groups)
            self.depthwise = _depthwise(bottleneck, 2 if downsample else 1, None, norm_kwargs)
            self.expand = _pointwise(bottleneck, out_channels, groups, None, norm_kwargs)
            # count_include_pad=True: the reference's nn.AvgPool2d default
            self.pool = nn.AvgPool2D(3, 2, 1) if downsample else None
            self.relu = nn.Activation('relu')

    def gate(self, shuffled, x):
        """Hook between the depthwise BN and the expand conv."""
        return x

    def hybrid_forward(self, F, x):
        shuffled = self.shuffle(self.compress(x))
        out = self.expand(self.gate(shuffled, self.depthwise(shuffled)))
        if self.downsample:
            # residual branch first; concat_channels: oneDNN's 4-D concat backward fails
            # at split points off its channel blocks (256-g4: 232 + 24 channels)
            out = concat_channels(F, out, self.pool(x))
        else:
            out = out + x
        return self.relu(out)


def _check_unit(in_channels, channels, bottleneck, out_channels, groups, compress_groups,
                downsample):
    """Clear errors for widths that a grouped unit cannot have."""
    if groups < 1 or compress_groups < 1:
        raise ValueError('groups must be >= 1, got %d' % groups)
    if bottleneck < 1 or bottleneck % groups:
        raise ValueError('the bottleneck width (stage width %d // 4 = %d) must be a positive '
                         'multiple of groups=%d' % (channels, bottleneck, groups))
    if out_channels < 1 or out_channels % groups:
        raise ValueError('the expand width %d (stage width %d%s) must be a positive multiple '
                         'of groups=%d' % (out_channels, channels,
                                           ' minus the input width %d' % in_channels
                                           if downsample else '', groups))
    if in_channels % compress_groups:
        raise ValueError('the input width %d must be a multiple of groups=%d'
                         % (in_channels, compress_groups))


class MEUnit(ShuffleUnit):
    """ME module: a :class:`ShuffleUnit` whose depthwise output is multiplied by
    ``sigmoid(s_evolve(s_conv(s_merge(shuffled))))``.

    Side branch (dense convs, ``side_channels`` wide): s_merge 1x1 -> BN -> ReLU ->
    s_conv 3x3 (same stride as the depthwise) -> BN -> ReLU -> s_evolve 1x1 back to the
    bottleneck width -> BN -> sigmoid. The gate has the depthwise output's full shape.
    """

    def __init__(self, in_channels, channels, side_channels, groups, downsample=False,
                 compress_groups=None, norm_kwargs=None, **kwargs):
        super().__init__(in_channels, channels, groups, downsample, compress_groups,
                         norm_kwargs, **kwargs)
        if side_channels < 1:
            raise ValueError('side_channels must be >= 1, got %d' % side_channels)
        bottleneck = channels // 4
        with self.name_scope():
            self.s_merge = ConvBNAct(bottleneck, side_channels, 1, norm_kwargs=norm_kwargs)
            self.s_conv = ConvBNAct(side_channels, side_channels, 3, 2 if downsample else 1,
                                    norm_kwargs=norm_kwargs)
            self.s_evolve = ConvBNAct(side_channels, bottleneck, 1, act='sigmoid',
                                      norm_kwargs=norm_kwargs)

    def gate(self, shuffled, x):
        return x * self.s_evolve(self.s_conv(self.s_merge(shuffled)))


class MENet(HybridBlock):
    """MENet, or ShuffleNet v1 when ``side_channels`` is None.

    Parameters
    ----------
    stage_channels : 3 ints, widths of stages 1-3 (e.g. 228, 456, 912)
    stem_channels : int, width of the 3x3 stem conv
    groups : int, groups of the pointwise convs and of the channel shuffle
    side_channels : int or 3 ints or None, side-branch width per stage (None: ShuffleNet)
    stage_units : 3 ints, standard units after each stage's downsampling unit
    classes : int

    (N, 3, H, W) -> (N, classes) for any H, W >= 1 (global average pooling).
    """

    def __init__(self, stage_channels, stem_channels, groups, side_channels=None,
                 stage_units=(3, 7, 3), classes=1000, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        stage_channels = [int(c) for c in stage_channels]
        stage_units = [int(n) for n in stage_units]
        if len(stage_channels) != len(stage_units):
            raise ValueError('stage_channels %s and stage_units %s must have the same length'
                             % (stage_channels, stage_units))
        if side_channels is not None:
            if isinstance(side_channels, int):
                side_channels = [side_channels] * len(stage_channels)
            side_channels = [int(s) for s in side_channels]
            if len(side_channels) != len(stage_channels):
                raise ValueError('side_channels %s needs one width per stage (%d)'
                                 % (side_channels, len(stage_channels)))
        if stem_channels < 1:
            raise ValueError('stem_channels must be >= 1, got %d' % stem_channels)
        self.is_menet = side_channels is not None
        with self.name_scope():
            self.features = _NamedSequential(prefix='')
            with self.features.name_scope():
                self.features.add('init', _Stem(stem_channels, norm_kwargs=norm_kwargs))
                in_channels = stem_channels
                for i, (channels, units) in enumerate(zip(stage_channels, stage_units)):
                    for j in range(units + 1):
                        unit_kwargs = dict(downsample=j == 0, norm_kwargs=norm_kwargs,
                                           # the stem's few maps are not split into groups
                                           compress_groups=1 if i == j == 0 else groups)
                        if self.is_menet:
                            unit = MEUnit(in_channels, channels, side_channels[i], groups,
                                          **unit_kwargs)
                        else:
                            unit = ShuffleUnit(in_channels, channels, groups, **unit_kwargs)
                        self.features.add('stage_%d_%d' % (i + 1, j + 1), unit)
                        in_channels = channels
            self.pool = nn.GlobalAvgPool2D()
            self.classifier = nn.Dense(classes, in_units=in_channels)

    def hybrid_forward(self, F, x):
        return self.classifier(self.pool(self.features(x)))


class MobileNetV1(HybridBlock):
    """MobileNet v1 as the MENet repository codes it: 3x3/2 stem conv -> BN -> ReLU, then
    per entry of ``channels``/``strides`` a depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 ->
    BN -> ReLU, global average pool, Dense. (N, 3, H, W) -> (N, classes)."""

    def __init__(self, stem_channels, channels, strides, classes=1000, norm_kwargs=None,
                 **kwargs):
        super().__init__(**kwargs)
        if stem_channels < 1 or min(channels) < 1:
            raise ValueError('MobileNet widths must be >= 1, got stem %d and %s'
                             % (stem_channels, channels))
        with self.name_scope():
            self.features = _NamedSequential(prefix='')
            with self.features.name_scope():
                self.features.add('init', _Stem(stem_channels, pool=False,
                                                norm_kwargs=norm_kwargs))
                in_channels = stem_channels
                for i, (out, stride) in enumerate(zip(channels, strides)):
                    self.features.add('dw_%d' % i, _depthwise(in_channels, stride, 'relu',
                                                              norm_kwargs))
                    self.features.add('pw_%d' % i, ConvBNAct(in_channels, out, 1,
                                                             norm_kwargs=norm_kwargs))
                    in_channels = out
            self.pool = nn.GlobalAvgPool2D()
            self.classifier = nn.Dense(classes, in_units=in_channels)

    def hybrid_forward(self, F, x):
        return self.classifier(self.pool(self.features(x)))


# ----------------------------------------------------------------------------- builders

def menet(classes=1000, stage_channels=(228, 456, 912), side_channels=12, groups=3,
          stem_channels=24, stage_units=(3, 7, 3), norm_kwargs=None, **kwargs):
    """Generic MENet builder (the registered names are configurations of it).

    ``stage_channels``: stage widths A, 2A, 4A; ``side_channels``: the side width B (int
    or one per stage); ``groups``: g; ``stem_channels``: width of the stem conv
    (the reference's ``init_c``). Returns :class:`MENet`, (N, 3, H, W) -> (N, classes).
    """
    return MENet(stage_channels, stem_channels, groups, side_channels, stage_units,
                 classes=classes, norm_kwargs=norm_kwargs, **kwargs)


# Stage widths of the reference's shufflenet_group_<g> at width 1x (ShuffleNet paper, table 1).
_SHUFFLENET_BASE = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                    4: (272, 544, 1088), 8: (384, 768, 1536)}


def shufflenet_widths(groups=3, width_mul=1.0, init_mul=1.0):
    """(stem width, stage widths) of the reference's ``shufflenet_group_<groups>``:
    ``int(base * multiplier)`` rounded up to a multiple of ``groups``."""
    if groups not in _SHUFFLENET_BASE:
        raise ValueError('ShuffleNet groups must be one of %s, got %r'
                         % (sorted(_SHUFFLENET_BASE), groups))
    if width_mul <= 0 or init_mul <= 0:
        raise ValueError('width_mul and init_mul must be > 0, got %r, %r' % (width_mul, init_mul))

    def round_up(value):
        return (int(value) + groups - 1) // groups * groups
    return (round_up(24 * init_mul),
            tuple(round_up(c * width_mul) for c in _SHUFFLENET_BASE[groups]))


def shufflenet(classes=1000, groups=3, width_mul=1.0, init_mul=1.0, norm_kwargs=None,
               **kwargs):
    """ShuffleNet v1 as coded in the MENet repository (``shufflenet_group_<groups>``).

    ``width_mul`` scales the stage widths, ``init_mul`` the stem (24). Returns a
    :class:`MENet` without side branches, (N, 3, H, W) -> (N, classes).
    """
    stem, stages = shufflenet_widths(groups, width_mul, init_mul)
    return MENet(stages, stem, groups, None, classes=classes, norm_kwargs=norm_kwargs,
                 **kwargs)


_MOBILENET_CHANNELS = (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
_MOBILENET_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
# the repository's shallow_mobilenet: the five 14x14 512-wide layers dropped
_SHALLOW_CHANNELS = (64, 128, 128, 256, 256, 512, 1024, 1024)
_SHALLOW_STRIDES = (1, 2, 1, 2, 1, 2, 2, 1)


def mobilenet(classes=1000, width_mul=1.0, shallow=False, norm_kwargs=None, **kwargs):
    """MobileNet v1 as coded in the MENet repository: widths ``int(c * width_mul)``,
    stem ``int(32 * width_mul)``; ``shallow=True`` is its ``shallow_mobilenet``.
    Returns :class:`MobileNetV1`, (N, 3, H, W) -> (N, classes)."""
    if width_mul <= 0 or int(8 * width_mul) < 1:
        raise ValueError('width_mul must be >= 0.125, got %r' % (width_mul,))
    channels, strides = ((_SHALLOW_CHANNELS, _SHALLOW_STRIDES) if shallow
                         else (_MOBILENET_CHANNELS, _MOBILENET_STRIDES))
    return MobileNetV1(int(32 * width_mul), [int(c * width_mul) for c in channels], strides,
                       classes=classes, norm_kwargs=norm_kwargs, **kwargs)


# ----------------------------------------------------------------------------- inference

class _FoldedConvAct(ConvBNAct):
    """A :class:`ConvBNAct` whose BN is folded into the conv (weight * scale, bias).

    Inference only: there are no BN statistics left to train. It stays a ConvBNAct
    (same ``conv``/``act`` children) so that it can replace one in its parent.
    """

    def __init__(self, source):  # pylint: disable=super-init-not-called
        HybridBlock.__init__(self, prefix=source.prefix + 'folded_')
        conv, bn = source.conv, source.bn
        ctx = conv.weight.list_ctx()
        weight = conv.weight.data(ctx[0]).asnumpy().astype(np.float64)
        gamma = (np.ones(weight.shape[0]) if bn._kwargs.get('fix_gamma')
                 else bn.gamma.data(ctx[0]).asnumpy())
        scale = gamma / np.sqrt(bn.running_var.data(ctx[0]).asnumpy() + bn._kwargs['eps'])
        shift = bn.beta.data(ctx[0]).asnumpy() - bn.running_mean.data(ctx[0]).asnumpy() * scale
        if conv.bias is not None:
            shift = shift + conv.bias.data(ctx[0]).asnumpy() * scale
        kwargs = conv._kwargs
        with self.name_scope():
            self.conv = type(conv)(kwargs['num_filter'], kwargs['kernel'], kwargs['stride'],
                                   kwargs['pad'], kwargs['dilate'], kwargs['num_group'],
                                   use_bias=True, in_channels=conv._in_channels)
        self.conv.initialize(mx.init.Zero(), ctx=ctx)
        self.conv.weight.set_data(mx.nd.array(weight * scale.reshape(-1, 1, 1, 1)))
        self.conv.bias.set_data(mx.nd.array(shift))
        self.bn = None
        self.act = source.act

    def hybrid_forward(self, F, x):
        x = self.conv(x)
        return self.act(x) if self.act is not None else x


def fold_batchnorm(net):
    """Fold every conv -> BatchNorm pair (:class:`ConvBNAct`) of ``net`` into one conv
    with a bias, in place, for inference; returns ``net``.

    The logits stay the same (float32 rounding: ~1e-7 relative); the net can no longer
    be trained or load unfolded ``.params``. Call it on an initialised net (e.g. from
    ``convert_state_dict``) before ``hybridize``. Why: MXNet 1.9's oneDNN BatchNorm on
    the plain (non-16-blocked) layouts these widths get runs ~10x slower than PyTorch's,
    and its own conv+BN fusion (``hybridize(backend='MKLDNN')``) was slower still here
    (bench/menet.py).
    """
    for name, child in list(net._children.items()):
        if isinstance(child, ConvBNAct) and not isinstance(child, _FoldedConvAct):
            if child.bn is None:
                continue
            setattr(net, name, _FoldedConvAct(child))
        else:
            fold_batchnorm(child)
    if hasattr(net, '_clear_cached_op'):
        net._clear_cached_op()
    return net


# ----------------------------------------------------------------------------- registry
# Names follow the reference's config files (config/imagenet/model-config/*):
# "A-MENet-Bx1-group-G" is menetA_Bx1_gG; shufflenet_<mul>x_g<G> and mobilenet_<mul>x are
# the repository's baseline configs. A function's keyword defaults are that config; any of
# them may be overridden (get_model('menet228_12x1_g3', side_channels=(8, 12, 16))).

register_family(
    'menet', paper=_PAPER, reference=_REF + 'MENet.py',
    # the reference's validation pipeline (pyvision/dataloaders/ImageNet.py): PIL bilinear
    # resize of the shorter side to 256, centre crop 224, ImageNet mean/std on 0-1 pixels
    data_config=dict(input_size=(3, 224, 224), crop_ratio=224 / 256, interpolation='bilinear',
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    classifier='classifier',
    # main.py: kaiming-normal convs (init_mode fan_out; fan_in for MobileNet), kaiming-uniform
    # Linear, BN gamma 1 / beta 0, biases 0
    reference_init=lambda name: KaimingInit('in' if name.startswith('mobilenet') else 'out'),
    weights="the authors' PyTorch checkpoints of the MENet models, clavichord93/MENet "
            "saved_models/<A>-MENet-<B>x1-group-<G>.pth.tar (of the seven, only 108-g3 and "
            "128-g4 were retrievable). The repository has no licence (all rights reserved): "
            "convert them locally (python -m gluon_nets.convert); do not redistribute them or "
            "converted copies.")

# the baselines: same repository, other papers, no released weights
_SHUFFLENET = dict(paper=_SHUFFLENET_PAPER, reference=_REF + 'ShuffleNet.py',
                   weights='none: clavichord93/MENet releases no ShuffleNet checkpoints')
_MOBILENET = dict(paper=_MOBILENET_PAPER, reference=_REF + 'MobileNet.py',
                  weights='none: clavichord93/MENet releases no MobileNet checkpoints')


@register_model('menet')
def menet108_8x1_g3(classes=1000, stage_channels=(108, 216, 432), side_channels=8, groups=3,
                    stem_channels=12, **kwargs):
    """108-MENet-8x1 (g=3), the smallest MENet of the README (38 MFLOPs)."""
    return menet(classes, stage_channels=stage_channels, side_channels=side_channels,
                 groups=groups, stem_channels=stem_channels, **kwargs)


@register_model('menet')
def menet128_8x1_g4(classes=1000, stage_channels=(128, 256, 512), side_channels=8, groups=4,
                    stem_channels=12, **kwargs):
    """128-MENet-8x1 (g=4), released checkpoint not in the README's table (41 M MACs)."""
    return menet(classes, stage_channels=stage_channels, side_channels=side_channels,
                 groups=groups, stem_channels=stem_channels, **kwargs)


@register_model('menet')
def menet228_12x1_g3(classes=1000, stage_channels=(228, 456, 912), side_channels=12, groups=3,
                     stem_channels=24, **kwargs):
    """228-MENet-12x1 (g=3), the README's training example (144 MFLOPs)."""
    return menet(classes, stage_channels=stage_channels, side_channels=side_channels,
                 groups=groups, stem_channels=stem_channels, **kwargs)


@register_model('menet')
def menet256_12x1_g4(classes=1000, stage_channels=(256, 512, 1024), side_channels=12,
                     groups=4, stem_channels=24, **kwargs):
    """256-MENet-12x1 (g=4), README 140 MFLOPs."""
    return menet(classes, stage_channels=stage_channels, side_channels=side_channels,
                 groups=groups, stem_channels=stem_channels, **kwargs)


@register_model('menet')
def menet348_12x1_g3(classes=1000, stage_channels=(348, 696, 1392), side_channels=12,
                     groups=3, stem_channels=24, **kwargs):
    """348-MENet-12x1 (g=3), README 299 MFLOPs."""
    return menet(classes, stage_channels=stage_channels, side_channels=side_channels,
                 groups=groups, stem_channels=stem_channels, **kwargs)


@register_model('menet')
def menet352_12x1_g8(classes=1000, stage_channels=(352, 704, 1408), side_channels=12,
                     groups=8, stem_channels=24, **kwargs):
    """352-MENet-12x1 (g=8), README 144 MFLOPs."""
    return menet(classes, stage_channels=stage_channels, side_channels=side_channels,
                 groups=groups, stem_channels=stem_channels, **kwargs)


@register_model('menet')
def menet456_24x1_g3(classes=1000, stage_channels=(456, 912, 1824), side_channels=24,
                     groups=3, stem_channels=48, **kwargs):
    """456-MENet-24x1 (g=3), the largest MENet of the README (551 MFLOPs)."""
    return menet(classes, stage_channels=stage_channels, side_channels=side_channels,
                 groups=groups, stem_channels=stem_channels, **kwargs)


@register_model('menet', name='shufflenet_0.5x_g3', **_SHUFFLENET)
def shufflenet_0_5x_g3(classes=1000, groups=3, width_mul=0.5, init_mul=0.5, **kwargs):
    """ShuffleNet v1 0.5x (g=3) as coded in the MENet repository (stem 12)."""
    return shufflenet(classes, groups=groups, width_mul=width_mul, init_mul=init_mul, **kwargs)


@register_model('menet', **_SHUFFLENET)
def shufflenet_1x_g3(classes=1000, groups=3, width_mul=1.0, init_mul=1.0, **kwargs):
    """ShuffleNet v1 1x (g=3) as coded in the MENet repository."""
    return shufflenet(classes, groups=groups, width_mul=width_mul, init_mul=init_mul, **kwargs)


@register_model('menet', name='shufflenet_1.5x_g3', **_SHUFFLENET)
def shufflenet_1_5x_g3(classes=1000, groups=3, width_mul=1.5, init_mul=1.0, **kwargs):
    """ShuffleNet v1 1.5x (g=3) as coded in the MENet repository (stem 24)."""
    return shufflenet(classes, groups=groups, width_mul=width_mul, init_mul=init_mul, **kwargs)


@register_model('menet', **_SHUFFLENET)
def shufflenet_2x_g3(classes=1000, groups=3, width_mul=2.0, init_mul=2.0, **kwargs):
    """ShuffleNet v1 2x (g=3) as coded in the MENet repository (stem 48)."""
    return shufflenet(classes, groups=groups, width_mul=width_mul, init_mul=init_mul, **kwargs)


@register_model('menet', **_SHUFFLENET)
def shufflenet_1x_g4(classes=1000, groups=4, width_mul=1.0, init_mul=1.0, **kwargs):
    """ShuffleNet v1 1x (g=4) as coded in the MENet repository."""
    return shufflenet(classes, groups=groups, width_mul=width_mul, init_mul=init_mul, **kwargs)


@register_model('menet', **_SHUFFLENET)
def shufflenet_1x_g8(classes=1000, groups=8, width_mul=1.0, init_mul=1.0, **kwargs):
    """ShuffleNet v1 1x (g=8) as coded in the MENet repository."""
    return shufflenet(classes, groups=groups, width_mul=width_mul, init_mul=init_mul, **kwargs)


@register_model('menet', name='mobilenet_0.25x', **_MOBILENET)
def mobilenet_0_25x(classes=1000, width_mul=0.25, shallow=False, **kwargs):
    """MobileNet v1 0.25x as coded in the MENet repository."""
    return mobilenet(classes, width_mul=width_mul, shallow=shallow, **kwargs)


@register_model('menet', name='mobilenet_0.5x', **_MOBILENET)
def mobilenet_0_5x(classes=1000, width_mul=0.5, shallow=False, **kwargs):
    """MobileNet v1 0.5x as coded in the MENet repository."""
    return mobilenet(classes, width_mul=width_mul, shallow=shallow, **kwargs)


@register_model('menet', name='mobilenet_0.75x', **_MOBILENET)
def mobilenet_0_75x(classes=1000, width_mul=0.75, shallow=False, **kwargs):
    """MobileNet v1 0.75x as coded in the MENet repository."""
    return mobilenet(classes, width_mul=width_mul, shallow=shallow, **kwargs)


@register_model('menet', **_MOBILENET)
def mobilenet_1x(classes=1000, width_mul=1.0, shallow=False, **kwargs):
    """MobileNet v1 1x as coded in the MENet repository."""
    return mobilenet(classes, width_mul=width_mul, shallow=shallow, **kwargs)


# ----------------------------------------------------------------------------- converter
# our ConvBNAct child -> the reference's (conv, BN) module names, per block kind
_UNIT_RENAMES = {'compress': ('compress', 'bn_compress'),
                 'depthwise': ('depthwise', 'bn_depthwise'),
                 'expand': ('expand', 'bn_expand'),
                 's_merge': ('s_merge', 's_bn_merge'),
                 's_conv': ('s_conv', 's_bn_conv'),
                 's_evolve': ('s_evolve', 's_bn_evolve')}
_BN_RENAMES = {'gamma': 'weight', 'beta': 'bias', 'running_mean': 'running_mean',
               'running_var': 'running_var'}


def _reference_key(our_name, net):
    """The reference's state_dict key of our structural parameter name."""
    parts = our_name.split('.')
    if parts[0] == 'classifier':
        return our_name
    # parts: features, <block>, [<child>,] conv|bn, param
    block, leaf = parts[1], parts[-1]
    layer = parts[-2]                         # 'conv' or 'bn' of a ConvBNAct
    if isinstance(net, MobileNetV1):
        if block == 'init':
            base = 'conv_0' if layer == 'conv' else 'norm_0'
        else:
            kind, index = block.split('_')
            base = '%s_%s_%s' % (kind, 'conv' if layer == 'conv' else 'norm', index)
        prefix = 'features.' + base
    elif block == 'init':
        if net.is_menet:
            prefix = 'features.init.' + layer
        else:
            prefix = 'features.' + ('conv_1' if layer == 'conv' else 'norm_1')
    else:
        conv_name, bn_name = _UNIT_RENAMES[parts[2]]
        prefix = 'features.%s.%s' % (block, conv_name if layer == 'conv' else bn_name)
    return '%s.%s' % (prefix, leaf if layer == 'conv' else _BN_RENAMES[leaf])


@register_converter('menet')
def _convert_menet(name, state_dict, **kwargs):
    """Reference PyTorch names (MENet.py / ShuffleNet.py / MobileNet.py) -> ours: a
    rename (BN weight/bias -> gamma/beta); conv and Dense layouts are the same."""
    net = get_model(name, **kwargs)
    mapping = {ours: _reference_key(ours, net) for ours in net._collect_params_with_prefix()}
    return ConversionPlan(net, mapping)

