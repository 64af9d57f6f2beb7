"""The LW-DNA networks: torchvision-layout ResNets whose every width comes from a config.

``lwdna_resnet{18,34,50,101,152}``: ResNet v1.5 (the stride sits on the 3x3 conv; a
strided 1x1 conv + BN projection starts each stage), widths from ``config`` (see
:mod:`.config`; the default is the plain ResNet). This is the network the reference's
shrink produces and the one its README evaluates the released checkpoint with.
"""
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ...model_zoo import register_model
from ...nn import BasicBlock, Bottleneck, ResNetStem, conv_bn_downsample
from .config import uses_bottlenecks, validate_config

__all__ = ['LWDNAResNet', 'REFERENCE_EVAL', 'lwdna_resnet18', 'lwdna_resnet34',
           'lwdna_resnet50', 'lwdna_resnet101', 'lwdna_resnet152']

#: the reference's evaluation path of the released LW-DNA model (a torchvision ResNet)
REFERENCE_EVAL = ('ofsoundof/Heterogeneity_Hypothesis@ea7efc92761e9c563e1810e8592780e3f459701c:'
                  'model/resnet_imagenet.py')


class LWDNAResNet(HybridBlock):
    """torchvision-layout ResNet-``depth`` with every width from ``config``.

    (N, 3, H, W) -> (N, classes). Children: ``stem`` (:class:`ResNetStem`), ``layer1`` ..
    ``layer4`` (:class:`Bottleneck` / :class:`BasicBlock`, each stage opened by a strided
    1x1 conv + BN projection ``downsample``; bottleneck stages always have one, as in
    torchvision and in the reference's shrunk network), ``pool``, ``fc``. ``norm_kwargs``
    go to every BatchNorm (default: PyTorch's eps 1e-5, momentum 0.1).
    """

    def __init__(self, depth, config=None, classes=1000, norm_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.config = validate_config(config, depth)
        self.norm_kwargs = norm_kwargs
        cfg = self.config
        bottleneck = uses_bottlenecks(depth)
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


# ``config``: a dict or the path of a JSON file (see .config); ``norm_kwargs``: options
# of every BatchNorm; other kwargs (prefix, params) go to the HybridBlock.

@register_model('lwdna', reference=REFERENCE_EVAL)
def lwdna_resnet18(classes=1000, config=None, norm_kwargs=None, **kwargs):
    """LW-DNA ResNet-18 (basic blocks): widths from ``config`` (default: plain ResNet-18)."""
    return LWDNAResNet(18, config=config, classes=classes, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', reference=REFERENCE_EVAL)
def lwdna_resnet34(classes=1000, config=None, norm_kwargs=None, **kwargs):
    """LW-DNA ResNet-34 (basic blocks): widths from ``config`` (default: plain ResNet-34)."""
    return LWDNAResNet(34, config=config, classes=classes, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', reference=REFERENCE_EVAL)
def lwdna_resnet50(classes=1000, config=None, norm_kwargs=None, **kwargs):
    """LW-DNA ResNet-50 (bottlenecks): widths from ``config`` (default: plain ResNet-50)."""
    return LWDNAResNet(50, config=config, classes=classes, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', reference=REFERENCE_EVAL)
def lwdna_resnet101(classes=1000, config=None, norm_kwargs=None, **kwargs):
    """LW-DNA ResNet-101 (bottlenecks): widths from ``config`` (default: plain ResNet-101)."""
    return LWDNAResNet(101, config=config, classes=classes, norm_kwargs=norm_kwargs, **kwargs)


@register_model('lwdna', reference=REFERENCE_EVAL, slow=True)
def lwdna_resnet152(classes=1000, config=None, norm_kwargs=None, **kwargs):
    """LW-DNA ResNet-152 (bottlenecks): widths from ``config`` (default: plain ResNet-152)."""
    return LWDNAResNet(152, config=config, classes=classes, norm_kwargs=norm_kwargs, **kwargs)
