"""OctConv: the family declaration and the models of the reference's Gluon API
(facebookresearch/OctConv ``utils/gluon``).

Paper: Chen et al., "Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural
Networks with Octave Convolution", ICCV 2019. ``alpha`` is the reference's ``ratio``: the
fraction of each octave layer's channels kept at half resolution (split by truncation,
``low = int(alpha * C)``). Every conv inside the octave stages is an octave conv (also at
``alpha=0``), so a stride-2 conv is average pooling + a stride-1 conv, as in the reference.

The family ``octconv`` is declared here, once, for both of the reference's code bases:
these Gluon-API models and the Symbol-API ablation models of
:mod:`gluon_nets.models.octconv_symbol` (``*_v2``, aliases ``oct_sym_*``), which
override the data config and the classifier name per model.

Models (one ``@register_model`` function each, at the end of this file; ``alpha`` is a
keyword with the default below, ``classes=1000``)::

    oct_resnet{26,50,101,152,200}_v1b   post-activation bottlenecks, stride on the 3x3
    oct_resnet{26,...,200}_v1e          deep stem (3x 3x3), stride on the last 1x1
    oct_resnet{26,...,200}_v1f          v1e with the 3x3/1 (8 ch) deep stem and a
                                        bottleneck "stem2" instead of the max pool
    oct_resnet152                       alias of oct_resnet152_v1f, the README's Oct-ResNet-152
    oct_resnet{50,101,152}_v2b          pre-activation, projection conv with bias
    oct_resnext{50,101}_32x4d_v1b/_v2b  groups 32, mid widths doubled
    oct_mobilenet_v1_{075,100}          octave in blocks 1-10, merged at pointwise 11
    oct_mobilenet_v2_{100,1125}         octave only inside the first 13 inverted residuals
    oct_densenet{121,161,169,201}       octave stem conv, dense blocks 1-3

ResNet/ResNeXt options: ``use_se`` (octave SE after the last BN; v1e/v1f then also get
the reference's affine-free ``extra_bn`` before conv1 and conv4), ``last_gamma``
(v1 and MobileNet v2), ``final_drop`` (dropout before the 1x1-conv classifier),
``norm_kwargs``, ``use_global_stats``. ``oct_kwargs`` is passed to every
:class:`OctConv2D` (``merge=False`` gives the reference's four separate convolutions).

Default ``alpha``: the README's value for the models it reports (MobileNet v1 0.75:
0.375, v1 1.0: 0.5, v2 1.0: 0.375, v2 1.125: 0.5, ResNet-152 v1e/v1f: 0.125) and 0.25
for the others (the paper's main setting; it also builds for ResNeXt and DenseNet).

Alphas the reference cannot build raise ``ValueError`` at construction: outside
[0, 1); ResNeXt when a part has fewer channels than the 32 groups (e.g. 0.125);
DenseNet when the per-part widths of the concatenated features differ from the split
the reference recomputes (``alpha * growth`` not an integer, e.g. 0.1).

Input sides must be multiples of 32 (high and low maps must stay exactly 2:1).

Conversion: ``convert_state_dict(name, sd, alpha=...)`` accepts the reference's Gluon
``ParameterDict`` names (``R50_L1_B0_conv1-h2h_weight``; any model prefix) and the
attribute paths of its published ``.params`` (``L1_B0.conv1.conv_h2h.weight``); our
attribute tree mirrors the reference's, so both are a rename (merged paths concatenate).
"""
import mxnet as mx
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..model_zoo import (ConversionError, ConversionPlan, ModelOption, TrainingPlugin,
                         get_model, register_alias, register_converter, register_family,
                         register_model)
from ..nn.blocks import resnet_stage_blocks
from ..nn.octave import (ModeGraphMixin, OctActivation, OctBatchNorm, OctConv2D, OctPool2D,
                         OctSE, oct_concat,
                         reference_mapping, split_channels)

__all__ = ['OctResNetV1', 'OctResNetV2', 'OctMobileNetV1', 'OctMobileNetV2', 'OctDenseNet',
           'oct_resnet_v1', 'oct_resnet_v2', 'oct_mobilenet_v1', 'oct_mobilenet_v2',
           'oct_densenet', 'OctConvTraining', 'FAMILY', 'GLUON_API_DATA_CONFIG']

_PAPER = ('Chen et al., Drop an Octave: Reducing Spatial Redundancy in CNNs with Octave '
          'Convolution, ICCV 2019')
_REPO = 'facebookresearch/OctConv@87c44f79162f3a2ef316bf924ad3697b8957a463'
_REF = _REPO + ':utils/gluon/utils/'

#: the ResNet depths the reference builds (both APIs)
OCT_RESNET_DEPTHS = (26, 50, 101, 152, 200)

#: evaluation recipe of the reference's Gluon API: ``utils/gluon/score.py`` (what
#: ``eval.sh`` runs) resizes the short side to ``ceil(224 / 0.875) = 256`` and centre-crops
#: 224; its RecordIO path leaves ``ImageRecordIter``'s default bilinear ``inter_method``,
#: its folder path ``transforms.Resize`` (bilinear) + ``Normalize`` with these mean/std
#: (the 0-255 values 123.68/58.393, ... of the RecordIO path are the same on the 0-1 scale)
GLUON_API_DATA_CONFIG = dict(input_size=(3, 224, 224), crop_ratio=0.875,
                             interpolation='bilinear', mean=(0.485, 0.456, 0.406),
                             std=(0.229, 0.224, 0.225))


class OctConvTraining(TrainingPlugin):
    """OctConv's hooks into the trainer: the ``--alpha`` flag (the constructors' ``alpha``
    keyword); the models then train with the trainer's plain flow."""

    options = (
        ModelOption(('--alpha',), dict(
            type=float, default=None,
            help='OctConv low-frequency ratio alpha (the reference\'s --ratio): the fraction '
                 'of each octave layer\'s channels kept at half resolution, in [0, 1); -1 '
                 'builds the plain baseline of the Symbol-API *_v2 models; default: the '
                 'model\'s own (see its signature)'),
            kwarg='alpha'),
    )


