"""OctConv ablation-table models: the reference's Symbol-API networks (pre-activation).

The OctConv paper's ablation table (ResNet-26/50/101/152/200, SE-ResNet-50,
ResNeXt-50/101 32x4d, DenseNet-121 at alpha .125 ... .75 and their plain baselines)
was produced with the reference's ``utils/symbol`` code, not with its Gluon models.
They differ from the Gluon ones (``gluon_nets.models.octconv``) in ways that change the
numbers, so they are separate models, registered with the suffix ``_v2``:

* pre-activation bottlenecks (BN -> ReLU -> conv three times, projection ``conv4`` =
  BN -> ReLU -> 1x1 conv with the stride on every stage's first block, sum without ReLU),
  a BN -> ReLU tail, a ``Dense`` classifier (the Gluon models use a 1x1 conv);
* BatchNorm eps 1e-4, momentum 0.92 everywhere (also in the baselines);
* octave convolutions with floor ("valid") average pooling, stride-2 h->l as two 2x2 pools,
  per-path groups ``min(path output channels, groups)``, and octave ops even at alpha 0
  (stride by pooling); stage 5 (the 7x7 stage at 224) is always plain-width (alpha 0);
* a plain 7x7/2 stem + 3x3/2 max pool; DenseNet-121's low part starts empty and only
  holds the low channels grown inside dense block 1 onwards.

``alpha`` is the reference's ``ratio``. ``alpha=-1`` builds the reference's baseline
(``ratio=-1``): ordinary convolutions with real strides, no octave paths, and the
reference's plain parameter names (``L2_B01_conv1_conv_weight`` instead of
``L2_B01_conv1_conv-h2h_weight``). Any alpha in [0, 1) that the reference can build is
accepted; others raise ``ValueError`` naming the constraint (ResNeXt: every octave part
of the grouped 3x3 convs must divide into ``min(part, 32)`` groups, so e.g. 0.125 fails;
DenseNet: ``int(32 * alpha) >= 1``, so alpha 0 fails).

Names: the registry keeps the ``_v2`` names (``oct_resnet50_v2``; held-out goldens use
them), and each model also answers to an alias that says which code base it is,
``oct_sym_`` + the rest of the name (``oct_sym_resnet50_v2``), the scheme of the golden
files. ``oct_resnet50_v2b`` etc. are the *Gluon* API's pre-activation ResNets
(:mod:`gluon_nets.models.octconv`), a different implementation. The family ``octconv``
is declared once, in that module; the models here override its data config (the Symbol
API's ``score.py`` recipe, :data:`SYMBOL_API_DATA_CONFIG`) and classifier name.

Parameter names follow the reference's Symbol names through :func:`reference_mapping`;
:func:`load_symbol_checkpoint` reads ``<prefix>-symbol.json`` + ``<prefix>-NNNN.params``
(``arg:``/``aux:`` keys), and the converter registered here accepts those keys too, so
``python -m gluon_nets.convert --model oct_resnet50_v2 --alpha 0.25 --checkpoint
X-0100.params`` works on the authors' checkpoints.
"""
import json
import os

import mxnet as mx
import numpy as np
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..model_zoo import (ConversionError, ConversionPlan, get_model, read_mxnet_params,
                         register_alias, register_converter, register_model)
from ..nn.blocks import ResNetStem, SqueezeExcite, concat_channels, resnet_stage_blocks
from ..nn.octave import OctActivation, OctBatchNorm, OctConv2D, OctSE, oct_add
# the family (paper, data config, --alpha flag) is declared once, there; importing it
# first also orders the declaration before the models below
from .octconv import FAMILY  # noqa: F401

__all__ = ['OctResNetV2Symbol', 'OctDenseNetSymbol', 'PreActConv', 'PreActBottleneck',
           'DenseLayer', 'Transition', 'SymbolOctSE', 'reference_mapping',
           'load_symbol_checkpoint', 'strip_symbol_prefixes', 'check_alpha', 'PLAIN',
           'SYMBOL_MODELS', 'SYMBOL_API_DATA_CONFIG']

#: ``alpha`` value that selects the plain baseline (the reference's ``ratio=-1``).
PLAIN = -1

# BatchNorm of every Symbol-API model (symbol_octconv.py and symbol_basic.py alike).
SYMBOL_BN = dict(epsilon=1e-4, momentum=0.92)

