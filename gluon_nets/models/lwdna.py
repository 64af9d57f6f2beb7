"""LW-DNA: layer-wise differentiated ResNets found by the Heterogeneity Hypothesis.

Paper: Li et al., "The Heterogeneity Hypothesis: Finding Layer-Wise Differentiated
Network Architectures", CVPR 2021 (arXiv 2006.16242); reference code
ofsoundof/Heterogeneity_Hypothesis (PyTorch).

Two kinds of networks and the method that links them:

``lwdna_resnet{18,34,50,101,152}``
    A torchvision-layout ResNet (v1.5: the stride sits on the 3x3 conv; a strided 1x1
    conv + BN projection starts each stage) whose every width comes from ``config``::

        {'stem': 64,                                   # conv1 width
         'blocks': [[[64, 64], [64, 64], [64, 64]],    # per stage, per block: the widths of
                    ...],                              #   conv1, conv2 ([conv1] for basic blocks)
         'stage_out': [256, 512, 1024, 2048]}          # conv3 / downsample width of each stage

    ``stage_out[3]`` is the classifier's input. The default config is the plain ResNet.
``hh_resnet{18,34,50,101,152}``
    The search-stage network (``width_mult``, ``embedding_dim``, ``kernel_size``): no conv
    stores a kernel; each one generates it on every forward from a small hypernetwork fed
    by per-channel latent vectors (:class:`HyperConv`).
:func:`search` and :func:`shrink`
    The reference's README recipe: two SGD warm-up iterations on a quarter of the batch,
    then channel masks from |latent vector| under a FLOPs budget found by the reference's
    threshold binary search, and a ``lwdna_resnet`` carrying the sliced generated kernels.

The converter (``gluon_nets.convert``) reads torchvision-named LW-DNA checkpoints, the
released checkpoint's positional layout (widths inferred from the shapes, see
:func:`config_from_state_dict`) and the reference's search-stage state_dicts.
"""
import json
import math
import os
import time
import warnings

import numpy as np
import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..convert import ConversionError, ConversionPlan, register_converter
from ..model_zoo import register_model
from ..nn import BasicBlock, Bottleneck, ResNetStem, batch_norm, conv_bn_downsample

__all__ = ['LWDNAResNet', 'HHResNet', 'HyperConv', 'default_config', 'validate_config',
           'config_macs', 'config_from_state_dict', 'hh_reference_names', 'pad_widths',
           'shrink', 'search',
           'STAGE_BLOCKS',
           'lwdna_resnet18', 'lwdna_resnet34', 'lwdna_resnet50', 'lwdna_resnet101',
           'lwdna_resnet152', 'hh_resnet18', 'hh_resnet34', 'hh_resnet50', 'hh_resnet101',
           'hh_resnet152']

PAPER = ('The Heterogeneity Hypothesis: Finding Layer-Wise Differentiated Network Architectures '
         '(CVPR 2021)')
REFERENCE = ('ofsoundof/Heterogeneity_Hypothesis@ea7efc92761e9c563e1810e8592780e3f459701c:'
             'model_dhp/resnet_imagenet_dhp.py')
REFERENCE_EVAL = ('ofsoundof/Heterogeneity_Hypothesis@ea7efc92761e9c563e1810e8592780e3f459701c:'
                  'model/resnet_imagenet.py')

#: blocks per stage of each depth (18/34: basic blocks, 50+: bottlenecks)
STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _bottleneck(depth):
    return depth >= 50


def _check_depth(depth):
    if depth not in STAGE_BLOCKS:
        raise ValueError('depth must be one of %s, got %r' % (sorted(STAGE_BLOCKS), depth))


# ---------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------

def default_config(depth, width_mult=1.0):
    """The plain ResNet-``depth`` widths times ``width_mult`` (floored as the reference
    does: ``int(64 * 2**s * width_mult)`` per stage), in the config format."""
    _check_depth(depth)
    expansion = 4 if _bottleneck(depth) else 1
    blocks, stage_out = [], []
    for stage, count in enumerate(STAGE_BLOCKS[depth]):
        planes = int(64 * 2 ** stage * width_mult)
        blocks.append([[planes, planes] if expansion == 4 else [planes] for _ in range(count)])
        stage_out.append(planes * expansion)
    return {'stem': int(64 * width_mult), 'blocks': blocks, 'stage_out': stage_out}


def _width(value, where):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError('config %s must be an integer width, got %r' % (where, value))
    if value <= 0:
        raise ValueError('config %s must be a positive width, got %d' % (where, value))
    return int(value)


def validate_config(config, depth):
    """Check a width config for ResNet-``depth`` and return it normalised (plain ints,
    ``[conv1]`` lists for basic blocks); ``None`` gives :func:`default_config`.

    ``config`` may also be the path of a JSON file holding it. Raises ``ValueError``
    naming the first constraint that fails (wrong number of stages or blocks, a width
    that is not a positive integer, a basic-block stem that differs from stage 1's width).
    """
    _check_depth(depth)
    if config is None:
        return default_config(depth)
    if isinstance(config, str):
        if not os.path.isfile(config):
            raise ValueError('config %r is neither a dict nor an existing JSON file' % config)
        with open(config) as f:
            config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError('config must be a dict with keys stem, blocks, stage_out; got %s'
                         % type(config).__name__)
    missing = {'stem', 'blocks', 'stage_out'} - set(config)
    if missing:
        raise ValueError('config lacks %s (needs stem, blocks, stage_out)'
                         % ', '.join(sorted(missing)))
    extra = set(config) - {'stem', 'blocks', 'stage_out'}
    if extra:
        raise ValueError('config has unknown keys %s (allowed: stem, blocks, stage_out)'
                         % ', '.join(sorted(extra)))
    bottleneck = _bottleneck(depth)
    per_block = 2 if bottleneck else 1
    counts = STAGE_BLOCKS[depth]
    stem = _width(config['stem'], 'stem')
    stage_out, blocks = config['stage_out'], config['blocks']
    if not isinstance(stage_out, (list, tuple)) or len(stage_out) != 4:
        raise ValueError('config stage_out must list 4 stage widths, got %r' % (stage_out,))
    stage_out = [_width(w, 'stage_out[%d]' % s) for s, w in enumerate(stage_out)]
    if not isinstance(blocks, (list, tuple)) or len(blocks) != 4:
        raise ValueError('config blocks must hold 4 stages, got %d'
                         % (len(blocks) if isinstance(blocks, (list, tuple)) else 0))
    out_blocks = []
    for s, stage in enumerate(blocks):
        if not isinstance(stage, (list, tuple)) or len(stage) != counts[s]:
            raise ValueError('config blocks[%d] must hold %d blocks for ResNet-%d, got %s'
                             % (s, counts[s], depth,
                                len(stage) if isinstance(stage, (list, tuple)) else repr(stage)))
        out_stage = []
        for b, widths in enumerate(stage):
            if not bottleneck and not isinstance(widths, (list, tuple)):
                widths = [widths]
            if not isinstance(widths, (list, tuple)) or len(widths) != per_block:
                raise ValueError('config blocks[%d][%d] must be %s for ResNet-%d, got %r'
                                 % (s, b, '[conv1, conv2] widths' if bottleneck
                                    else '[conv1] width', depth, widths))
            out_stage.append([_width(w, 'blocks[%d][%d][%d]' % (s, b, i))
                              for i, w in enumerate(widths)])
        out_blocks.append(out_stage)
    if not bottleneck and stem != stage_out[0]:
        raise ValueError('config stem (%d) must equal stage_out[0] (%d) for ResNet-%d: the first '
                         'stage of basic blocks adds the stem output without a projection'
                         % (stem, stage_out[0], depth))
    return {'stem': stem, 'blocks': out_blocks, 'stage_out': stage_out}