FAMILY = register_family(
    'octconv', paper=_PAPER, reference=_REPO, data_config=GLUON_API_DATA_CONFIG,
    # the reference's Gluon attribute, misspelt (structural keys ``classifer.weight``);
    # the Symbol-API models override it with their ``classifier``
    classifier='classifer',
    # train_imagenet.py (GluonCV's recipe): MSRAPrelu() on every weight, BN gamma 1
    reference_init=lambda name: mx.init.MSRAPrelu(),
    weights='facebookresearch/OctConv checkpoints, MIT licence ("The code and the models '
            'are MIT licensed", README): the Gluon-API .params of the README\'s "Others" '
            'table and the Symbol-API ablation checkpoints; none ship with gluon_nets, '
            'convert them with python -m gluon_nets.convert',
    training=OctConvTraining())


def _check_alpha(alpha):
    if not 0.0 <= float(alpha) < 1.0:
        raise ValueError('alpha must be in [0, 1), got %r' % (alpha,))
    return float(alpha)


def _bn_kwargs(norm_kwargs, use_global_stats=False):
    kw = dict(norm_kwargs or {})
    if use_global_stats:
        kw['use_global_stats'] = True
    return kw


def _sum_pairs(a, b):
    return tuple(x if y is None else (y if x is None else x + y) for x, y in zip(a, b))


class _Blocks(ModeGraphMixin, HybridBlock):
    """Base of the models: blocks registered as attributes ``L<stage>_B<index>`` (the
    reference's names) and run in creation order; one cached graph per autograd mode
    (BN + ReLU is fused in inference only)."""

    def _add_block(self, name, block):
        setattr(self, name, block)
        self._block_names.append(name)

    def _run_blocks(self, x):
        for name in self._block_names:
            x = getattr(self, name)(*x)
        return x


def _classifier(classes, in_channels):
    # the reference classifies with a 1x1 conv (bias) on the pooled map; attribute
    # ``classifer`` (sic) and prefix ``classifier_`` keep its names
    return nn.Conv2D(classes, 1, in_channels=in_channels, prefix='classifier_')


# ---------------------------------------------------------------------------- ResNet v1
class _BottleneckV1(HybridBlock):
    """Post-activation octave bottleneck on a (high, low) pair.

    conv1 1x1 - BN - ReLU - conv2 3x3 (groups) - BN - ReLU - conv3 1x1 - BN [- SE]
    + shortcut (conv4 1x1 + bn4 if the stride or the spec changes) - ReLU.
    ``down_pos`` 0/1/2 puts the stride on conv1/conv2/conv3.
    """

    def __init__(self, in_planes, mid_planes, out_planes, groups=1, strides=1, down_pos=1,
                 use_se=False, se_planes=0, extra_bn=False, last_gamma=False, bn_kwargs=None,
                 oct_kwargs=None, prefix=None):
        super(_BottleneckV1, self).__init__(prefix=prefix)
        if down_pos not in (0, 1, 2):
            raise ValueError('down_pos must be 0, 1 or 2, got %r' % (down_pos,))
        bn = dict(bn_kwargs or {})
        ok = dict(oct_kwargs or {})
        st = [strides if down_pos == i else 1 for i in range(3)]
        with self.name_scope():
            if extra_bn:
                self.bn1a = OctBatchNorm(in_planes, center=False, scale=False, prefix='bn1a', **bn)
            self.conv1 = OctConv2D(mid_planes, 1, strides=st[0], in_channels=in_planes,
                                   prefix='conv1', **ok)
            self.bn1 = OctBatchNorm(mid_planes, act='relu', prefix='bn1', **bn)
            self.conv2 = OctConv2D(mid_planes, 3, strides=st[1], padding=1, groups=groups,
                                   in_channels=mid_planes, prefix='conv2', **ok)
            self.bn2 = OctBatchNorm(mid_planes, act='relu', prefix='bn2', **bn)
            self.conv3 = OctConv2D(out_planes, 1, strides=st[2], in_channels=mid_planes,
                                   prefix='conv3', **ok)
            self.bn3 = OctBatchNorm(out_planes, prefix='bn3',
                                    gamma_initializer='zeros' if last_gamma else 'ones', **bn)
            self.se_block = OctSE(se_planes, out_planes, prefix='se') if use_se else None
            self.relu = OctActivation('relu')
            self.has_proj = strides != 1 or tuple(in_planes) != tuple(out_planes)
            if self.has_proj:
                if extra_bn:
                    self.bn4a = OctBatchNorm(in_planes, center=False, scale=False, prefix='bn4a',
                                             **bn)
                self.conv4 = OctConv2D(out_planes, 1, strides=strides, in_channels=in_planes,
                                       prefix='conv4', **ok)
                self.bn4 = OctBatchNorm(out_planes, prefix='bn4', **bn)
        self.extra_bn = extra_bn

    def hybrid_forward(self, F, x_high, x_low=None):
        x = (x_high, x_low)
        out = self.bn1a(*x) if self.extra_bn else x
        out = self.bn1(*self.conv1(*out))          # BN + ReLU
        out = self.bn2(*self.conv2(*out))
        out = self.bn3(*self.conv3(*out))
        if self.se_block is not None:
            out = self.se_block(*out)
        if self.has_proj:
            sc = self.bn4a(*x) if self.extra_bn else x
            sc = self.bn4(*self.conv4(*sc))
        else:
            sc = x
        return self.relu(*_sum_pairs(out, sc))


class _BLStem(HybridBlock):
    """Plain bottleneck replacing the stem max pool (v1f; Big-Little Net style):
    1x1 - BN - ReLU - 3x3/2 - BN - ReLU - 1x1 - BN, + (1x1/2 conv - BN), ReLU."""

    def __init__(self, in_planes, mid_planes, out_planes, strides=2, last_gamma=False,
                 bn_kwargs=None, prefix=None):
        super(_BLStem, self).__init__(prefix=prefix)
        bn = dict(bn_kwargs or {})
        with self.name_scope():
            self.conv1 = nn.Conv2D(mid_planes, 1, in_channels=in_planes, use_bias=False,
                                   prefix='conv1_')
            self.bn1 = nn.BatchNorm(in_channels=mid_planes, prefix='bn1_', **bn)
            self.conv2 = nn.Conv2D(mid_planes, 3, strides=strides, padding=1,
                                   in_channels=mid_planes, use_bias=False, prefix='conv2_')
            self.bn2 = nn.BatchNorm(in_channels=mid_planes, prefix='bn2_', **bn)
            self.conv3 = nn.Conv2D(out_planes, 1, in_channels=mid_planes, use_bias=False,
                                   prefix='conv3_')
            self.bn3 = nn.BatchNorm(in_channels=out_planes, prefix='bn3_',
                                    gamma_initializer='zeros' if last_gamma else 'ones', **bn)
            self.has_proj = strides != 1 or in_planes != out_planes
            if self.has_proj:
                self.conv4 = nn.Conv2D(out_planes, 1, strides=strides, in_channels=in_planes,
                                       use_bias=False, prefix='conv4_')
                self.bn4 = nn.BatchNorm(in_channels=out_planes, prefix='bn4_', **bn)

    def hybrid_forward(self, F, x):
        out = F.Activation(self.bn1(self.conv1(x)), act_type='relu')
        out = F.Activation(self.bn2(self.conv2(out)), act_type='relu')
        out = self.bn3(self.conv3(out))
        sc = self.bn4(self.conv4(x)) if self.has_proj else x
        return F.Activation(out + sc, act_type='relu')