_REF = 'facebookresearch/OctConv@87c44f79162f3a2ef316bf924ad3697b8957a463:utils/symbol/'
_PAPER = ('Chen et al., Drop an Octave: Reducing Spatial Redundancy in Convolutional '
          'Neural Networks with Octave Convolution, ICCV 2019 (ablation table)')

# the Symbol API's octave conv: floor pooling, h->l = two 2x2 pools at stride 2,
# groups clipped per path, bias on h2h/h2l only, no depthwise detection.
# merge=False: OctConv2D's merged paths concatenate 4-D maps, and with mxnet 1.9.1 the
# oneDNN Concat backward fails ("could not construct a sub-memory") whenever a channel
# offset is not a multiple of oneDNN's block (e.g. alpha 0.125 or 0.3), so the merged
# layers cannot be trained on CPU. Separate paths are exact too and train at every alpha.
_SYMBOL_OCT = dict(pool_mode='valid', h2l_pool='double', clip_groups=True,
                   bias_mode='symbol', depthwise=False, merge=False)


def safe_oct_concat(F, a, b):
    """Part-wise :func:`gluon_nets.nn.concat_channels` of two (high, low) pairs (absent
    parts pass through)."""
    return tuple(x if y is None else (y if x is None else concat_channels(F, x, y))
                 for x, y in zip(a, b))


# --------------------------------------------------------------------------- alpha

def check_alpha(alpha):
    """``alpha`` as a float, checked: ``-1`` (plain baseline) or ``0 <= alpha < 1``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise ValueError('alpha must be a number: -1 (plain baseline) or in [0, 1), got %r'
                         % (alpha,))
    alpha = float(alpha)
    if alpha != PLAIN and not 0.0 <= alpha < 1.0:
        raise ValueError('alpha must be -1 (plain baseline, the reference\'s ratio=-1) or in '
                         '[0, 1), got %r' % alpha)
    return alpha


def _split(channels, alpha):
    """The reference's split: ``low = int(alpha*C)``, ``high = C - low``; -1 = absent."""
    if alpha == PLAIN:
        return (channels, -1)
    low = int(alpha * channels)
    return (channels - low, low if low > 0 else -1)


def _total(spec):
    return sum(c for c in spec if c > 0)


def _check_grouped(spec, groups, where):
    """The reference's grouped octave conv (in = out = ``spec``) uses
    ``min(out part, groups)`` groups per path; every part it reads and writes must
    divide by that. Mirrors where ``symbol_octconv.Convolution`` fails."""
    high, low = spec
    for src in (high, low):
        for dst in (high, low):
            if src > 0 and dst > 0:
                g = min(dst, groups)
                if src % g or dst % g:
                    raise ValueError(
                        '%s: the grouped 3x3 conv splits its width into (high, low) = %s and '
                        'runs every octave path with min(output part, %d) groups, so each part '
                        'must be a multiple of min(part, %d); %d -> %d channels cannot use %d '
                        'groups (the reference cannot build this alpha either; ResNeXt 32x4d '
                        'works at alpha 0, 0.25, 0.5, 0.75)'
                        % (where, (high, low), groups, groups, src, dst, g))


# --------------------------------------------------------------------------- blocks

