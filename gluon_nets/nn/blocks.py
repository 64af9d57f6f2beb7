"""Shared building blocks (Gluon HybridBlocks, NCHW).

Attribute names follow the torchvision layout (``conv1``, ``bn1``, ``downsample.0``)
so that structural parameter names (``save_parameters``) line up with the
reference checkpoints and converters stay short. Activations are
``nn.Activation`` (the oneDNN-fused operator) and every conv is followed by its
BatchNorm so that ``optimize_for('MKLDNN')`` can fold it.
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

__all__ = ['RESNET_STAGE_BLOCKS', 'resnet_stage_blocks', 'concat_channels', 'ConvBNAct', 'SqueezeExcite', 'ChannelShuffle', 'ResNetStem',
           'Bottleneck', 'BasicBlock', 'conv_bn_downsample', 'batch_norm']


#: residual blocks per stage of the ResNet depths the families use (He et al. 2016;
#: 26 and 200 as in OctConv's and GluonCV's ResNet-v1b tables)
RESNET_STAGE_BLOCKS = {18: (2, 2, 2, 2), 26: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                       101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}


def resnet_stage_blocks(depth, allowed=None):
    """Blocks per stage (4-tuple) of a ResNet of ``depth``; ``ValueError`` naming the depths
    in ``allowed`` (default: every depth of :data:`RESNET_STAGE_BLOCKS`) otherwise."""
    allowed = tuple(sorted(allowed or RESNET_STAGE_BLOCKS))
    if depth not in allowed:
        raise ValueError('depth must be one of %s, got %r' % (list(allowed), depth))
    return RESNET_STAGE_BLOCKS[depth]


def concat_channels(F, *arrays):
    """Concatenate (N, C_i, H, W) maps along channels -> (N, sum C_i, H, W), in a way whose
    backward pass works on CPU.

    mxnet 1.9.1 runs a 4-D ``concat`` on oneDNN, whose backward cannot split a blocked
    gradient at a channel offset that is not a multiple of its block size ("could not
    construct a sub-memory", e.g. MENet's 232 + 24 channels, octave parts at alpha
    0.125). oneDNN only takes 2-D and 4-D concats, so the maps are joined as
    (N, C_i, H, W, 1) and the last axis dropped, which runs MXNet's own kernel.
    """
    if len(arrays) == 1:
        return arrays[0]
    joined = F.concat(*[F.expand_dims(a, axis=4) for a in arrays], dim=1)
    return F.reshape(joined, shape=(0, 0, 0, -3))


def batch_norm(channels, norm_kwargs=None, **kwargs):
    """``nn.BatchNorm`` over ``channels`` with PyTorch's defaults (eps 1e-5, momentum 0.1
    in PyTorch's convention = 0.9 in Gluon's); ``norm_kwargs`` overrides."""
    options = dict(epsilon=1e-5, momentum=0.9)
    options.update(norm_kwargs or {})
    options.update(kwargs)
    return nn.BatchNorm(in_channels=channels, **options)


def _act(act):
    if act is None:
        return None
    if isinstance(act, HybridBlock):
        return act
    return nn.Activation(act)


class ConvBNAct(HybridBlock):
    """conv (no bias) -> BN -> activation; (N, Cin, H, W) -> (N, channels, H', W').

    Attributes ``conv``, ``bn``, ``act``. ``act=None`` leaves the activation out.
    """

    def __init__(self, in_channels, channels, kernel_size, strides=1, padding=None, groups=1,
                 act='relu', use_bias=False, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        if padding is None:
            padding = kernel_size // 2
        with self.name_scope():
            self.conv = nn.Conv2D(channels, kernel_size, strides, padding, groups=groups,
                                  use_bias=use_bias, in_channels=in_channels)
            self.bn = batch_norm(channels, norm_kwargs)
            self.act = _act(act)

    def hybrid_forward(self, F, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class SqueezeExcite(HybridBlock):
    """Squeeze-and-excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))); (N, C, H, W) -> same.

    ``fc1``: C -> C // reduction, ``fc2``: back to C (Dense with bias, as the ResNet
    SE papers' code). ``reduced`` overrides C // reduction.
    """

    def __init__(self, channels, reduction=16, reduced=None, **kwargs):
        super().__init__(**kwargs)
        reduced = reduced or channels // reduction
        with self.name_scope():
            self.fc1 = nn.Dense(reduced, in_units=channels)
            self.relu = nn.Activation('relu')
            self.fc2 = nn.Dense(channels, in_units=reduced)
            self.sigmoid = nn.Activation('sigmoid')

    def hybrid_forward(self, F, x):
        w = F.contrib.AdaptiveAvgPooling2D(x, output_size=1)
        w = self.sigmoid(self.fc2(self.relu(self.fc1(w))))
        return F.broadcast_mul(x, F.reshape(w, (0, 0, 1, 1)))


class ChannelShuffle(HybridBlock):
    """ShuffleNet's channel shuffle: (N, g*k, H, W) viewed as (N, g, k, H, W), transposed
    to (N, k, g, H, W) and flattened back."""

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def hybrid_forward(self, F, x):
        x = F.reshape(x, (0, -4, self.groups, -1, -2))
        x = F.swapaxes(x, 1, 2)
        return F.reshape(x, (0, -3, -2))


class ResNetStem(HybridBlock):
    """torchvision ResNet stem: 7x7/2 conv -> BN -> ReLU -> 3x3/2 max pool (pad 1);
    (N, 3, H, W) -> (N, channels, H/4, W/4). Attributes ``conv1``, ``bn1``."""

    def __init__(self, channels=64, in_channels=3, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = nn.Conv2D(channels, 7, 2, 3, use_bias=False, in_channels=in_channels)
            self.bn1 = batch_norm(channels, norm_kwargs)
            self.relu = nn.Activation('relu')
            self.maxpool = nn.MaxPool2D(3, 2, 1)

    def hybrid_forward(self, F, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def conv_bn_downsample(in_channels, channels, strides, norm_kwargs=None):
    """torchvision projection shortcut ``downsample``: 1x1 strided conv (index 0) + BN (1)."""
    block = nn.HybridSequential(prefix='')
    with block.name_scope():
        block.add(nn.Conv2D(channels, 1, strides, use_bias=False, in_channels=in_channels))
        block.add(batch_norm(channels, norm_kwargs))
    return block


class Bottleneck(HybridBlock):
    """ResNet v1.5 bottleneck skeleton with free widths (torchvision layout):

    conv1 1x1 (in -> mid1) -> bn1 -> relu -> conv2 3x3 (mid1 -> mid2, ``strides``,
    ``groups``) -> bn2 -> relu -> conv3 1x1 (mid2 -> out) -> bn3 [-> se] -> + shortcut -> relu.

    (N, in, H, W) -> (N, out, H/strides, W/strides). The shortcut is ``downsample``
    (conv_bn_downsample) when ``strides != 1`` or ``in != out``, else identity.
    ``conv2`` may be replaced by any block (e.g. ScaleNet's multi-scale block) through
    ``conv2_factory(mid1, mid2, strides, groups)``; ``se`` adds SqueezeExcite with
    ``se_reduction``. Subclasses reuse :meth:`residual` / :meth:`shortcut`.
    """

    def __init__(self, in_channels, mid1, mid2, out_channels, strides=1, groups=1,
                 se_reduction=None, downsample=None, conv2_factory=None, last_gamma=False,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = nn.Conv2D(mid1, 1, use_bias=False, in_channels=in_channels)
            self.bn1 = batch_norm(mid1, norm_kwargs)
            if conv2_factory is None:
                self.conv2 = nn.Conv2D(mid2, 3, strides, 1, groups=groups, use_bias=False,
                                       in_channels=mid1)
            else:
                self.conv2 = conv2_factory(mid1, mid2, strides, groups)
            self.bn2 = batch_norm(mid2, norm_kwargs)
            self.conv3 = nn.Conv2D(out_channels, 1, use_bias=False, in_channels=mid2)
            self.bn3 = batch_norm(out_channels, norm_kwargs,
                                  **({'gamma_initializer': 'zeros'} if last_gamma else {}))
            self.se = (SqueezeExcite(out_channels, se_reduction)
                       if se_reduction else None)
            self.relu = nn.Activation('relu')
            if downsample is None and (strides != 1 or in_channels != out_channels):
                downsample = conv_bn_downsample(in_channels, out_channels, strides, norm_kwargs)
            self.downsample = downsample

    def residual(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.se(out) if self.se is not None else out

    def shortcut(self, x):
        return self.downsample(x) if self.downsample is not None else x

    def hybrid_forward(self, F, x):
        return self.relu(self.residual(x) + self.shortcut(x))


class BasicBlock(HybridBlock):
    """ResNet basic block with free widths: conv1 3x3 (in -> mid, ``strides``) -> bn1 ->
    relu -> conv2 3x3 (mid -> out) -> bn2 -> + shortcut -> relu."""

    def __init__(self, in_channels, mid, out_channels, strides=1, downsample=None,
                 last_gamma=False, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = nn.Conv2D(mid, 3, strides, 1, use_bias=False, in_channels=in_channels)
            self.bn1 = batch_norm(mid, norm_kwargs)
            self.conv2 = nn.Conv2D(out_channels, 3, 1, 1, use_bias=False, in_channels=mid)
            self.bn2 = batch_norm(out_channels, norm_kwargs,
                                  **({'gamma_initializer': 'zeros'} if last_gamma else {}))
            self.relu = nn.Activation('relu')
            if downsample is None and (strides != 1 or in_channels != out_channels):
                downsample = conv_bn_downsample(in_channels, out_channels, strides, norm_kwargs)
            self.downsample = downsample

    def hybrid_forward(self, F, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + shortcut)