def _conv_bn_relu(seq, channels, kernel, strides, in_channels, conv_prefix, bn_prefix, bn):
    seq.add(nn.Conv2D(channels, kernel, strides=strides, padding=kernel // 2,
                      in_channels=in_channels, use_bias=False, prefix=conv_prefix))
    seq.add(nn.BatchNorm(in_channels=channels, prefix=bn_prefix, **bn))
    seq.add(nn.Activation('relu'))


def _resnet_stem(deep_stem, replace_maxpool, bn):
    """The plain stem ``conv1`` (HybridSequential) with the reference's layer order."""
    stem = nn.HybridSequential(prefix='')
    with stem.name_scope():
        if not deep_stem:
            _conv_bn_relu(stem, 64, 7, 2, 3, 'conv1_', 'bn1_', bn)
        else:
            n1, s1, s2 = (32, 2, 1) if replace_maxpool is None else (8, 1, 2)
            _conv_bn_relu(stem, n1, 3, s1, 3, 'stem_conv1_', 'stem_bn1_', bn)
            _conv_bn_relu(stem, 32, 3, s2, n1, 'stem_conv2_', 'stem_bn2_', bn)
            _conv_bn_relu(stem, 64, 3, 1, 32, 'stem_conv3_', 'stem_bn3_', bn)
    return stem


class _OctResNetBase(_Blocks):
    """Shared body of the v1/v2 octave ResNets: stem, four stages (ratios
    ``[alpha, alpha, alpha, 0]``), classifier."""

    def _make_stages(self, block, layers, num_mid, num_out, alpha, make_kwargs):
        inplanes = (64, -1)
        for stage, (blocks, mid, out) in enumerate(zip(layers, num_mid, num_out), 1):
            ratio = alpha if stage < 4 else 0.0
            mid_planes, out_planes = split_channels(mid, ratio), split_channels(out, ratio)
            for i in range(blocks):
                name = 'L%d_B%d' % (stage, i)
                self._add_block(name, block(
                    inplanes, mid_planes, out_planes,
                    strides=2 if (i == 0 and stage > 1) else 1,
                    se_planes=int(out / 16), prefix=name + '_', **make_kwargs))
                inplanes = out_planes


class OctResNetV1(_OctResNetBase):
    """Octave ResNet v1 (post-activation bottlenecks).

    Input (N, 3, H, W) with H, W multiples of 32 -> logits (N, classes).
    """

    def __init__(self, layers, alpha=0.0, groups=1, num_mid=(64, 128, 256, 512),
                 num_out=(256, 512, 1024, 2048), down_pos=1, deep_stem=False,
                 replace_maxpool=None, use_se=False, extra_bn=False, last_gamma=False,
                 final_drop=0.0, classes=1000, norm_kwargs=None, use_global_stats=False,
                 oct_kwargs=None, fuse_bn_relu=None, prefix=None):
        super(OctResNetV1, self).__init__(prefix=prefix)
        alpha = _check_alpha(alpha)
        if replace_maxpool not in (None, 'bottleneck-131'):
            raise ValueError("replace_maxpool must be None or 'bottleneck-131', got %r"
                             % (replace_maxpool,))
        bn = _bn_kwargs(norm_kwargs, use_global_stats)
        obn = dict(bn, fuse=fuse_bn_relu)      # for the octave BNs (BN + ReLU fusion)
        self._block_names = []
        self.final_drop = final_drop
        with self.name_scope():
            self.conv1 = _resnet_stem(deep_stem, replace_maxpool, bn)
            if replace_maxpool is None:
                self.conv2 = None
            else:
                self.conv2 = _BLStem(64, 32, 64, strides=2, last_gamma=last_gamma,
                                     bn_kwargs=bn, prefix='stem2_')
            self._make_stages(_BottleneckV1, layers, num_mid, num_out, alpha, dict(
                groups=groups, down_pos=down_pos, use_se=use_se, extra_bn=extra_bn,
                last_gamma=last_gamma, bn_kwargs=obn, oct_kwargs=oct_kwargs))
            self.drop = nn.Dropout(final_drop) if final_drop > 0 else None
            self.classifer = _classifier(classes, num_out[3])

    def hybrid_forward(self, F, x):
        x = self.conv1(x)
        if self.conv2 is not None:
            x = self.conv2(x)
        else:
            x = F.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max')
        x = self._run_blocks((x, None))[0]
        x = F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type='avg')
        if self.drop is not None:
            x = self.drop(x)
        return F.flatten(self.classifer(x))