def _conv_out(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def config_macs(config, depth, classes=1000, input_size=224, kernel_size=3):
    """Multiply-accumulates per image of the convs and the classifier of a ResNet-``depth``
    with widths ``config`` at a square ``input_size`` (BN, ReLU and pooling not counted: the
    reference's FLOPs definition, identical to :func:`gluon_nets.profile.count_macs`)."""
    cfg = validate_config(config, depth)
    size = _conv_out(input_size, 7, 2, 3)
    macs = cfg['stem'] * 3 * 49 * size * size
    size = _conv_out(size, 3, 2, 1)                 # max pool
    in_ch = cfg['stem']
    k2 = kernel_size * kernel_size
    for s, stage in enumerate(cfg['blocks']):
        out = cfg['stage_out'][s]
        for b, widths in enumerate(stage):
            stride = 2 if (s > 0 and b == 0) else 1
            new = _conv_out(size, kernel_size, stride, kernel_size // 2)
            if len(widths) == 2:
                c1, c2 = widths
                macs += in_ch * c1 * size * size + c1 * c2 * k2 * new * new + c2 * out * new * new
                if b == 0:
                    macs += in_ch * out * new * new
            else:
                c1 = widths[0]
                macs += in_ch * c1 * k2 * new * new + c1 * out * k2 * new * new
                if b == 0 and s > 0:
                    macs += in_ch * out * new * new
            size, in_ch = new, out
    return macs + in_ch * classes


# ---------------------------------------------------------------------------------------
# LW-DNA: a ResNet with free widths
# ---------------------------------------------------------------------------------------

class LWDNAResNet(HybridBlock):
    """torchvision-layout ResNet-``depth`` with every width from ``config``.

    (N, 3, H, W) -> (N, classes). Children: ``stem`` (:class:`ResNetStem`), ``layer1`` ..
    ``layer4`` (:class:`Bottleneck` / :class:`BasicBlock`, each stage opened by a strided
    1x1 conv + BN projection ``downsample``; bottleneck stages always have one, as in
    torchvision and in the reference's shrunk network), ``pool``, ``fc``.
    """

    def __init__(self, depth, config=None, classes=1000, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.config = validate_config(config, depth)
        cfg = self.config
        bottleneck = _bottleneck(depth)
        with self.name_scope():
            self.stem = ResNetStem(cfg['stem'], norm_kwargs=norm_kwargs)
            in_ch = cfg['stem']
            for s, stage in enumerate(cfg['blocks']):
                layer = nn.HybridSequential(prefix='layer%d_' % (s + 1))
                out = cfg['stage_out'][s]
                with layer.name_scope():
                    for b, widths in enumerate(stage):
                        strides = 2 if (s > 0 and b == 0) else 1
                        if bottleneck:
                            down = (conv_bn_downsample(in_ch, out, strides, norm_kwargs)
                                    if b == 0 else None)
                            layer.add(Bottleneck(in_ch, widths[0], widths[1], out, strides=strides,
                                                 downsample=down, norm_kwargs=norm_kwargs))
                        else:
                            down = (conv_bn_downsample(in_ch, out, strides, norm_kwargs)
                                    if (b == 0 and s > 0) else None)
                            layer.add(BasicBlock(in_ch, widths[0], out, strides=strides,
                                                 downsample=down, norm_kwargs=norm_kwargs))
                        in_ch = out
                setattr(self, 'layer%d' % (s + 1), layer)
            self.pool = nn.GlobalAvgPool2D()
            self.fc = nn.Dense(classes, in_units=in_ch)

    def hybrid_forward(self, F, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(x))


def _lwdna(depth, classes, config, **kwargs):
    return LWDNAResNet(depth, config=config, classes=classes, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE_EVAL, params=11689512,
                macs=1814073344)
def lwdna_resnet18(classes=1000, config=None, **kwargs):
    """LW-DNA ResNet-18 (basic blocks): widths from ``config`` (default: plain ResNet-18)."""
    return _lwdna(18, classes, config, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE_EVAL, params=21797672,
                macs=3663761408)
def lwdna_resnet34(classes=1000, config=None, **kwargs):
    """LW-DNA ResNet-34 (basic blocks): widths from ``config`` (default: plain ResNet-34)."""
    return _lwdna(34, classes, config, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE_EVAL, params=25557032,
                macs=4089184256)
def lwdna_resnet50(classes=1000, config=None, **kwargs):
    """LW-DNA ResNet-50 (bottlenecks): widths from ``config`` (default: plain ResNet-50)."""
    return _lwdna(50, classes, config, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE_EVAL, params=44549160,
                macs=7801405440)
def lwdna_resnet101(classes=1000, config=None, **kwargs):
    """LW-DNA ResNet-101 (bottlenecks): widths from ``config`` (default: plain ResNet-101)."""
    return _lwdna(101, classes, config, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE_EVAL, params=60192808,
                macs=11513626624, slow=True)
def lwdna_resnet152(classes=1000, config=None, **kwargs):
    """LW-DNA ResNet-152 (bottlenecks): widths from ``config`` (default: plain ResNet-152)."""
    return _lwdna(152, classes, config, **kwargs)


def pad_widths(net, multiple=8, ctx=None):
    """An :class:`LWDNAResNet` computing exactly what ``net`` computes, with every width
    rounded up to a multiple of ``multiple`` (padding: zero kernels, BN gamma = beta = mean
    = 0 and var = 1, zero classifier columns, so every padded channel stays 0).

    Why: oneDNN (MXNet's CPU backend) runs its direct convolution kernels only when the
    output channels are a multiple of 8 (16 for the AVX-512 kernels); the irregular widths
    that :func:`shrink` finds (65, 57, 983, ...) fall back to im2col + GEMM, about twice as
    slow per MAC. Padding costs a few percent more MACs (3.71 -> 3.88 G for the golden
    ResNet-50 config at ``multiple=8``). ``net`` must be initialised; returns an
    initialised net on ``ctx`` (default: ``net``'s context).
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
    out = LWDNAResNet(net.depth, config=padded, classes=net.fc._units)
    for name, param in out._collect_params_with_prefix().items():
        old = source[name].data().asnumpy()
        value = np.ones(param.shape, np.float32) if name.endswith('running_var') else \
            np.zeros(param.shape, np.float32)
        value[tuple(slice(0, n) for n in old.shape)] = old
        param._load_init(mx.nd.array(value), ctx)
    return out


# ---------------------------------------------------------------------------------------
# HH: the search-stage network with hypernetwork-generated kernels
# ---------------------------------------------------------------------------------------

def _generate_kernel(F, z_in, z_out, weight1, weight2, bias0, bias1, bias2, shape):
    """Hypernetwork of one conv. ``shape`` = (I, O, k, e); z_in (I,), z_out (O,).

    E[i,o,:] = (z_in[i] z_out[o] + bias0[i,o]) weight1[i,o,:] + bias1[i,o,:]     (I, O, e)
    K[i,o,:] = weight2[i,o,:,:] @ E[i,o,:] + bias2[i,o,:]                         (I, O, k*k)
    returns K as a conv kernel (O, I, k, k).
    """
    cin, cout, k, _ = shape
    outer = F.broadcast_mul(F.reshape(z_in, (cin, 1)), F.reshape(z_out, (1, cout))) + bias0
    emb = F.broadcast_mul(F.expand_dims(outer, axis=2), weight1) + bias1
    # with e = 2 (README) an elementwise product + sum beats cin*cout tiny batch_dots
    kernel = F.sum(F.broadcast_mul(weight2, F.expand_dims(emb, axis=2)), axis=3) + bias2
    return F.transpose(F.reshape(kernel, (cin, cout, k, k)), axes=(1, 0, 2, 3))


def _generate_kernel_np(z_in, z_out, weight1, weight2, bias0, bias1, bias2, k):
    """NumPy (float32) twin of :func:`_generate_kernel` for already-sliced arrays."""
    outer = np.outer(z_in, z_out).astype(np.float32) + bias0
    emb = outer[..., None] * weight1 + bias1
    kernel = np.matmul(weight2, emb[..., None])[..., 0] + bias2
    cin, cout = outer.shape
    return np.ascontiguousarray(kernel.reshape(cin, cout, k, k).transpose(1, 0, 2, 3))


class HyperConv(HybridBlock):
    """Conv whose kernel a hypernetwork generates on every forward, then BN [-> ReLU].

    ``forward(x, z_in[, z_out]) -> (y, z_out)``: x (N, in, H, W), z_in (in,) the latent
    vector of the layer that feeds this one, z_out (out,) this layer's latent vector:
    its own parameter ``latent_vector`` when ``own_latent``, else given by the caller (a
    vector shared across a ResNet stage). y is (N, out, H/strides, W/strides); z_out is
    passed on so that the next conv can use it as its z_in.

    Parameters (reference names and initialisation): latent_vector ~ N(0, 1);
    weight1 (in, out, e) ~ U(+-sqrt 3); weight2 (in, out, k*k, e) ~ U(+-sqrt(3/(e in k^2)))
    ("hyperfan-in"); bias0 (in, out), bias1 (in, out, e), bias2 (in, out, k*k) zeros;
    ``bn_main`` (eps 1e-5).
    """

    def __init__(self, in_channels, channels, kernel_size, strides=1, embedding_dim=2,
                 act=True, own_latent=True, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.channels = in_channels, channels
        self.kernel_size, self.strides, self.embedding_dim = kernel_size, strides, embedding_dim
        self.own_latent = own_latent
        k2, e = kernel_size * kernel_size, embedding_dim
        with self.name_scope():
            if own_latent:
                self.latent_vector = self.params.get('latent_vector', shape=(channels,),
                                                     init=mx.init.Normal(1.0))
            self.weight1 = self.params.get('weight1', shape=(in_channels, channels, e),
                                           init=mx.init.Uniform(math.sqrt(3.0)))
            self.weight2 = self.params.get(
                'weight2', shape=(in_channels, channels, k2, e),
                init=mx.init.Uniform(math.sqrt(3.0 / (e * in_channels * k2))))
            self.bias0 = self.params.get('bias0', shape=(in_channels, channels), init='zeros')
            self.bias1 = self.params.get('bias1', shape=(in_channels, channels, e), init='zeros')
            self.bias2 = self.params.get('bias2', shape=(in_channels, channels, k2), init='zeros')
            self.bn_main = batch_norm(channels, norm_kwargs)
            self.relu = nn.Activation('relu') if act else None

    def hybrid_forward(self, F, x, z_in, *shared, latent_vector=None, weight1=None, weight2=None,
                       bias0=None, bias1=None, bias2=None):
        z_out = latent_vector if self.own_latent else shared[0]
        k = self.kernel_size
        kernel = _generate_kernel(F, z_in, z_out, weight1, weight2, bias0, bias1, bias2,
                                  (self.in_channels, self.channels, k, self.embedding_dim))
        y = F.Convolution(x, kernel, kernel=(k, k), stride=(self.strides, self.strides),
                          pad=(k // 2, k // 2), num_filter=self.channels, no_bias=True)
        y = self.bn_main(y)
        if self.relu is not None:
            y = self.relu(y)
        return y, z_out


class HHBottleneck(HybridBlock):
    """Bottleneck of HyperConvs (stride on ``layer2``); ``layer3`` and ``downsample`` output
    the stage's shared latent vector. forward(x, z_in, z_stage) -> (N, out, H', W')."""

    def __init__(self, in_channels, planes, out_channels, kernel_size, strides, embedding_dim,
                 downsample, **kwargs):
        super().__init__(**kwargs)
        e = embedding_dim
        with self.name_scope():
            self.layer1 = HyperConv(in_channels, planes, 1, 1, e)
            self.layer2 = HyperConv(planes, planes, kernel_size, strides, e)
            self.layer3 = HyperConv(planes, out_channels, 1, 1, e, act=False, own_latent=False)
            self.downsample = (HyperConv(in_channels, out_channels, 1, strides, e, act=False,
                                         own_latent=False) if downsample else None)
            self.act_out = nn.Activation('relu')

    def hybrid_forward(self, F, x, z_in, z_stage):
        out, z1 = self.layer1(x, z_in)
        out, z2 = self.layer2(out, z1)
        out, _ = self.layer3(out, z2, z_stage)
        shortcut = self.downsample(x, z_in, z_stage)[0] if self.downsample is not None else x
        return self.act_out(out + shortcut)


class HHBasicBlock(HybridBlock):
    """Basic block of HyperConvs; ``layer2`` and ``downsample`` output the stage's shared
    latent vector. forward(x, z_in, z_stage) -> (N, out, H', W')."""

    def __init__(self, in_channels, planes, out_channels, kernel_size, strides, embedding_dim,
                 downsample, **kwargs):
        super().__init__(**kwargs)
        e = embedding_dim
        with self.name_scope():
            self.layer1 = HyperConv(in_channels, planes, kernel_size, strides, e)
            self.layer2 = HyperConv(planes, out_channels, kernel_size, 1, e, act=False,
                                    own_latent=False)
            self.downsample = (HyperConv(in_channels, out_channels, 1, strides, e, act=False,
                                         own_latent=False) if downsample else None)
            self.act_out = nn.Activation('relu')

    def hybrid_forward(self, F, x, z_in, z_stage):
        out, z1 = self.layer1(x, z_in)
        out, _ = self.layer2(out, z1, z_stage)
        shortcut = self.downsample(x, z_in, z_stage)[0] if self.downsample is not None else x
        return self.act_out(out + shortcut)


class HHResNet(HybridBlock):
    """Search-stage ResNet-``depth`` (the reference's ``ResNet_ImageNet_DHP``).

    (N, 3, H, W) -> (N, classes). Every width of ResNet-``depth`` is multiplied by
    ``width_mult``; every conv is a :class:`HyperConv`. ``latent_vector_stage0`` (3,)
    stands for the RGB input; ``latent_vector_stage1..4`` are each shared by all the
    residual-width convs of a stage (bottleneck ``layer3`` and ``downsample``; basic
    ``layer2``, ``downsample`` and, in stage 1, the stem), because the residual adds force
    one width per stage. ``features`` = [stem, max pool, blocks...] as in the reference,
    then ``classifier`` (Dense).

    ``count_macs`` of this net counts the main network only (the generated kernels'
    convolutions and the classifier), the golden files' convention: the hypernetwork is
    made of broadcast/sum operators that the counter does not count. It adds
    sum(in*out*k*k*e) MACs per forward, independent of the batch size.
    """

    def __init__(self, depth, classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        _check_depth(depth)
        if not width_mult > 0:
            raise ValueError('width_mult must be positive, got %r' % (width_mult,))
        if int(embedding_dim) != embedding_dim or embedding_dim < 1:
            raise ValueError('embedding_dim must be a positive integer, got %r' % (embedding_dim,))
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError('kernel_size must be a positive odd integer, got %r' % (kernel_size,))
        bottleneck = _bottleneck(depth)
        expansion = 4 if bottleneck else 1
        self.depth, self.classes = depth, classes
        self.width_mult, self.embedding_dim = width_mult, int(embedding_dim)
        self.kernel_size = int(kernel_size)
        self.wide_config = default_config(depth, width_mult)
        cfg = self.wide_config
        for s in range(4):
            # the reference sizes the stage vector as int(64*exp*2^s*w) and the convs as
            # int(64*2^s*w)*exp; it only runs when they agree
            vector = int(64 * expansion * 2 ** s * width_mult)
            if min(cfg['stem'], cfg['blocks'][s][0][0]) < 1 or vector != cfg['stage_out'][s]:
                raise ValueError('width_mult %r gives stage %d widths %d (convs) and %d (latent '
                                 'vector), which the reference cannot build; use a multiple of '
                                 '1/64' % (width_mult, s + 1, cfg['stage_out'][s], vector))
        e, k = self.embedding_dim, self.kernel_size
        with self.name_scope():
            self.latent_vector_stage0 = self.params.get(
                'latent_vector_stage0', shape=(3,), init=mx.init.Normal(1.0))
            for s in range(4):
                setattr(self, 'latent_vector_stage%d' % (s + 1), self.params.get(
                    'latent_vector_stage%d' % (s + 1), shape=(cfg['stage_out'][s],),
                    init=mx.init.Normal(1.0)))
            self.features = nn.HybridSequential(prefix='features_')
            with self.features.name_scope():
                # basic-block nets feed the stem straight into stage 1's residual sum
                self.features.add(HyperConv(3, cfg['stem'], 7, 2, e, own_latent=bottleneck))
                self.features.add(nn.MaxPool2D(3, 2, 1))
                in_ch = cfg['stem']
                block = HHBottleneck if bottleneck else HHBasicBlock
                for s, stage in enumerate(cfg['blocks']):
                    out = cfg['stage_out'][s]
                    for b in range(len(stage)):
                        strides = 2 if (s > 0 and b == 0) else 1
                        self.features.add(block(in_ch, stage[b][0], out, k, strides, e,
                                                downsample=(strides != 1 or in_ch != out)))
                        in_ch = out
            self.pool = nn.GlobalAvgPool2D()
            bound = 1.0 / math.sqrt(in_ch)     # torch.nn.Linear's default initialisation
            self.classifier = nn.Dense(classes, in_units=in_ch,
                                       weight_initializer=mx.init.Uniform(bound),
                                       bias_initializer=mx.init.Uniform(bound))

    def hybrid_forward(self, F, x, latent_vector_stage0, latent_vector_stage1,
                       latent_vector_stage2, latent_vector_stage3, latent_vector_stage4):
        stages = [latent_vector_stage1, latent_vector_stage2, latent_vector_stage3,
                  latent_vector_stage4]
        layers = list(self.features._children.values())
        if _bottleneck(self.depth):
            x, z = layers[0](x, latent_vector_stage0)
        else:
            x, z = layers[0](x, latent_vector_stage0, latent_vector_stage1)
        x = layers[1](x)
        index = 2
        for s, count in enumerate(STAGE_BLOCKS[self.depth]):
            for _ in range(count):
                x = layers[index](x, z, stages[s])
                z = stages[s]
                index += 1
        return self.classifier(self.pool(x))

    # -- structure used by shrink() and the converter ------------------------------------

    def latent_parameters(self):
        """[(reference key, Parameter)] of every distinct latent vector, in the reference's
        ``gather_latent_vector`` order: stage0..4, the stem's (bottleneck nets), then each
        block's layer1 (and layer2) vectors."""
        out = [('latent_vector_stage%d' % s, getattr(self, 'latent_vector_stage%d' % s))
               for s in range(5)]
        for name, conv in self._hyper_convs():
            if conv.own_latent:
                out.append((name + '.latent_vector', conv.latent_vector))
        return out

    def _hyper_convs(self):
        """[(reference prefix, HyperConv)] in state_dict order."""
        out = []
        for i, child in enumerate(self.features._children.values()):
            if isinstance(child, HyperConv):
                out.append(('features.%d' % i, child))
            elif isinstance(child, (HHBottleneck, HHBasicBlock)):
                for attr in ('layer1', 'layer2', 'layer3', 'downsample'):
                    conv = getattr(child, attr, None)
                    if conv is not None:
                        out.append(('features.%d.%s' % (i, attr), conv))
        return out

    def conv_plan(self):
        """[(HyperConv, in vector index, out vector index, lwdna conv name, lwdna BN name)]
        with indices into :meth:`latent_parameters`: how each conv maps onto the
        :class:`LWDNAResNet` that :func:`shrink` builds."""
        bottleneck = _bottleneck(self.depth)
        layers = list(self.features._children.values())
        plan = [(layers[0], 0, 5 if bottleneck else 1, 'stem.conv1', 'stem.bn1')]
        current = plan[0][2]
        own = 5 + (1 if bottleneck else 0)       # next unused own-vector index
        index = 2
        for s, count in enumerate(STAGE_BLOCKS[self.depth]):
            for b in range(count):
                blk, pre = layers[index], 'layer%d.%d.' % (s + 1, b)
                if bottleneck:
                    plan += [(blk.layer1, current, own, pre + 'conv1', pre + 'bn1'),
                             (blk.layer2, own, own + 1, pre + 'conv2', pre + 'bn2'),
                             (blk.layer3, own + 1, s + 1, pre + 'conv3', pre + 'bn3')]
                    own += 2
                else:
                    plan += [(blk.layer1, current, own, pre + 'conv1', pre + 'bn1'),
                             (blk.layer2, own, s + 1, pre + 'conv2', pre + 'bn2')]
                    own += 1
                if blk.downsample is not None:
                    plan.append((blk.downsample, current, s + 1, pre + 'downsample.0',
                                 pre + 'downsample.1'))
                current = s + 1
                index += 1
        return plan


def _hh(depth, classes, width_mult, embedding_dim, kernel_size, **kwargs):
    return HHResNet(depth, classes=classes, width_mult=width_mult, embedding_dim=embedding_dim,
                    kernel_size=kernel_size, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE, params=40990379, macs=1814073344)
def hh_resnet18(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, **kwargs):
    """HH search-stage ResNet-18 (hypernetwork kernels); README recipe: width_mult=2."""
    return _hh(18, classes, width_mult, embedding_dim, kernel_size, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE, params=76913387, macs=3663761408,
                slow=True)
def hh_resnet34(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, **kwargs):
    """HH search-stage ResNet-34 (hypernetwork kernels); README recipe: width_mult=2."""
    return _hh(34, classes, width_mult, embedding_dim, kernel_size, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE, params=139407915, macs=4089184256,
                slow=True)
def hh_resnet50(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, **kwargs):
    """HH search-stage ResNet-50 (hypernetwork kernels); README recipe: width_mult=2."""
    return _hh(50, classes, width_mult, embedding_dim, kernel_size, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE, params=246423595, macs=7801405440,
                slow=True)
def hh_resnet101(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, **kwargs):
    """HH search-stage ResNet-101 (hypernetwork kernels); README recipe: width_mult=2."""
    return _hh(101, classes, width_mult, embedding_dim, kernel_size, **kwargs)


@register_model('lwdna', paper=PAPER, reference=REFERENCE, params=334557739, macs=11513626624,
                slow=True)
def hh_resnet152(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, **kwargs):
    """HH search-stage ResNet-152 (hypernetwork kernels); README recipe: width_mult=2."""
    return _hh(152, classes, width_mult, embedding_dim, kernel_size, **kwargs)


# ---------------------------------------------------------------------------------------
# The method: masks, threshold search, shrink, warm-up search
# ---------------------------------------------------------------------------------------

def _masks(vectors, threshold, remain_percentage, linear_percentage):
    """Channel masks of the reference: for every latent vector v but the first (the RGB
    input, always kept) keep |v| >= min(threshold, k-th largest |v|) with
    k = max(int(len(v) * remain_percentage), 1), or int(len(v) * linear_percentage) for
    the classifier's input (vector 4). Comparisons in float32 like the reference's."""
    masks = []
    for i, v in enumerate(vectors):
        if i == 0:
            masks.append(np.ones(v.shape, dtype=bool))
            continue
        keep = (int(v.shape[0] * linear_percentage) if i == 4
                else max(int(v.shape[0] * remain_percentage), 1))
        if keep < 1:
            raise ValueError('linear_percentage %r keeps no channel of a %d-wide classifier input'
                             % (linear_percentage, v.shape[0]))
        magnitude = np.abs(v).astype(np.float32)
        kth = np.sort(magnitude)[::-1][keep - 1]
        masks.append(magnitude >= min(np.float32(threshold), kth))
    return masks


def _config_of_masks(masks, depth):
    counts = [int(m.sum()) for m in masks]
    bottleneck = _bottleneck(depth)
    blocks, own = [], 6 if bottleneck else 5
    for count in STAGE_BLOCKS[depth]:
        stage = []
        for _ in range(count):
            if bottleneck:
                stage.append([counts[own], counts[own + 1]])
                own += 2
            else:
                stage.append([counts[own]])
                own += 1
        blocks.append(stage)
    return {'stem': counts[5] if bottleneck else counts[1], 'blocks': blocks,
            'stage_out': counts[1:5]}


def _binary_search(macs_of, target, threshold=5e-3, step=0.01, stop=0.001, max_iter=100):
    """The reference's threshold search (main_hh_grad.binary_search): move the threshold
    by ``step`` towards the target FLOPs ratio, halving the step whenever the ratio
    crosses the target; stop within ``stop`` or after ``max_iter`` evaluations. Returns
    (threshold, iterations). ``macs_of(threshold)`` is the ratio at a threshold."""
    status, counter = 1.0, 1
    while abs(status - target) > stop and counter <= max_iter:
        status_old = status
        status = macs_of(threshold)
        if abs(status - target) > stop:
            crossed = False if counter == 1 else (status_old >= target) == (status < target)
            if crossed:
                step /= 2
            if status > target:
                threshold += step
            elif status < target:
                threshold = max(threshold - step, 0)
            counter += 1
            if threshold < 0 or status <= 0:
                break
    return threshold, counter


def _param_numpy(param):
    return param.data(param.list_ctx()[0]).asnumpy()


def shrink(hh_net, target_flops_ratio=0.23, remain_percentage=0.4, linear_percentage=0.45,
           prune_threshold=5e-3, input_size=224, ctx=None):
    """Turn a search-stage :class:`HHResNet` into the LW-DNA network, as the reference does
    after its warm-up (binary_search + reset_after_searching).

    1. Latent vectors in the reference's order; masks keep |v| >= min(t, k-th largest |v|)
       (k: ``remain_percentage`` of each vector, ``linear_percentage`` of the classifier
       input; the RGB vector is kept whole).
    2. The threshold t comes from the reference's binary search (start ``prune_threshold``,
       step 0.01, tolerance 0.001, 100 iterations) on conv + classifier MACs at
       ``input_size`` (224: the reference's ImageNet setting) relative to the wide net.
    3. Each conv's kernel is generated by its hypernetwork for the kept (in, out) pairs
       only; BN parameters and statistics are sliced by the output mask, the classifier's
       weight columns by the last stage's mask (its bias is kept).

    Parameters
    ----------
    hh_net : HHResNet, initialised (kernel_size 3: the LW-DNA nets use 3x3 convs)
    ctx : mx.Context, optional; default: the context of ``hh_net``'s parameters

    Returns
    -------
    (lwdna_net, report): an initialised :class:`LWDNAResNet` (same depth and classes) and a
    dict with ``prune_threshold``, ``flops_ratio``, ``config`` (golden format),
    ``kept_per_latent_vector``, ``macs`` / ``wide_macs`` (at ``input_size``),
    ``search_iterations``, ``target_reached`` (within the search's 0.001 tolerance; a
    warning is issued otherwise), ``model`` (registry name of the result) and the inputs.
    """
    if not isinstance(hh_net, HHResNet):
        raise TypeError('shrink expects an HHResNet (hh_resnet*), got %s' % type(hh_net).__name__)
    if hh_net.kernel_size != 3:
        raise ValueError('shrink builds torchvision-layout ResNets with 3x3 convs; this net '
                         'generates %dx%d kernels' % (hh_net.kernel_size, hh_net.kernel_size))
    if not 0 < target_flops_ratio <= 1:
        raise ValueError('target_flops_ratio must be in (0, 1], got %r' % (target_flops_ratio,))
    if not (0 < remain_percentage <= 1 and 0 < linear_percentage <= 1):
        raise ValueError('remain_percentage and linear_percentage must be in (0, 1], got %r, %r'
                         % (remain_percentage, linear_percentage))
    depth, classes = hh_net.depth, hh_net.classes
    named = hh_net.latent_parameters()
    try:
        vectors = [_param_numpy(p) for _, p in named]
    except RuntimeError as err:
        raise RuntimeError('shrink needs an initialised hh net: %s' % err) from None
    ctx = ctx or named[0][1].list_ctx()[0]

    wide_macs = config_macs(hh_net.wide_config, depth, classes, input_size)

    def ratio(threshold):
        masks = _masks(vectors, threshold, remain_percentage, linear_percentage)
        return config_macs(_config_of_masks(masks, depth), depth, classes, input_size) / wide_macs

    threshold, iterations = _binary_search(ratio, target_flops_ratio, prune_threshold)
    masks = _masks(vectors, threshold, remain_percentage, linear_percentage)
    config = _config_of_masks(masks, depth)
    macs = config_macs(config, depth, classes, input_size)
    keep = [np.flatnonzero(m) for m in masks]

    arrays = {}
    for conv, src, dst, conv_name, bn_name in hh_net.conv_plan():
        mi, mo = keep[src], keep[dst]
        pairs = np.ix_(mi, mo)
        hyper = {name: _param_numpy(getattr(conv, name))[pairs]
                 for name in ('weight1', 'weight2', 'bias0', 'bias1', 'bias2')}
        arrays[conv_name + '.weight'] = _generate_kernel_np(
            vectors[src][mi], vectors[dst][mo], hyper['weight1'], hyper['weight2'],
            hyper['bias0'], hyper['bias1'], hyper['bias2'], conv.kernel_size)
        bn = conv.bn_main
        for ours in ('gamma', 'beta', 'running_mean', 'running_var'):
            arrays['%s.%s' % (bn_name, ours)] = _param_numpy(getattr(bn, ours))[mo]
    arrays['fc.weight'] = _param_numpy(hh_net.classifier.weight)[:, keep[4]]
    arrays['fc.bias'] = _param_numpy(hh_net.classifier.bias)

    net = LWDNAResNet(depth, config=config, classes=classes)
    params = net._collect_params_with_prefix()
    missing = set(params) ^ set(arrays)
    if missing:   # a bug, not a user error
        raise RuntimeError('shrink: parameters without a source: %s' % sorted(missing)[:5])
    for name, param in params.items():
        param._load_init(mx.nd.array(arrays[name], dtype='float32'), ctx)
    report = {
        'model': 'lwdna_resnet%d' % depth,
        'prune_threshold': float(threshold),
        'flops_ratio': macs / wide_macs,
        'target_flops_ratio': target_flops_ratio,
        'remain_percentage': remain_percentage,
        'linear_percentage': linear_percentage,
        'kept_per_latent_vector': [int(m.sum()) for m in masks],
        'config': config,
        'macs': int(macs),
        'wide_macs': int(wide_macs),
        'input_size': input_size,
        'search_iterations': iterations,
        # the reference's search moves the threshold by at most 0.01 per step for 100 steps;
        # latent vectors far from N(0, 1) can leave the budget out of its reach
        'target_reached': abs(macs / wide_macs - target_flops_ratio) <= 0.001,
    }
    if not report['target_reached']:
        warnings.warn('shrink: the threshold search stopped at %.4f with a FLOPs ratio of %.4f '
                      '(target %.4f) after %d steps, as the reference would'
                      % (threshold, macs / wide_macs, target_flops_ratio, iterations))
    return net, report


def search(hh_net, batches, ctx, target_flops_ratio=0.23, remain_percentage=0.4,
           linear_percentage=0.45, warmup_iters=2, lr=0.1, momentum=0.9, wd=1e-4,
           batch_fraction=0.25, prune_threshold=5e-3, input_size=224, log=None):
    """The reference's search stage (README ImageNet command) then :func:`shrink`.

    Runs ``warmup_iters`` SGD iterations (lr, momentum, weight decay on every parameter,
    latent vectors and hypernetwork included; cross-entropy) on the first
    ``batch_fraction`` of each batch (the reference keeps 64 of 256 images and stops after
    batch index 1), then shrinks.

    Parameters
    ----------
    hh_net : HHResNet; initialised here with the reference's initialisation if it is not
    batches : iterable of (data NDArray (N, 3, H, W), label NDArray (N,)) full batches
    ctx : mx.Context or list of them (data-parallel warm-up; the result lives on the first)

    Returns
    -------
    (lwdna_net, report): see :func:`shrink`; ``report`` also holds ``warmup_iters`` (done),
    ``warmup_batch_size`` and ``warmup_losses``.
    """
    contexts = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    if warmup_iters < 0:
        raise ValueError('warmup_iters must be >= 0, got %r' % (warmup_iters,))
    if not 0 < batch_fraction <= 1:
        raise ValueError('batch_fraction must be in (0, 1], got %r' % (batch_fraction,))
    params = hh_net.collect_params()
    if any(p._data is None and p._deferred_init == () for p in params.values()):
        params.initialize(ctx=contexts)
    trainer = gluon.Trainer(params, 'sgd', {'learning_rate': lr, 'momentum': momentum,
                                            'wd': wd})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    losses, done, used = [], 0, 0
    it = iter(batches)
    while done < warmup_iters:
        try:
            data, label = next(it)
        except StopIteration:
            raise ValueError('search: the batches ran out after %d of %d warm-up iterations'
                             % (done, warmup_iters)) from None
        used = max(1, int(data.shape[0] * batch_fraction))
        data, label = data[:used], label[:used]
        if len(contexts) > 1 and used >= len(contexts):
            xs = gluon.utils.split_and_load(data, contexts, even_split=False)
            ys = gluon.utils.split_and_load(label, contexts, even_split=False)
        else:
            xs, ys = [data.as_in_context(contexts[0])], [label.as_in_context(contexts[0])]
        with autograd.record():
            batch_losses = [loss_fn(hh_net(x), y) for x, y in zip(xs, ys)]
        for item in batch_losses:
            item.backward()
        total = float(sum(item.sum().asscalar() for item in batch_losses)) / used
        if not math.isfinite(total):
            raise FloatingPointError('search: warm-up loss is %r at iteration %d'
                                     % (total, done + 1))
        trainer.step(used)
        losses.append(total)
        done += 1
        if log is not None:
            log('search warm-up %d/%d: loss %.4f (batch %d)' % (done, warmup_iters, total, used))
    start = time.time()
    net, report = shrink(hh_net, target_flops_ratio, remain_percentage, linear_percentage,
                         prune_threshold=prune_threshold, input_size=input_size, ctx=contexts[0])
    report.update(warmup_iters=done, warmup_batch_size=used, warmup_losses=losses,
                  shrink_seconds=time.time() - start)
    if log is not None:
        log('shrink: threshold %.4f, FLOPs ratio %.4f, %.3f GMACs'
            % (report['prune_threshold'], report['flops_ratio'], report['macs'] / 1e9))
    return net, report


# ---------------------------------------------------------------------------------------
# Checkpoint conversion
# ---------------------------------------------------------------------------------------

_CONVS_TO_DEPTH = {20: 18, 36: 34, 53: 50, 104: 101, 155: 152}


def _is_leftover_latent(key):
    return key.rsplit('.', 1)[-1].startswith('latent_vector')


def _torchvision_conv_names(depth):
    names = ['conv1.weight']
    bottleneck = _bottleneck(depth)
    for s, count in enumerate(STAGE_BLOCKS[depth]):
        for b in range(count):
            pre = 'layer%d.%d.' % (s + 1, b)
            names += [pre + 'conv%d.weight' % i for i in ((1, 2, 3) if bottleneck else (1, 2))]
            if b == 0 and (bottleneck or s > 0):
                names.append(pre + 'downsample.0.weight')
    return names


def config_from_state_dict(state_dict, depth=None):
    """(depth, config, classes) of an LW-DNA ResNet read from its tensor shapes.

    ``state_dict``: {key: array} in torchvision names (``conv1.weight``, ``layer1.0.conv1
    .weight``, ..., ``fc.weight``), or in any names but torchvision's order (the released
    ``resnet50_lwdna.pt``, which the reference loads by position, or the reference's
    post-shrink ``features.*`` names). ``latent_vector*`` leftovers and
    ``num_batches_tracked`` are skipped. ``depth`` is inferred from the number of convs
    unless given. Raises ``ConversionError`` when the shapes do not chain into a ResNet.
    """
    arrays = {k: np.asarray(v) for k, v in state_dict.items()
              if not _is_leftover_latent(k) and not k.endswith('num_batches_tracked')}
    convs, fcs = None, [a for a in arrays.values() if a.ndim == 2]
    kernels = {k for k, a in arrays.items() if a.ndim == 4}
    for d in ([depth] if depth else sorted(STAGE_BLOCKS)):
        names = _torchvision_conv_names(d)
        if kernels == set(names) and 'fc.weight' in arrays:
            depth, convs, fcs = d, [arrays[n] for n in names], [arrays['fc.weight']]
            break
    if convs is None:                                    # positional layout
        convs = [a for a in arrays.values() if a.ndim == 4]
        found = _CONVS_TO_DEPTH.get(len(convs))
        if depth is None:
            if found is None:
                raise ConversionError('cannot tell the ResNet depth: the checkpoint holds %d conv '
                                      'kernels (ResNet-18/34/50/101/152 have %s)'
                                      % (len(convs),
                                         ', '.join(str(c) for c in sorted(_CONVS_TO_DEPTH))))
            depth = found
        elif len(convs) != len(_torchvision_conv_names(depth)):
            raise ConversionError('the checkpoint holds %d conv kernels, ResNet-%d has %d'
                                  % (len(convs), depth, len(_torchvision_conv_names(depth))))
    if len(fcs) != 1:
        raise ConversionError('expected one 2-D classifier weight in the checkpoint, found %d'
                              % len(fcs))
    names = _torchvision_conv_names(depth)

    def take(i, in_ch, kernel):
        w = convs[i]
        if w.shape[1] != in_ch or w.shape[2:] != (kernel, kernel):
            raise ConversionError('%s (position %d) has shape %s; after the widths before it, '
                                  'it should take %d inputs with a %dx%d kernel'
                                  % (names[i], i, tuple(w.shape), in_ch, kernel, kernel))
        return int(w.shape[0])

    bottleneck = _bottleneck(depth)
    stem = take(0, 3, 7)
    in_ch, i, blocks, stage_out = stem, 1, [], []
    for s, count in enumerate(STAGE_BLOCKS[depth]):
        stage = []
        for b in range(count):
            if bottleneck:
                c1 = take(i, in_ch, 1)
                c2 = take(i + 1, c1, 3)
                out = take(i + 2, c2, 1)
                i += 3
                stage.append([c1, c2])
            else:
                c1 = take(i, in_ch, 3)
                out = take(i + 1, c1, 3)
                i += 2
                stage.append([c1])
            if b == 0 and (bottleneck or s > 0):
                if take(i, in_ch, 1) != out:
                    raise ConversionError('%s gives %d channels but the residual branch %d'
                                          % (names[i], convs[i].shape[0], out))
                i += 1
            elif in_ch != out:
                raise ConversionError('block %d of stage %d adds %d to %d channels'
                                      % (b, s + 1, out, in_ch))
            in_ch = out
        blocks.append(stage)
        stage_out.append(in_ch)
    if fcs[0].shape[1] != in_ch:
        raise ConversionError('the classifier takes %d inputs, the last stage gives %d'
                              % (fcs[0].shape[1], in_ch))
    config = {'stem': stem, 'blocks': blocks, 'stage_out': stage_out}
    try:
        config = validate_config(config, depth)
    except ValueError as err:
        raise ConversionError('checkpoint widths do not form a ResNet-%d: %s'
                              % (depth, err)) from None
    return depth, config, int(fcs[0].shape[0])


def _torchvision_name(ours):
    name = ours[len('stem.'):] if ours.startswith('stem.') else ours
    if name.endswith('.gamma'):
        return name[:-len('gamma')] + 'weight'
    if name.endswith('.beta'):
        return name[:-len('beta')] + 'bias'
    return name


def _convert_lwdna(name, depth, state_dict, config=None, classes=None, **kwargs):
    found_depth, found, found_classes = config_from_state_dict(state_dict, depth)
    net = LWDNAResNet(depth, config=found if config is None else config,
                      classes=found_classes if classes is None else classes, **kwargs)
    ours = list(net._collect_params_with_prefix())
    expected = [_torchvision_name(o) for o in ours]
    leftovers = {k for k in state_dict if _is_leftover_latent(k)}
    if all(k in state_dict for k in expected):
        mapping = dict(zip(ours, expected))
    else:
        # the released checkpoint: torchvision order, other names (the reference loads it
        # by position), possibly led by the search stage's unused latent vectors
        keys = [k for k in state_dict if k not in leftovers]
        if len(keys) != len(ours):
            raise ConversionError('%s: the checkpoint is not in torchvision names, and by '
                                  'position it holds %d tensors (without latent_vector*) where '
                                  'the net needs %d' % (name, len(keys), len(ours)))
        mapping = dict(zip(ours, keys))
    return ConversionPlan(net, mapping, ignored=leftovers)


def hh_reference_names(net):
    """{our structural parameter name: the reference's state_dict key} of an HHResNet
    (the names agree except BN: gamma/beta are the reference's weight/bias). Shared stage
    vectors appear once, under ``latent_vector_stage<s>``."""
    return {ours: (_torchvision_name(ours) if '.bn_main.' in ours else ours)
            for ours in net._collect_params_with_prefix()}


def _convert_hh(name, depth, state_dict, width_mult=None, embedding_dim=None, kernel_size=None,
                classes=None, **kwargs):
    expansion = 4 if _bottleneck(depth) else 1
    if width_mult is None and 'latent_vector_stage1' in state_dict:
        width_mult = state_dict['latent_vector_stage1'].shape[0] / (64.0 * expansion)
    if embedding_dim is None and 'features.0.weight1' in state_dict:
        embedding_dim = int(state_dict['features.0.weight1'].shape[-1])
    first = 'features.2.layer2.weight2' if expansion == 4 else 'features.2.layer1.weight2'
    if kernel_size is None and first in state_dict:
        kernel_size = int(round(math.sqrt(state_dict[first].shape[2])))
    if classes is None and 'classifier.weight' in state_dict:
        classes = int(state_dict['classifier.weight'].shape[0])
    net = HHResNet(depth, classes=classes or 1000, width_mult=width_mult or 1.0,
                   embedding_dim=embedding_dim or 2, kernel_size=kernel_size or 3, **kwargs)
    mapping = hh_reference_names(net)
    # the reference's state_dict repeats each stage vector under the keys of the convs
    # that share it; such an alias may be skipped only if it holds the same numbers
    ignored, problems = set(), []
    stage_of = {id(conv): dst for conv, _, dst, _, _ in net.conv_plan()}
    for prefix, conv in net._hyper_convs():
        key = prefix + '.latent_vector'
        if conv.own_latent or key not in state_dict:
            continue
        canonical = 'latent_vector_stage%d' % stage_of[id(conv)]
        alias, value = np.asarray(state_dict[key]), state_dict.get(canonical)
        if value is not None and alias.shape == np.shape(value) and np.array_equal(alias, value):
            ignored.add(key)
            continue
        detail = ''
        if value is not None and alias.shape == np.shape(value):
            detail = ' (max |difference| %.3g)' % float(np.max(np.abs(alias - value)))
        problems.append('%s is an alias of the shared stage vector %s but holds different '
                        'numbers%s' % (key, canonical, detail))
    if problems:
        raise ConversionError('%d problem(s) converting weights for %s:\n  %s'
                              % (len(problems), name, '\n  '.join(problems)))
    return ConversionPlan(net, mapping, ignored=ignored)


@register_converter('lwdna')
def _convert(name, state_dict, **kwargs):
    """lwdna_*: torchvision names or the released checkpoint's positional layout (config
    inferred from the shapes unless ``config`` is given); hh_*: the reference's
    ResNet_ImageNet_DHP names (width_mult / embedding_dim / kernel_size inferred too)."""
    depth = int(name.rsplit('resnet', 1)[1])
    if name.startswith('hh_'):
        return _convert_hh(name, depth, state_dict, **kwargs)
    return _convert_lwdna(name, depth, state_dict, **kwargs)