class PreActConv(HybridBlock):
    """BN -> ReLU -> conv on a (high, low) pair: the reference's ``BN_ACT_Conv``.

    ``octave=True``: :class:`OctBatchNorm` / :class:`OctActivation` / :class:`OctConv2D` with
    the Symbol API's semantics (stride by floor average pooling); ``octave=False`` (the
    plain baseline): ``nn.BatchNorm`` / ``nn.Activation`` / ``nn.Conv2D`` with a real stride,
    the low part must be absent.

    Inputs ``x_high`` (N, in_h, H, W), ``x_low`` (N, in_l, H/2, W/2) or None; output the
    pair for ``out_spec`` at ``H/strides``. ``ref_name`` is the reference's name of the unit
    (e.g. ``L2_B01_conv1``: its parameters are ``<ref_name>_bn...`` / ``<ref_name>_conv...``).
    """

    def __init__(self, in_spec, out_spec, kernel_size, strides=1, padding=0, groups=1,
                 octave=True, ref_name='', **kwargs):
        super(PreActConv, self).__init__(**kwargs)
        self.octave = octave
        self.ref_name = ref_name
        with self.name_scope():
            if octave:
                self.bn = OctBatchNorm(in_spec, **SYMBOL_BN)
                self.act = OctActivation('relu')
                self.conv = OctConv2D(out_spec, kernel_size, strides, padding, groups=groups,
                                      in_channels=in_spec, **_SYMBOL_OCT)
            else:
                self.bn = nn.BatchNorm(in_channels=in_spec[0], **SYMBOL_BN)
                self.act = nn.Activation('relu')
                self.conv = nn.Conv2D(out_spec[0], kernel_size, strides, padding, groups=groups,
                                      use_bias=False, in_channels=in_spec[0])

    def hybrid_forward(self, F, x_high, x_low=None):
        if self.octave:
            return self.conv(*self.act(*self.bn(x_high, x_low)))
        return (self.conv(self.act(self.bn(x_high))), None)

    def ref_mapping(self, path):
        """{our structural name: reference key | ((keys), fn)} of this unit."""
        bn, conv = '%s_bn' % self.ref_name, '%s_conv' % self.ref_name
        out = {}
        if self.octave:
            for part in ('h', 'l'):
                if hasattr(self.bn, 'bn_' + part):
                    out.update(_bn_mapping('%sbn.bn_%s.' % (path, part), '%s-%s' % (bn, part)))
            for local, (refs, fn) in self.conv.param_sources().items():
                keys = tuple('%s-%s_%s' % (conv, p, kind) for p, kind in refs)
                out[path + 'conv.' + local] = (keys, fn) if fn is not None else keys[0]
        else:
            out.update(_bn_mapping(path + 'bn.', bn))
            out[path + 'conv.weight'] = conv + '_weight'
        return out


class SymbolOctSE(OctSE):
    """The shared :class:`OctSE` (the reference's octave-FC SE of ``symbol_seblock``: its
    fc1-h2h / fc1-l2h pair is one 1x1 conv over the concatenated pooled parts) with the
    concatenation done by :func:`gluon_nets.nn.concat_channels`, so that it trains on CPU
    at every alpha."""

    def hybrid_forward(self, F, x_high, x_low=None):
        parts = [(x, c) for x, c in zip((x_high, x_low), self.parts) if c > 0]
        z = concat_channels(F, *[F.contrib.AdaptiveAvgPooling2D(x, output_size=1)
                                 for x, _ in parts])
        z = F.Activation(self.conv1(z), act_type='relu')
        out = []
        for x, c, name in zip((x_high, x_low), self.parts, ('conv2_h', 'conv2_l')):
            out.append(F.broadcast_mul(x, F.Activation(getattr(self, name)(z), act_type='sigmoid'))
                       if c > 0 else None)
        return tuple(out)


def _bn_mapping(ours, ref):
    return {ours + 'gamma': ref + '_gamma', ours + 'beta': ref + '_beta',
            ours + 'running_mean': ref + '_moving_mean', ours + 'running_var': ref + '_moving_var'}


def _fc_as_conv(*weights):
    """Dense weights (out, in_i) of the reference's octave FCs -> one 1x1 conv kernel."""
    w = np.concatenate(weights, axis=1) if len(weights) > 1 else weights[0]
    return w.reshape(w.shape + (1, 1))