# ---------------------------------------------------------------------------- ResNet v2
class _BottleneckV2(HybridBlock):
    """Pre-activation octave bottleneck: BN-ReLU-conv1 1x1, BN-ReLU-conv2 3x3 (groups),
    BN-ReLU-conv3 1x1 [- SE] + shortcut (BN-ReLU-conv4 1x1 with bias if projecting)."""

    def __init__(self, in_planes, mid_planes, out_planes, groups=1, strides=1, down_pos=1,
                 use_se=False, se_planes=0, bn_kwargs=None, oct_kwargs=None, prefix=None):
        super(_BottleneckV2, self).__init__(prefix=prefix)
        if down_pos not in (0, 1, 2):
            raise ValueError('down_pos must be 0, 1 or 2, got %r' % (down_pos,))
        bn = dict(bn_kwargs or {})
        ok = dict(oct_kwargs or {})
        st = [strides if down_pos == i else 1 for i in range(3)]
        with self.name_scope():
            self.bn1 = OctBatchNorm(in_planes, act='relu', prefix='bn1', **bn)
            self.conv1 = OctConv2D(mid_planes, 1, strides=st[0], in_channels=in_planes,
                                   prefix='conv1', **ok)
            self.bn2 = OctBatchNorm(mid_planes, act='relu', prefix='bn2', **bn)
            self.conv2 = OctConv2D(mid_planes, 3, strides=st[1], padding=1, groups=groups,
                                   in_channels=mid_planes, prefix='conv2', **ok)
            self.bn3 = OctBatchNorm(mid_planes, act='relu', prefix='bn3', **bn)
            self.conv3 = OctConv2D(out_planes, 1, strides=st[2], in_channels=mid_planes,
                                   prefix='conv3', **ok)
            self.se_block = OctSE(se_planes, out_planes, prefix='se') if use_se else None
            self.has_proj = strides != 1 or tuple(in_planes) != tuple(out_planes)
            if self.has_proj:
                self.bn4 = OctBatchNorm(in_planes, act='relu', prefix='bn4', **bn)
                self.conv4 = OctConv2D(out_planes, 1, strides=strides, in_channels=in_planes,
                                       use_bias=True, prefix='conv4', **ok)

    def hybrid_forward(self, F, x_high, x_low=None):
        x = (x_high, x_low)
        out = self.conv1(*self.bn1(*x))            # BN + ReLU
        out = self.conv2(*self.bn2(*out))
        out = self.conv3(*self.bn3(*out))
        if self.se_block is not None:
            out = self.se_block(*out)
        sc = self.conv4(*self.bn4(*x)) if self.has_proj else x
        return _sum_pairs(out, sc)


class OctResNetV2(_OctResNetBase):
    """Octave ResNet v2 (pre-activation); tail BN-ReLU before the pool."""

    def __init__(self, layers, alpha=0.0, groups=1, num_mid=(64, 128, 256, 512),
                 num_out=(256, 512, 1024, 2048), down_pos=1, use_se=False, last_gamma=False,
                 final_drop=0.0, classes=1000, norm_kwargs=None, use_global_stats=False,
                 oct_kwargs=None, fuse_bn_relu=None, prefix=None):
        super(OctResNetV2, self).__init__(prefix=prefix)
        alpha = _check_alpha(alpha)
        if last_gamma:
            raise ValueError('last_gamma is not supported by the pre-activation (v2) ResNets '
                             '(the reference asserts it is False)')
        bn = _bn_kwargs(norm_kwargs, use_global_stats)
        obn = dict(bn, fuse=fuse_bn_relu)      # for the octave BNs (BN + ReLU fusion)
        self._block_names = []
        with self.name_scope():
            self.conv1 = _resnet_stem(False, None, bn)
            self._make_stages(_BottleneckV2, layers, num_mid, num_out, alpha, dict(
                groups=groups, down_pos=down_pos, use_se=use_se, bn_kwargs=obn,
                oct_kwargs=oct_kwargs))
            self.tail = nn.HybridSequential(prefix='')
            with self.tail.name_scope():
                self.tail.add(nn.BatchNorm(in_channels=num_out[3], prefix='tail-bn_', **bn))
                self.tail.add(nn.Activation('relu'))
            self.drop = nn.Dropout(final_drop) if final_drop > 0 else None
            self.classifer = _classifier(classes, num_out[3])

    def hybrid_forward(self, F, x):
        x = self.conv1(x)
        x = F.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type='max')
        x = self.tail(self._run_blocks((x, None))[0])
        x = F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type='avg')
        if self.drop is not None:
            x = self.drop(x)
        return F.flatten(self.classifer(x))


# ------------------------------------------------------------------------- MobileNet v1
class _DWSConv(HybridBlock):
    """Depthwise 3x3 (stride) - BN - ReLU - pointwise 1x1 - BN - ReLU, octave."""

    def __init__(self, in_channels, channels, strides, bn_kwargs=None, oct_kwargs=None,
                 prefix=None):
        super(_DWSConv, self).__init__(prefix=prefix)
        bn = dict(bn_kwargs or {})
        ok = dict(oct_kwargs or {})
        with self.name_scope():
            # groups = the spec summed as written (the reference's depthwise test)
            self.conv1 = OctConv2D(in_channels, 3, strides=strides, padding=1,
                                   groups=in_channels[0] + in_channels[1],
                                   in_channels=in_channels, prefix='conv1', **ok)
            self.bn1 = OctBatchNorm(in_channels, act='relu', prefix='bn1', **bn)
            self.conv2 = OctConv2D(channels, 1, in_channels=in_channels, prefix='conv2', **ok)
            self.bn2 = OctBatchNorm(channels, act='relu', prefix='bn2', **bn)

    def hybrid_forward(self, F, x_high, x_low=None):
        out = self.bn1(*self.conv1(x_high, x_low))  # BN + ReLU
        return self.bn2(*self.conv2(*out))


class OctMobileNetV1(_Blocks):
    """Octave MobileNet v1 with width ``multiplier``; blocks ``L<stage>_B<i>`` (the
    first is ``L1_B1``)."""

    def __init__(self, multiplier=1.0, alpha=0.0, final_drop=0.0, classes=1000,
                 norm_kwargs=None, oct_kwargs=None, fuse_bn_relu=None, prefix=None):
        super(OctMobileNetV1, self).__init__(prefix=prefix)
        alpha = _check_alpha(alpha)
        bn = _bn_kwargs(norm_kwargs)
        obn = dict(bn, fuse=fuse_bn_relu)      # for the octave BNs (BN + ReLU fusion)
        dw = [int(c * multiplier) for c in [32, 64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024]]
        pw = [int(c * multiplier) for c in [64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2]
        strides = [1, 2] * 3 + [1] * 5 + [2, 1]
        dw_ratio = [0.0] + [alpha] * 10 + [0.0] * 2
        pw_ratio = [alpha] * 10 + [0.0] * 3
        self._block_names = []
        with self.name_scope():
            self.conv1 = nn.HybridSequential(prefix='')
            with self.conv1.name_scope():
                _conv_bn_relu(self.conv1, dw[0], 3, 2, 3, 'conv1_', 'bn1_', bn)
            stage, idx = 1, 0
            for d, p, s, dr, pr in zip(dw, pw, strides, dw_ratio, pw_ratio):
                stage, idx = (stage + 1, 0) if s > 1 else (stage, idx + 1)
                name = 'L%d_B%d' % (stage, idx)
                self._add_block(name, _DWSConv(split_channels(d, dr), split_channels(p, pr), s,
                                               bn_kwargs=obn, oct_kwargs=oct_kwargs,
                                               prefix=name + '_'))
            self.drop = nn.Dropout(final_drop) if final_drop > 0 else None
            self.classifer = _classifier(classes, pw[-1])

    def hybrid_forward(self, F, x):
        x = self._run_blocks((self.conv1(x), None))[0]
        x = F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type='avg')
        if self.drop is not None:
            x = self.drop(x)
        return F.flatten(self.classifer(x))


