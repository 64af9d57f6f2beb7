"""The search-stage networks: ResNets whose every kernel a hypernetwork generates.

``hh_resnet{18,34,50,101,152}`` (the reference's ``ResNet_ImageNet_DHP``): no conv stores
a kernel; each :class:`HyperConv` generates its own on every forward from a small
hypernetwork fed by per-channel latent vectors. :func:`.search.shrink` turns one into
the LW-DNA network.
"""
import math

import numpy as np
import mxnet as mx
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ...model_zoo import register_model
from ...nn import batch_norm
from .config import default_config, stage_blocks, uses_bottlenecks

__all__ = ['generate_kernel', 'generate_kernel_numpy', 'HyperConv', 'HHBottleneck',
           'HHBasicBlock', 'HHResNet', 'hh_resnet18', 'hh_resnet34', 'hh_resnet50',
           'hh_resnet101', 'hh_resnet152']


def generate_kernel(F, z_in, z_out, weight1, weight2, bias0, bias1, bias2, shape):
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


def generate_kernel_numpy(z_in, z_out, weight1, weight2, bias0, bias1, bias2, k):
    """NumPy (float32) twin of :func:`generate_kernel` for already-sliced arrays."""
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
    ``bn_main`` (eps 1e-5 unless ``norm_kwargs`` say otherwise).
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
        kernel = generate_kernel(F, z_in, z_out, weight1, weight2, bias0, bias1, bias2,
                                  (self.in_channels, self.channels, k, self.embedding_dim))
        y = F.Convolution(x, kernel, kernel=(k, k), stride=(self.strides, self.strides),
                          pad=(k // 2, k // 2), num_filter=self.channels, no_bias=True)
        y = self.bn_main(y)
        if self.relu is not None:
            y = self.relu(y)
        return y, z_out


class HHBottleneck(HybridBlock):
    """Bottleneck of HyperConvs (stride on ``layer2``); ``layer3`` and ``downsample`` output
    the stage's shared latent vector. forward(x, z_in, z_stage) -> (N, out, H', W').
    ``norm_kwargs`` go to every HyperConv's BatchNorm."""

    def __init__(self, in_channels, planes, out_channels, kernel_size, strides, embedding_dim,
                 downsample, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        e, norm = embedding_dim, norm_kwargs
        with self.name_scope():
            self.layer1 = HyperConv(in_channels, planes, 1, 1, e, norm_kwargs=norm)
            self.layer2 = HyperConv(planes, planes, kernel_size, strides, e, norm_kwargs=norm)
            self.layer3 = HyperConv(planes, out_channels, 1, 1, e, act=False, own_latent=False,
                                    norm_kwargs=norm)
            self.downsample = (HyperConv(in_channels, out_channels, 1, strides, e, act=False,
                                         own_latent=False, norm_kwargs=norm)
                               if downsample else None)
            self.act_out = nn.Activation('relu')

    def hybrid_forward(self, F, x, z_in, z_stage):
        out, z1 = self.layer1(x, z_in)
        out, z2 = self.layer2(out, z1)
        out, _ = self.layer3(out, z2, z_stage)
        shortcut = self.downsample(x, z_in, z_stage)[0] if self.downsample is not None else x
        return self.act_out(out + shortcut)


class HHBasicBlock(HybridBlock):
    """Basic block of HyperConvs; ``layer2`` and ``downsample`` output the stage's shared
    latent vector. forward(x, z_in, z_stage) -> (N, out, H', W'). ``norm_kwargs`` go to
    every HyperConv's BatchNorm."""

    def __init__(self, in_channels, planes, out_channels, kernel_size, strides, embedding_dim,
                 downsample, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        e, norm = embedding_dim, norm_kwargs
        with self.name_scope():
            self.layer1 = HyperConv(in_channels, planes, kernel_size, strides, e, norm_kwargs=norm)
            self.layer2 = HyperConv(planes, out_channels, kernel_size, 1, e, act=False,
                                    own_latent=False, norm_kwargs=norm)
            self.downsample = (HyperConv(in_channels, out_channels, 1, strides, e, act=False,
                                         own_latent=False, norm_kwargs=norm)
                               if downsample else None)
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
    then ``classifier`` (Dense). ``norm_kwargs`` go to every BatchNorm (default: PyTorch's
    eps 1e-5, momentum 0.1) and on to the LW-DNA net that :func:`.search.shrink` builds.

    ``count_macs`` of this net counts the main network only (the generated kernels'
    convolutions and the classifier), the golden files' convention: the hypernetwork is
    made of broadcast/sum operators that the counter does not count. It adds
    sum(in*out*k*k*e) MACs per forward, independent of the batch size.
    """

    def __init__(self, depth, classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3,
                 norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        stage_blocks(depth)     # a ValueError for depths LW-DNA does not build
        if not width_mult > 0:
            raise ValueError('width_mult must be positive, got %r' % (width_mult,))
        if int(embedding_dim) != embedding_dim or embedding_dim < 1:
            raise ValueError('embedding_dim must be a positive integer, got %r' % (embedding_dim,))
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError('kernel_size must be a positive odd integer, got %r' % (kernel_size,))
        bottleneck = uses_bottlenecks(depth)
        expansion = 4 if bottleneck else 1
        self.depth, self.classes = depth, classes
        self.width_mult, self.embedding_dim = width_mult, int(embedding_dim)
        self.kernel_size = int(kernel_size)
        self.norm_kwargs = norm_kwargs
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
                self.features.add(HyperConv(3, cfg['stem'], 7, 2, e, own_latent=bottleneck,
                                            norm_kwargs=norm_kwargs))
                self.features.add(nn.MaxPool2D(3, 2, 1))
                in_ch = cfg['stem']
                block = HHBottleneck if bottleneck else HHBasicBlock
                for s, stage in enumerate(cfg['blocks']):
                    out = cfg['stage_out'][s]
                    for b in range(len(stage)):
                        strides = 2 if (s > 0 and b == 0) else 1
                        self.features.add(block(in_ch, stage[b][0], out, k, strides, e,
                                                downsample=(strides != 1 or in_ch != out),
                                                norm_kwargs=norm_kwargs))
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
        if uses_bottlenecks(self.depth):
            x, z = layers[0](x, latent_vector_stage0)
        else:
            x, z = layers[0](x, latent_vector_stage0, latent_vector_stage1)
        x = layers[1](x)
        index = 2
        for s, count in enumerate(stage_blocks(self.depth)):
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
        bottleneck = uses_bottlenecks(self.depth)
        layers = list(self.features._children.values())
        plan = [(layers[0], 0, 5 if bottleneck else 1, 'stem.conv1', 'stem.bn1')]
        current = plan[0][2]
        own = 5 + (1 if bottleneck else 0)       # next unused own-vector index
        index = 2
        for s, count in enumerate(stage_blocks(self.depth)):
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


# width_mult=1.0 is the reference's option default (its README recipe passes 2);
# embedding_dim=2 is the README's value. ``norm_kwargs``: options of every BatchNorm;
# other kwargs (prefix, params) go to the HybridBlock.

@register_model('lwdna', classifier='classifier')
def hh_resnet18(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, norm_kwargs=None,
                **kwargs):
    """HH search-stage ResNet-18 (hypernetwork kernels); README recipe: width_mult=2."""
    return HHResNet(18, classes=classes, width_mult=width_mult, embedding_dim=embedding_dim,
                    kernel_size=kernel_size, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', classifier='classifier', slow=True)
def hh_resnet34(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, norm_kwargs=None,
                **kwargs):
    """HH search-stage ResNet-34 (hypernetwork kernels); README recipe: width_mult=2."""
    return HHResNet(34, classes=classes, width_mult=width_mult, embedding_dim=embedding_dim,
                    kernel_size=kernel_size, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', classifier='classifier', slow=True)
def hh_resnet50(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, norm_kwargs=None,
                **kwargs):
    """HH search-stage ResNet-50 (hypernetwork kernels); README recipe: width_mult=2."""
    return HHResNet(50, classes=classes, width_mult=width_mult, embedding_dim=embedding_dim,
                    kernel_size=kernel_size, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', classifier='classifier', slow=True)
def hh_resnet101(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, norm_kwargs=None,
                 **kwargs):
    """HH search-stage ResNet-101 (hypernetwork kernels); README recipe: width_mult=2."""
    return HHResNet(101, classes=classes, width_mult=width_mult, embedding_dim=embedding_dim,
                    kernel_size=kernel_size, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', classifier='classifier', slow=True)
def hh_resnet152(classes=1000, width_mult=1.0, embedding_dim=2, kernel_size=3, norm_kwargs=None,
                 **kwargs):
    """HH search-stage ResNet-152 (hypernetwork kernels); README recipe: width_mult=2."""
    return HHResNet(152, classes=classes, width_mult=width_mult, embedding_dim=embedding_dim,
                    kernel_size=kernel_size, norm_kwargs=norm_kwargs, **kwargs)