class PreActBottleneck(HybridBlock):
    """The reference's ``BottleNeckV2`` on (high, low) pairs.

    conv1 (1x1) -> conv2 (3x3, stride, groups) -> conv3 (1x1), each a :class:`PreActConv`;
    optional SE (hidden ``int(total out / 16)``) after conv3; on a stage's first block the
    shortcut is ``conv4`` (BN -> ReLU -> 1x1 with the stride), else the raw input; the two
    are summed part-wise without an activation.
    """

    def __init__(self, in_spec, mid_spec, out_spec, strides=1, groups=1, first=False,
                 use_se=False, octave=True, ref_name='', **kwargs):
        super(PreActBottleneck, self).__init__(**kwargs)
        self.first = first
        self.use_se = use_se
        self.octave = octave
        self.ref_name = ref_name
        unit = dict(octave=octave)
        with self.name_scope():
            self.conv1 = PreActConv(in_spec, mid_spec, 1, ref_name=ref_name + '_conv1', **unit)
            self.conv2 = PreActConv(mid_spec, mid_spec, 3, strides, 1, groups,
                                    ref_name=ref_name + '_conv2', **unit)
            self.conv3 = PreActConv(mid_spec, out_spec, 1, ref_name=ref_name + '_conv3', **unit)
            if use_se:
                hidden = int(_total(out_spec) / 16)
                self.se = (SymbolOctSE(hidden, in_channels=out_spec) if octave
                           else SqueezeExcite(out_spec[0], reduced=hidden))
            if first:
                self.conv4 = PreActConv(in_spec, out_spec, 1, strides,
                                        ref_name=ref_name + '_conv4', **unit)

    def hybrid_forward(self, F, x_high, x_low=None):
        out = self.conv3(*self.conv2(*self.conv1(x_high, x_low)))
        if self.use_se:
            out = self.se(*out) if self.octave else (self.se(out[0]), None)
        shortcut = self.conv4(x_high, x_low) if self.first else (x_high, x_low)
        return oct_add(F, shortcut, out)

    def ref_mapping(self, path):
        out = {}
        for name in ('conv1', 'conv2', 'conv3', 'conv4'):
            if hasattr(self, name):
                out.update(getattr(self, name).ref_mapping('%s%s.' % (path, name)))
        if self.use_se:
            se, p = self.ref_name + '_se', path + 'se.'
            if self.octave:
                fc1 = [se + '_fc1-h2h_weight']
                if self.se.parts[1] > 0:
                    fc1.append(se + '_fc1-l2h_weight')
                out[p + 'conv1.weight'] = (tuple(fc1), _fc_as_conv)
                out[p + 'conv1.bias'] = se + '_fc1-h2h_bias'
                for part, path_name in (('h', 'h2h'), ('l', 'h2l')):
                    if hasattr(self.se, 'conv2_' + part):
                        out['%sconv2_%s.weight' % (p, part)] = (
                            ('%s_fc2-%s_weight' % (se, path_name),), _fc_as_conv)
                        out['%sconv2_%s.bias' % (p, part)] = '%s_fc2-%s_bias' % (se, path_name)
            else:
                for fc in ('fc1', 'fc2'):
                    out['%s%s.weight' % (p, fc)] = '%s_%s_weight' % (se, fc)
                    out['%s%s.bias' % (p, fc)] = '%s_%s_bias' % (se, fc)
        return out


class DenseLayer(HybridBlock):
    """The reference's Symbol ``DenseBlock`` (one layer): BN-ReLU-1x1 conv to ``mid`` ->
    BN-ReLU-3x3 conv to ``growth`` (both split by alpha), concatenated part-wise to the input."""

    def __init__(self, in_spec, mid_spec, growth_spec, octave=True, ref_name='', **kwargs):
        super(DenseLayer, self).__init__(**kwargs)
        with self.name_scope():
            self.conv1 = PreActConv(in_spec, mid_spec, 1, octave=octave,
                                    ref_name=ref_name + '_conv1')
            self.conv2 = PreActConv(mid_spec, growth_spec, 3, 1, 1, octave=octave,
                                    ref_name=ref_name + '_conv2')

    def hybrid_forward(self, F, x_high, x_low=None):
        return safe_oct_concat(F, (x_high, x_low), self.conv2(*self.conv1(x_high, x_low)))

    def ref_mapping(self, path):
        out = self.conv1.ref_mapping(path + 'conv1.')
        out.update(self.conv2.ref_mapping(path + 'conv2.'))
        return out


class Transition(HybridBlock):
    """The reference's ``Connector``: BN-ReLU-1x1 conv, then 2x2/2 average pooling (floor)
    of each part."""

    def __init__(self, in_spec, out_spec, octave=True, ref_name='', **kwargs):
        super(Transition, self).__init__(**kwargs)
        with self.name_scope():
            self.conv = PreActConv(in_spec, out_spec, 1, octave=octave,
                                   ref_name=ref_name + '_conv')

    def hybrid_forward(self, F, x_high, x_low=None):
        return tuple(None if x is None else F.Pooling(x, kernel=(2, 2), stride=(2, 2),
                                                      pool_type='avg')
                     for x in self.conv(x_high, x_low))

    def ref_mapping(self, path):
        return self.conv.ref_mapping(path + 'conv.')


# --------------------------------------------------------------------------- networks