# ------------------------------------------------------------------------- MobileNet v2
class _InvertedResidual(HybridBlock):
    """1x1 expand (octave out) - BN - ReLU6 - 3x3 depthwise (stride) - BN - ReLU6 -
    1x1 project (merged to high) - BN [+ input]. Block input/output are high only."""

    def __init__(self, in_planes, mid_planes, out_planes, strides, last_gamma=False,
                 bn_kwargs=None, oct_kwargs=None, prefix=None):
        super(_InvertedResidual, self).__init__(prefix=prefix)
        bn = dict(bn_kwargs or {})
        ok = dict(oct_kwargs or {})
        self.use_shortcut = strides == 1 and in_planes == out_planes
        groups = sum(c for c in mid_planes if c > 0)
        with self.name_scope():
            self.conv1 = OctConv2D(mid_planes, 1, in_channels=in_planes, prefix='conv1', **ok)
            self.bn1 = OctBatchNorm(mid_planes, prefix='bn1', **bn)
            self.conv2 = OctConv2D(mid_planes, 3, strides=strides, padding=1, groups=groups,
                                   in_channels=mid_planes, prefix='conv2', **ok)
            self.bn2 = OctBatchNorm(mid_planes, prefix='bn2', **bn)
            self.conv3 = OctConv2D(out_planes, 1, in_channels=mid_planes, prefix='conv3', **ok)
            self.bn3 = OctBatchNorm(out_planes, prefix='bn3',
                                    gamma_initializer='zeros' if (last_gamma and self.use_shortcut)
                                    else 'ones', **bn)
            self.relu6 = OctActivation('relu6')

    def hybrid_forward(self, F, x_high, x_low=None):
        out = self.relu6(*self.bn1(*self.conv1(x_high, None)))
        out = self.relu6(*self.bn2(*self.conv2(*out)))
        out = self.bn3(*self.conv3(*out))[0]
        return (out + x_high if self.use_shortcut else out, None)


class OctMobileNetV2(_Blocks):
    """Octave MobileNet v2 (only the expanded tensors of the first 13 blocks are octave)."""

    def __init__(self, multiplier=1.0, alpha=0.0, final_drop=0.0, last_gamma=False,
                 classes=1000, norm_kwargs=None, oct_kwargs=None, fuse_bn_relu=None,
                 prefix=None):
        super(OctMobileNetV2, self).__init__(prefix=prefix)
        alpha = _check_alpha(alpha)
        bn = _bn_kwargs(norm_kwargs)
        obn = dict(bn, fuse=fuse_bn_relu)      # for the octave BNs (BN + ReLU fusion)
        ins = [int(multiplier * c) for c in
               [32, 16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3]
        mids = [t * c for t, c in zip([1] + [6] * 16, ins)]
        outs = [int(multiplier * c) for c in
                [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320]]
        strides = [1, 2] * 2 + [1, 1, 2] + [1] * 6 + [2] + [1] * 3
        ratios = [alpha] * 13 + [0.0] * 4
        last = int(1280 * multiplier) if multiplier > 1.0 else 1280
        self._block_names = []
        with self.name_scope():
            self.conv1 = nn.HybridSequential(prefix='')
            with self.conv1.name_scope():
                self.conv1.add(nn.Conv2D(ins[0], 3, strides=2, padding=1, in_channels=3,
                                         use_bias=False, prefix='conv1_'))
                self.conv1.add(nn.BatchNorm(in_channels=ins[0], prefix='bn1_', **bn))
                self.conv1.add(_ReLU6())
            stage, idx = 1, 0
            for c_in, c_mid, c_out, s, r in zip(ins, mids, outs, strides, ratios):
                stage, idx = (stage + 1, 0) if s > 1 else (stage, idx + 1)
                name = 'L%d_B%d' % (stage, idx)
                self._add_block(name, _InvertedResidual(
                    (c_in, -1), split_channels(c_mid, r), (c_out, -1), s, last_gamma=last_gamma,
                    bn_kwargs=obn, oct_kwargs=oct_kwargs, prefix=name + '_'))
            self.tail = nn.HybridSequential(prefix='')
            with self.tail.name_scope():
                self.tail.add(nn.Conv2D(last, 1, in_channels=outs[-1], use_bias=False,
                                        prefix='tail-conv_'))
                self.tail.add(nn.BatchNorm(in_channels=last, prefix='tail-bn_', **bn))
                self.tail.add(_ReLU6())
            self.drop = nn.Dropout(final_drop) if final_drop > 0 else None
            self.classifer = _classifier(classes, last)

    def hybrid_forward(self, F, x):
        x = self.tail(self._run_blocks((self.conv1(x), None))[0])
        x = F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type='avg')
        if self.drop is not None:
            x = self.drop(x)
        return F.flatten(self.classifer(x))


class _ReLU6(HybridBlock):
    def hybrid_forward(self, F, x):
        return F.clip(x, 0, 6)


# ----------------------------------------------------------------------------- DenseNet
class _DenseLayer(HybridBlock):
    """BN-ReLU-1x1 conv (bn_size x growth) - BN-ReLU-3x3 conv (growth), concatenated
    to the input part by part."""

    def __init__(self, in_channels, growth, bn_size=4, bn_kwargs=None, oct_kwargs=None,
                 prefix=None):
        super(_DenseLayer, self).__init__(prefix=prefix)
        bn = dict(bn_kwargs or {})
        ok = dict(oct_kwargs or {})
        mid = tuple(bn_size * c if c > 0 else -1 for c in growth)
        with self.name_scope():
            self.bn1 = OctBatchNorm(in_channels, act='relu', prefix='bn1', **bn)
            self.conv1 = OctConv2D(mid, 1, in_channels=in_channels, prefix='conv1', **ok)
            self.bn2 = OctBatchNorm(mid, act='relu', prefix='bn2', **bn)
            self.conv2 = OctConv2D(growth, 3, padding=1, in_channels=mid, prefix='conv2', **ok)

    def hybrid_forward(self, F, x_high, x_low=None):
        out = self.conv1(*self.bn1(x_high, x_low))   # BN + ReLU
        out = self.conv2(*self.bn2(*out))
        return oct_concat(F, (x_high, x_low), out)


class _Transition(HybridBlock):
    """BN-ReLU-1x1 conv - 2x2/2 average pool (floor) on each part."""

    def __init__(self, in_channels, channels, bn_kwargs=None, oct_kwargs=None, prefix=None):
        super(_Transition, self).__init__(prefix=prefix)
        with self.name_scope():
            self.bn = OctBatchNorm(in_channels, act='relu', prefix='bn', **dict(bn_kwargs or {}))
            self.conv = OctConv2D(channels, 1, in_channels=in_channels, prefix='conv',
                                  **dict(oct_kwargs or {}))
            self.pool = OctPool2D('avg', 2, 2)

    def hybrid_forward(self, F, x_high, x_low=None):
        return self.pool(*self.conv(*self.bn(x_high, x_low)))


_DENSENET_SPEC = {121: (64, 32, [6, 12, 24, 16]), 161: (96, 48, [6, 12, 36, 24]),
                  169: (64, 32, [6, 12, 32, 32]), 201: (64, 32, [6, 12, 48, 32])}


class OctDenseNet(_Blocks):
    """Octave DenseNet-BC (Gluon API): octave 7x7 stem conv (pooled stride), octave
    dense blocks 1-3, the last transition merges the low part."""

    def __init__(self, num_init_features, growth_rate, block_config, alpha=0.0, bn_size=4,
                 final_drop=0.0, classes=1000, norm_kwargs=None, oct_kwargs=None,
                 fuse_bn_relu=None, prefix=None):
        super(OctDenseNet, self).__init__(prefix=prefix)
        alpha = _check_alpha(alpha)
        bn = _bn_kwargs(norm_kwargs)
        obn = dict(bn, fuse=fuse_bn_relu)      # for the octave BNs (BN + ReLU fusion)
        ratios = (alpha, alpha, alpha, 0.0)
        self._block_names = []

        def parts_sum(a, b):
            return tuple((x if x > 0 else 0) + (y if y > 0 else 0) for x, y in zip(a, b))

        def check(actual, expected, where):
            # the reference recomputes each layer's split from the total width; the
            # layers only fit the concatenated features if both agree part by part
            actual = tuple(c if c > 0 else -1 for c in actual)
            if actual != expected:
                raise ValueError('DenseNet with alpha=%g cannot be built: at %s the features '
                                 'are split %s but the layer expects %s (alpha * growth rate '
                                 '%d must give consistent splits)'
                                 % (alpha, where, actual, expected, growth_rate))
        with self.name_scope():
            plane = split_channels(num_init_features, ratios[0])
            self.conv1 = OctConv2D(plane, 7, strides=2, padding=3, in_channels=(3, -1),
                                   prefix='conv1', **dict(oct_kwargs or {}))
            self.bn1 = OctBatchNorm(plane, act='relu', prefix='bn1', **obn)
            self.maxpool = OctPool2D('max', 3, 2, padding=1)
            actual = plane
            width = num_init_features
            for i, n in enumerate(block_config):
                stage, idx = i + 1, 0
                for j in range(n):
                    if j == 0 and i > 0:
                        name = 'L%d_B%d' % (stage, idx)
                        t_in = split_channels(width, ratios[i - 1])
                        check(actual, t_in, name)
                        t_out = split_channels(int(width / 2), ratios[i])
                        self._add_block(name, _Transition(t_in, t_out, obn, oct_kwargs,
                                                          prefix=name + '_'))
                        idx += 1
                        width = int(width / 2)
                        actual = t_out
                    name = 'L%d_B%d' % (stage, idx)
                    d_in = split_channels(width, ratios[i])
                    check(actual, d_in, name)
                    growth = split_channels(growth_rate, ratios[i])
                    self._add_block(name, _DenseLayer(d_in, growth, bn_size, obn, oct_kwargs,
                                                      prefix=name + '_'))
                    actual = parts_sum(d_in, growth)
                    idx += 1
                    width += growth_rate
            check(actual, (width, -1), 'the tail')
            self.tail = nn.HybridSequential(prefix='')
            with self.tail.name_scope():
                self.tail.add(nn.BatchNorm(in_channels=width, prefix='tail-bn_', **bn))
                self.tail.add(nn.Activation('relu'))
            self.drop = nn.Dropout(final_drop) if final_drop > 0 else None
            self.classifer = _classifier(classes, width)

    def hybrid_forward(self, F, x):
        x = self.maxpool(*self.bn1(*self.conv1(x, None)))
        x = self.tail(self._run_blocks(x)[0])
        x = F.Pooling(x, global_pool=True, kernel=(1, 1), pool_type='avg')
        if self.drop is not None:
            x = self.drop(x)
        return F.flatten(self.classifer(x))


# ------------------------------------------------------------------------ constructors
def oct_resnet_v1(depth=50, variant='b', alpha=0.25, groups=1, use_se=False, extra_bn=None,
                  classes=1000, prefix=None, **kwargs):
    """Octave ResNet/ResNeXt v1 (``variant`` 'b', 'e' or 'f'), input (N, 3, H, W), H, W
    multiples of 32 -> (N, classes). ``groups=32`` is ResNeXt 32x4d (mid widths doubled,
    as the reference's ``num_mid``; it has no width-per-group option). ``extra_bn``
    defaults to ``use_se`` for v1e/v1f (the reference switches it on there)."""
    layers = resnet_stage_blocks(depth, OCT_RESNET_DEPTHS)
    if variant not in ('b', 'e', 'f'):
        raise ValueError("variant must be 'b', 'e' or 'f', got %r" % (variant,))
    if extra_bn is None:
        extra_bn = bool(use_se) and variant in ('e', 'f')
    num_mid = (64, 128, 256, 512) if groups == 1 else (128, 256, 512, 1024)
    if prefix is None:
        prefix = ('R%d_' if groups == 1 else 'RX%d_') % depth
    return OctResNetV1(layers, alpha=alpha, groups=groups, num_mid=num_mid,
                       down_pos=1 if variant == 'b' else 2, deep_stem=variant != 'b',
                       replace_maxpool='bottleneck-131' if variant == 'f' else None,
                       use_se=use_se, extra_bn=extra_bn, classes=classes, prefix=prefix,
                       **kwargs)