class _SymbolNet(HybridBlock):
    """Plain stem -> named stages of pair blocks -> BN-ReLU tail -> global pool -> Dense.

    Subclasses fill ``self._blocks`` (attribute names = the reference's block names,
    e.g. ``L2_B01``) inside ``_build``; the head is shared.
    """

    def __init__(self, alpha, classes, final_drop, **kwargs):
        super(_SymbolNet, self).__init__(**kwargs)
        self.alpha = check_alpha(alpha)
        self.octave = self.alpha != PLAIN
        self._blocks = []
        self._has_low = False   # set by _add: does any block carry a low-frequency part?
        with self.name_scope():
            self.stem = ResNetStem(64, norm_kwargs=SYMBOL_BN)
            width = self._build()
            self.tail_bn = nn.BatchNorm(in_channels=width, **SYMBOL_BN)
            self.tail_act = nn.Activation('relu')
            self.pool = nn.GlobalAvgPool2D()
            self.drop = nn.Dropout(final_drop) if final_drop > 0 else None
            self.classifier = nn.Dense(classes, in_units=width)

    def _add(self, name, block, *specs):
        self._has_low = self._has_low or any(spec[1] > 0 for spec in specs)
        setattr(self, name, block)
        self._blocks.append(name)

    def _stage_alpha(self, stage):
        """Stages 2-4 use alpha; stage 5 is forced to ratio min(alpha, 0)."""
        return self.alpha if stage < 5 else min(self.alpha, 0.0)

    def forward(self, x, *args):
        """Checks the input size of NDArray calls (graph tracing passes through)."""
        shape = getattr(x, 'shape', None)
        if isinstance(shape, tuple):
            if len(shape) != 4:
                raise ValueError('expected an (N, C, H, W) batch, got shape %s' % (shape,))
            if self._has_low:
                for side in shape[2:]:
                    # stem (7x7/2) and max pool (3x3/2) give ceil(side/4); three octave
                    # stages halve it with floor pooling and the low part halves once more
                    if -(-side // 4) % 8:
                        raise ValueError(
                            'input %dx%d: an octave model needs ceil(side / 4) to be a multiple '
                            'of 8 so that the low-frequency maps stay exactly half the high ones '
                            '(e.g. 224, 256, or any multiple of 32)' % tuple(shape[2:]))
        return super(_SymbolNet, self).forward(x, *args)

    def hybrid_forward(self, F, x):
        x = (self.stem(x), None)
        for name in self._blocks:
            x = getattr(self, name)(*x)
        if x[1] is not None:  # cannot happen: stage 5 merges the low part
            raise RuntimeError('low-frequency part reached the classifier')
        x = self.pool(self.tail_act(self.tail_bn(x[0])))
        if self.drop is not None:
            x = self.drop(x)
        return self.classifier(x)

    def ref_mapping(self):
        """{our structural parameter name: reference Symbol name | ((names), fn)}."""
        out = {'stem.conv1.weight': 'conv1_conv_weight'}
        out.update(_bn_mapping('stem.bn1.', 'conv1_bn'))
        for name in self._blocks:
            out.update(getattr(self, name).ref_mapping(name + '.'))
        out.update(_bn_mapping('tail_bn.', 'tail_bn'))
        out['classifier.weight'] = 'classifier_weight'
        out['classifier.bias'] = 'classifier_bias'
        return out


class OctResNetV2Symbol(_SymbolNet):
    """Pre-activation (Oct-)ResNet / ResNeXt / SE-ResNet of the reference's Symbol API
    (``symbol_resnetv2.get_linear``); (N, 3, H, W) -> (N, classes), H and W multiples of 32.

    Parameters
    ----------
    layers : 4 ints, blocks per stage (stages are named L2..L5 as in the reference)
    alpha : float, low-frequency ratio in [0, 1), or -1 for the plain baseline
    groups : int, 3x3 conv groups (32 for ResNeXt 32x4d)
    width_scale : int, bottleneck width multiplier (the reference's ``scaler``; 2 for 32x4d)
    use_se : bool, octave SE after conv3 (``symbol_seresnetv2``)
    """

    def __init__(self, layers, alpha=0.25, groups=1, width_scale=1, use_se=False,
                 classes=1000, final_drop=0.0, **kwargs):
        if len(layers) != 4:
            raise ValueError('layers must give 4 stage depths, got %r' % (layers,))
        self._layers, self._groups = list(layers), groups
        self._width_scale, self._use_se = width_scale, use_se
        super(OctResNetV2Symbol, self).__init__(alpha, classes, final_drop, **kwargs)

    def _build(self):
        in_spec = (64, -1)
        for stage, depth in zip(range(2, 6), self._layers):
            alpha = self._stage_alpha(stage)
            scale = 2 ** (stage - 2)
            mid_spec = _split(64 * self._width_scale * scale, alpha)
            out_spec = _split(256 * scale, alpha)
            if self._groups > 1 and self.octave:
                _check_grouped(mid_spec, self._groups, 'alpha=%g, stage L%d' % (self.alpha, stage))
            for i in range(1, depth + 1):
                name = 'L%d_B%02d' % (stage, i)
                self._add(name, PreActBottleneck(
                    in_spec, mid_spec, out_spec, strides=2 if (i == 1 and stage > 2) else 1,
                    groups=self._groups, first=i == 1, use_se=self._use_se,
                    octave=self.octave, ref_name=name), mid_spec, out_spec)
                in_spec = out_spec
        return _total(in_spec)


class OctDenseNetSymbol(_SymbolNet):
    """DenseNet of the reference's Symbol API (``symbol_densenet.get_linear``):
    plain stem, the low part starts empty in dense block 1 (stage L2), transitions
    ``L3_Trans``..``L5_Trans``, stage 5 plain-width; (N, 3, H, W) -> (N, classes).

    Parameters
    ----------
    layers : 4 ints (6, 12, 24, 16 for DenseNet-121)
    growth : int, growth rate (32); bottleneck width ``4 * growth``
    alpha : float in [0, 1) with ``int(growth * alpha) >= 1``, or -1 for the plain baseline
    """

    def __init__(self, layers, alpha=0.25, growth=32, init_width=64, classes=1000,
                 final_drop=0.0, **kwargs):
        if len(layers) != 4:
            raise ValueError('layers must give 4 stage depths, got %r' % (layers,))
        self._layers, self._growth, self._init = list(layers), growth, init_width
        alpha = check_alpha(alpha)
        if alpha != PLAIN and int(growth * alpha) < 1:
            raise ValueError(
                'DenseNet needs int(%d * alpha) >= 1 (alpha >= 1/%d): each dense layer must grow '
                'the low part, which starts empty; alpha=%g grows no low channels (the reference '
                'fails to build it; use alpha=-1 for the plain DenseNet)' % (growth, growth, alpha))
        super(OctDenseNetSymbol, self).__init__(alpha, classes, final_drop, **kwargs)

    def _build(self):
        spec, width = (self._init, -1), self._init
        for stage, depth in zip(range(2, 6), self._layers):
            alpha = self._stage_alpha(stage)
            if stage > 2:
                width = width // 2
                out_spec = _split(width, alpha)
                self._add('L%d_Trans' % stage, Transition(
                    spec, out_spec, octave=self.octave, ref_name='L%d_Trans' % stage), out_spec)
                spec = out_spec
            mid_spec, growth_spec = _split(4 * self._growth, alpha), _split(self._growth, alpha)
            for i in range(1, depth + 1):
                name = 'L%d_B%02d' % (stage, i)
                self._add(name, DenseLayer(spec, mid_spec, growth_spec, octave=self.octave,
                                           ref_name=name), mid_spec, growth_spec)
                spec = tuple(a + b if a > 0 and b > 0 else max(a, b)
                             for a, b in zip(spec, growth_spec))
                width += self._growth
        return _total(spec)


# --------------------------------------------------------------------------- registry

#: evaluation recipe of the reference's Symbol API, ``utils/symbol/score.py``:
#: ``ImageRecordIter(resize=256, data_shape=(3, 224, 224), rand_crop=False,
#: inter_method=2)`` (short side 256 by bicubic, centre crop 224) with ``--rgb-mean``
#: 124,117,104 subtracted and one ``scale=0.0167`` for every channel (std 1 / 0.0167 on
#: the 0-255 scale); here on the 0-1 scale
SYMBOL_API_DATA_CONFIG = dict(input_size=(3, 224, 224), crop_ratio=224 / 256,
                              interpolation='bicubic',
                              mean=(124 / 255, 117 / 255, 104 / 255),
                              std=(1 / (0.0167 * 255),) * 3)

# what every Symbol-API entry overrides in the family's declaration
_SYMBOL_API = dict(paper=_PAPER, data_config=SYMBOL_API_DATA_CONFIG, classifier='classifier')

# Every model maps (N, 3, H, W), H and W multiples of 32, to (N, classes) logits.
# ``alpha``: the reference's ratio, in [0, 1), or -1 (PLAIN) for the plain baseline.


@register_model('octconv', reference=_REF + 'symbol_resnetv2.py', **_SYMBOL_API)
def oct_resnet26_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-26 v2: Symbol API (utils/symbol), pre-activation, ablation table."""
    return OctResNetV2Symbol(resnet_stage_blocks(26), alpha=alpha, classes=classes, **kwargs)


register_alias('oct_sym_resnet26_v2', 'oct_resnet26_v2')


@register_model('octconv', reference=_REF + 'symbol_resnetv2.py', **_SYMBOL_API)
def oct_resnet50_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-50 v2: Symbol API (utils/symbol), pre-activation, ablation table.

    Not the Gluon-API ``oct_resnet50_v2b`` (1x1-conv classifier, BN eps 1e-5)."""
    return OctResNetV2Symbol(resnet_stage_blocks(50), alpha=alpha, classes=classes, **kwargs)


register_alias('oct_sym_resnet50_v2', 'oct_resnet50_v2')


@register_model('octconv', reference=_REF + 'symbol_resnetv2.py', **_SYMBOL_API)
def oct_resnet101_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-101 v2: Symbol API (utils/symbol), pre-activation, ablation table.

    Not the Gluon-API ``oct_resnet101_v2b`` (1x1-conv classifier, BN eps 1e-5)."""
    return OctResNetV2Symbol(resnet_stage_blocks(101), alpha=alpha, classes=classes, **kwargs)


register_alias('oct_sym_resnet101_v2', 'oct_resnet101_v2')


@register_model('octconv', reference=_REF + 'symbol_resnetv2.py', slow=True, **_SYMBOL_API)
def oct_resnet152_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-152 v2: Symbol API (utils/symbol), pre-activation.

    A depth of the reference's builder that the README's ablation table leaves out. Not
    the Gluon-API ``oct_resnet152_v2b`` (1x1-conv classifier, BN eps 1e-5)."""
    return OctResNetV2Symbol(resnet_stage_blocks(152), alpha=alpha, classes=classes, **kwargs)


register_alias('oct_sym_resnet152_v2', 'oct_resnet152_v2')


@register_model('octconv', reference=_REF + 'symbol_resnetv2.py', slow=True, **_SYMBOL_API)
def oct_resnet200_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNet-200 v2: Symbol API (utils/symbol), pre-activation, ablation table."""
    return OctResNetV2Symbol(resnet_stage_blocks(200), alpha=alpha, classes=classes, **kwargs)


register_alias('oct_sym_resnet200_v2', 'oct_resnet200_v2')


@register_model('octconv', reference=_REF + 'symbol_seresnetv2.py', **_SYMBOL_API)
def oct_se_resnet50_v2(classes=1000, alpha=0.25, use_se=True, **kwargs):
    """Oct-SE-ResNet-50 v2: Symbol API (utils/symbol), pre-activation, ablation table.

    ``use_se`` is a keyword (default on) so that the trainer's ``--use-se`` applies."""
    return OctResNetV2Symbol(resnet_stage_blocks(50), alpha=alpha, use_se=use_se,
                             classes=classes, **kwargs)


register_alias('oct_sym_se_resnet50_v2', 'oct_se_resnet50_v2')


@register_model('octconv', reference=_REF + 'symbol_resnextv2_32x4d.py', **_SYMBOL_API)
def oct_resnext50_32x4d_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNeXt-50 32x4d v2: Symbol API (utils/symbol), pre-activation, ablation table.

    Not the Gluon-API ``oct_resnext50_32x4d_v2b``."""
    return OctResNetV2Symbol(resnet_stage_blocks(50), alpha=alpha, groups=32, width_scale=2,
                             classes=classes, **kwargs)


register_alias('oct_sym_resnext50_32x4d_v2', 'oct_resnext50_32x4d_v2')


@register_model('octconv', reference=_REF + 'symbol_resnextv2_32x4d.py', **_SYMBOL_API)
def oct_resnext101_32x4d_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-ResNeXt-101 32x4d v2: Symbol API (utils/symbol), pre-activation, ablation table.

    Not the Gluon-API ``oct_resnext101_32x4d_v2b``."""
    return OctResNetV2Symbol(resnet_stage_blocks(101), alpha=alpha, groups=32, width_scale=2,
                             classes=classes, **kwargs)


register_alias('oct_sym_resnext101_32x4d_v2', 'oct_resnext101_32x4d_v2')


@register_model('octconv', reference=_REF + 'symbol_densenet.py', **_SYMBOL_API)
def oct_densenet121_v2(classes=1000, alpha=0.25, **kwargs):
    """Oct-DenseNet-121 v2: Symbol API (utils/symbol), pre-activation, ablation table.

    Plain stem, low part grown from dense block 1; ``alpha`` needs ``int(32 * alpha) >= 1``.
    Not the Gluon-API ``oct_densenet121`` (octave stem conv)."""
    return OctDenseNetSymbol((6, 12, 24, 16), alpha=alpha, classes=classes, **kwargs)


register_alias('oct_sym_densenet121_v2', 'oct_densenet121_v2')

#: registry names of this module's models (the Symbol-API converter below serves them;
#: their ``oct_sym_*`` aliases resolve to these)
SYMBOL_MODELS = tuple(fn.__name__ for fn in (
    oct_resnet26_v2, oct_resnet50_v2, oct_resnet101_v2, oct_resnet152_v2, oct_resnet200_v2,
    oct_se_resnet50_v2, oct_resnext50_32x4d_v2, oct_resnext101_32x4d_v2, oct_densenet121_v2))


# --------------------------------------------------------------------------- conversion

def reference_mapping(net):
    """{our structural parameter name: reference Symbol name | ((names...), fn)} of a
    model built here (octave or plain baseline)."""
    return net.ref_mapping()


def strip_symbol_prefixes(state_dict):
    """``{'arg:name': a, 'aux:name': b}`` (an MXNet Symbol checkpoint) -> ``{name: ...}``.

    Keys without a prefix pass through. Raises ``ConversionError`` when a name appears
    twice (as ``arg:`` and ``aux:``, or with and without a prefix).
    """
    out = {}
    for key, value in state_dict.items():
        name = key[4:] if key.startswith(('arg:', 'aux:')) else key
        if name in out:
            raise ConversionError('checkpoint holds %r twice (arg:/aux:/unprefixed)' % name)
        out[name] = value
    return out


def load_symbol_checkpoint(prefix, epoch):
    """Read an MXNet Symbol checkpoint (what ``mx.model.save_checkpoint`` writes and the
    reference's ``score.py`` loads): ``<prefix>-NNNN.params`` with ``arg:``/``aux:`` keys,
    checked against ``<prefix>-symbol.json`` when that file exists.

    Returns
    -------
    {reference parameter name: numpy array}, prefixes stripped, ready for
    ``convert_state_dict(name, state_dict, alpha=...)``.

    Raises
    ------
    FileNotFoundError if the .params file is absent; ConversionError if the file is not an
    MXNet parameter file, or if the graph declares parameters that the .params file lacks.
    """
    params_path = '%s-%04d.params' % (prefix, int(epoch))
    raw = read_mxnet_params(params_path)
    if not any(k.startswith(('arg:', 'aux:')) for k in raw):
        raise ConversionError('%s has no arg:/aux: keys: not a Symbol checkpoint (for a '
                              'save_parameters file use gluon_nets.convert.load_checkpoint)'
                              % params_path)
    state_dict = strip_symbol_prefixes(raw)
    symbol_path = '%s-symbol.json' % prefix
    if os.path.isfile(symbol_path):
        try:
            with open(symbol_path) as f:
                nodes = json.load(f)['nodes']
        except (ValueError, KeyError, TypeError) as err:
            raise ConversionError('cannot read %s as an MXNet symbol file: %s'
                                  % (symbol_path, err)) from None
        declared = {n['name'] for n in nodes if n.get('op') == 'null'}
        declared -= {'data', 'softmax_label'}
        missing = sorted(declared - set(state_dict))
        if missing:
            raise ConversionError('%s declares %d parameter(s) that %s lacks: %s'
                                  % (symbol_path, len(missing), params_path,
                                     ', '.join(missing[:10])))
    return state_dict


@register_converter('octconv', models=SYMBOL_MODELS)
def _convert_symbol(name, state_dict, **kwargs):
    """Reference Symbol names (optionally ``arg:``/``aux:``-prefixed) -> our model."""
    originals = {}
    for key in state_dict:
        originals[key[4:] if key.startswith(('arg:', 'aux:')) else key] = key
    octave_keys = any('-h2h_' in k for k in originals)
    net = get_model(name, **kwargs)
    if originals and octave_keys != net.octave:
        raise ConversionError(
            'the checkpoint is %s but %s was built with alpha=%g; %s'
            % ('an octave model' if octave_keys else 'a plain baseline (no -h2h names)', name,
               net.alpha, 'pass its alpha (>= 0)' if octave_keys else 'pass alpha=-1'))

    def original(ref):
        if isinstance(ref, tuple):
            keys, fn = ref
            return tuple(originals.get(k, k) for k in keys), fn
        return originals.get(ref, ref)
    mapping = {ours: original(ref) for ours, ref in net.ref_mapping().items()}
    return ConversionPlan(net, mapping)