def oct_resnet_v2(depth=50, alpha=0.25, groups=1, classes=1000, prefix=None, **kwargs):
    """Octave ResNet/ResNeXt v2b (pre-activation), (N, 3, H, W) -> (N, classes)."""
    layers = resnet_stage_blocks(depth, OCT_RESNET_DEPTHS)
    num_mid = (64, 128, 256, 512) if groups == 1 else (128, 256, 512, 1024)
    if prefix is None:
        prefix = ('R%d_' if groups == 1 else 'RX%d_') % depth
    return OctResNetV2(layers, alpha=alpha, groups=groups, num_mid=num_mid,
                       classes=classes, prefix=prefix, **kwargs)


def oct_mobilenet_v1(multiplier=1.0, alpha=0.5, classes=1000, prefix=None, **kwargs):
    """Octave MobileNet v1, (N, 3, H, W) -> (N, classes)."""
    if prefix is None:
        prefix = 'M%03d_' % int(round(multiplier * 100))
    return OctMobileNetV1(multiplier, alpha=alpha, classes=classes, prefix=prefix, **kwargs)


def oct_mobilenet_v2(multiplier=1.0, alpha=0.375, classes=1000, prefix=None, **kwargs):
    """Octave MobileNet v2, (N, 3, H, W) -> (N, classes)."""
    if prefix is None:
        prefix = 'M%s_' % ('%g' % (multiplier * 100)).replace('.', '')
        prefix = 'M1125_' if abs(multiplier - 1.125) < 1e-9 else prefix
    return OctMobileNetV2(multiplier, alpha=alpha, classes=classes, prefix=prefix, **kwargs)


def oct_densenet(depth=121, alpha=0.25, classes=1000, prefix=None, **kwargs):
    """Octave DenseNet-BC 121/161/169/201, (N, 3, H, W) -> (N, classes)."""
    if depth not in _DENSENET_SPEC:
        raise ValueError('depth must be one of %s, got %r' % (sorted(_DENSENET_SPEC), depth))
    init, growth, config = _DENSENET_SPEC[depth]
    return OctDenseNet(init, growth, config, alpha=alpha, classes=classes,
                       prefix=prefix or 'D%d_' % depth, **kwargs)


# ---------------------------------------------------------------------------- registry
# One function per name; each maps (N, 3, H, W), H and W multiples of 32, to (N, classes)
# logits, and ``kwargs`` are the options of the module docstring. Depth >= 152 (and
# ResNeXt-101, DenseNet-161/169/201) are ``slow``: left out of the quick test runs.
_V1 = _REF + 'resnetv1.py'
_V2 = _REF + 'resnetv2.py'
_MOBILENET_V1 = _REF + 'mobilenetv1.py'
_MOBILENET_V2 = _REF + 'mobilenetv2.py'
_DENSENET = _REF + 'densenet.py'


@register_model('octconv', reference=_V1)
def oct_resnet26_v1b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-26 v1b: Gluon API (utils/gluon), post-activation, stride on the 3x3."""
    return oct_resnet_v1(depth=26, variant='b', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet26_v1e(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-26 v1e: Gluon API (utils/gluon), post-activation, deep stem."""
    return oct_resnet_v1(depth=26, variant='e', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet26_v1f(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-26 v1f: Gluon API (utils/gluon), post-activation, deep stem + stem2."""
    return oct_resnet_v1(depth=26, variant='f', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet50_v1b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-50 v1b: Gluon API (utils/gluon), post-activation, stride on the 3x3."""
    return oct_resnet_v1(depth=50, variant='b', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet50_v1e(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-50 v1e: Gluon API (utils/gluon), post-activation, deep stem."""
    return oct_resnet_v1(depth=50, variant='e', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet50_v1f(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-50 v1f: Gluon API (utils/gluon), post-activation, deep stem + stem2."""
    return oct_resnet_v1(depth=50, variant='f', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet101_v1b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-101 v1b: Gluon API (utils/gluon), post-activation, stride on the 3x3."""
    return oct_resnet_v1(depth=101, variant='b', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet101_v1e(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-101 v1e: Gluon API (utils/gluon), post-activation, deep stem."""
    return oct_resnet_v1(depth=101, variant='e', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnet101_v1f(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-101 v1f: Gluon API (utils/gluon), post-activation, deep stem + stem2."""
    return oct_resnet_v1(depth=101, variant='f', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1, slow=True)
def oct_resnet152_v1b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-152 v1b: Gluon API (utils/gluon), post-activation, stride on the 3x3."""
    return oct_resnet_v1(depth=152, variant='b', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1, slow=True)
def oct_resnet152_v1e(classes=1000, alpha=0.125, **kwargs):
    """Oct-ResNet-152 v1e: Gluon API (utils/gluon), post-activation, deep stem.
    With ``use_se=True``: the README's Oct-ResNet-152 + SE (alpha 0.125)."""
    return oct_resnet_v1(depth=152, variant='e', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1, slow=True)
def oct_resnet152_v1f(classes=1000, alpha=0.125, **kwargs):
    """Oct-ResNet-152 v1f: Gluon API (utils/gluon), post-activation, deep stem + stem2.
    The README's Oct-ResNet-152 (alpha 0.125)."""
    return oct_resnet_v1(depth=152, variant='f', alpha=alpha, classes=classes, **kwargs)


register_alias('oct_resnet152', 'oct_resnet152_v1f')


@register_model('octconv', reference=_V1, slow=True)
def oct_resnet200_v1b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-200 v1b: Gluon API (utils/gluon), post-activation, stride on the 3x3."""
    return oct_resnet_v1(depth=200, variant='b', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1, slow=True)
def oct_resnet200_v1e(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-200 v1e: Gluon API (utils/gluon), post-activation, deep stem."""
    return oct_resnet_v1(depth=200, variant='e', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1, slow=True)
def oct_resnet200_v1f(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-200 v1f: Gluon API (utils/gluon), post-activation, deep stem + stem2."""
    return oct_resnet_v1(depth=200, variant='f', alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V2)
def oct_resnet50_v2b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-50 v2b: Gluon API (utils/gluon), pre-activation, 1x1-conv classifier.
    Not the Symbol-API ``oct_resnet50_v2`` (``oct_sym_resnet50_v2``, ablation table)."""
    return oct_resnet_v2(depth=50, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V2)
def oct_resnet101_v2b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-101 v2b: Gluon API (utils/gluon), pre-activation, 1x1-conv classifier.
    Not the Symbol-API ``oct_resnet101_v2`` (``oct_sym_resnet101_v2``, ablation table)."""
    return oct_resnet_v2(depth=101, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V2, slow=True)
def oct_resnet152_v2b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-152 v2b: Gluon API (utils/gluon), pre-activation, 1x1-conv classifier.
    Not the Symbol-API ``oct_resnet152_v2`` (``oct_sym_resnet152_v2``, ablation table)."""
    return oct_resnet_v2(depth=152, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V1)
def oct_resnext50_32x4d_v1b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNeXt-50 32x4d v1b: Gluon API (utils/gluon), post-activation, stride on the 3x3."""
    return oct_resnet_v1(depth=50, variant='b', groups=32, alpha=alpha, classes=classes,
                         **kwargs)


@register_model('octconv', reference=_V1, slow=True)
def oct_resnext101_32x4d_v1b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNeXt-101 32x4d v1b: Gluon API (utils/gluon), post-activation, stride on the 3x3."""
    return oct_resnet_v1(depth=101, variant='b', groups=32, alpha=alpha, classes=classes,
                         **kwargs)


@register_model('octconv', reference=_V2)
def oct_resnext50_32x4d_v2b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNeXt-50 32x4d v2b: Gluon API (utils/gluon), pre-activation.
    Not the Symbol-API ``oct_resnext50_32x4d_v2`` (``oct_sym_resnext50_32x4d_v2``)."""
    return oct_resnet_v2(depth=50, groups=32, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_V2, slow=True)
def oct_resnext101_32x4d_v2b(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNeXt-101 32x4d v2b: Gluon API (utils/gluon), pre-activation.
    Not the Symbol-API ``oct_resnext101_32x4d_v2`` (``oct_sym_resnext101_32x4d_v2``)."""
    return oct_resnet_v2(depth=101, groups=32, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_MOBILENET_V1)
def oct_mobilenet_v1_075(classes=1000, alpha=0.375, **kwargs):
    """Oct-MobileNet v1 x0.75: Gluon API (utils/gluon); the README's alpha 0.375."""
    return oct_mobilenet_v1(multiplier=0.75, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_MOBILENET_V1)
def oct_mobilenet_v1_100(classes=1000, alpha=0.5, **kwargs):
    """Oct-MobileNet v1 x1.0: Gluon API (utils/gluon); the README's alpha 0.5."""
    return oct_mobilenet_v1(multiplier=1.0, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_MOBILENET_V2)
def oct_mobilenet_v2_100(classes=1000, alpha=0.375, **kwargs):
    """Oct-MobileNet v2 x1.0: Gluon API (utils/gluon); the README's alpha 0.375."""
    return oct_mobilenet_v2(multiplier=1.0, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_MOBILENET_V2)
def oct_mobilenet_v2_1125(classes=1000, alpha=0.5, **kwargs):
    """Oct-MobileNet v2 x1.125: Gluon API (utils/gluon); the README's alpha 0.5."""
    return oct_mobilenet_v2(multiplier=1.125, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_DENSENET)
def oct_densenet121(classes=1000, alpha=0.25, **kwargs):
    """Oct-DenseNet-121: Gluon API (utils/gluon), octave stem conv and dense blocks 1-3.
    Not the Symbol-API ``oct_densenet121_v2`` (``oct_sym_densenet121_v2``)."""
    return oct_densenet(depth=121, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_DENSENET, slow=True)
def oct_densenet161(classes=1000, alpha=0.25, **kwargs):
    """Oct-DenseNet-161: Gluon API (utils/gluon), octave stem conv and dense blocks 1-3."""
    return oct_densenet(depth=161, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_DENSENET, slow=True)
def oct_densenet169(classes=1000, alpha=0.25, **kwargs):
    """Oct-DenseNet-169: Gluon API (utils/gluon), octave stem conv and dense blocks 1-3."""
    return oct_densenet(depth=169, alpha=alpha, classes=classes, **kwargs)


@register_model('octconv', reference=_DENSENET, slow=True)
def oct_densenet201(classes=1000, alpha=0.25, **kwargs):
    """Oct-DenseNet-201: Gluon API (utils/gluon), octave stem conv and dense blocks 1-3."""
    return oct_densenet(depth=201, alpha=alpha, classes=classes, **kwargs)


# --------------------------------------------------------------------------- converter
def _strip_prefix(mapping, ignored, net_prefix, keys):
    """Rewrite ParameterDict-style sources for a checkpoint whose model prefix differs
    from ours (e.g. a ResNet-101 built under another name prefix)."""
    probe = 'classifier_weight'
    found = [k for k in keys if k.endswith(probe)]
    if len(found) != 1:
        return mapping, ignored
    ref_prefix = found[0][:-len(probe)]
    if ref_prefix == net_prefix:
        return mapping, ignored

    def fix(key):
        return ref_prefix + key[len(net_prefix):] if key.startswith(net_prefix) else key
    out = {}
    for ours, src in mapping.items():
        out[ours] = (tuple(fix(k) for k in src[0]), src[1]) if isinstance(src, tuple) else fix(src)
    return out, {fix(k) for k in ignored}


@register_converter('octconv')
def _convert_octconv(name, state_dict, **kwargs):
    """Reference (facebookresearch/OctConv, Gluon API) weights -> our model.

    Accepts ``ParameterDict`` names (``R50_L1_B0_conv1-h2h_weight``, the golden files,
    ``collect_params().save``) or attribute paths (``L1_B0.conv1.conv_h2h.weight``, the
    published ``save_parameters`` files)."""
    net = get_model(name, **kwargs)
    keys = list(state_dict)
    if not keys:
        raise ConversionError('empty checkpoint for %s' % name)
    attr = sum('.' in k for k in keys) > len(keys) // 2
    ignored = set()
    mapping = reference_mapping(net, 'attr' if attr else 'params', ignored=ignored)
    if not attr:
        mapping, ignored = _strip_prefix(mapping, ignored, net.prefix, keys)
    return ConversionPlan(net, mapping, ignored)
