#!/usr/bin/env python
"""A zoo backbone under GluonCV's FCN segmentation head.

    python examples/backbone_segmentation.py --model oct_resnet50_v1b --alpha 0.25 \\
        [--params converted.params] [--num-classes 21] [--size 224]

``get_model(name, features_only=True)`` gives the stage feature maps; GluonCV's
``_FCNHead`` turns the stride-32 map (``feature_info[-1]``) into per-pixel class
scores, upsampled to the input size. ``--params`` is a checkpoint converted for the
classifier model (``python -m gluon_nets.convert``): it loads into the backbone as is
(the classifier's weights are ignored). Prints the output shape and the backbone's
feature_info; exits 2 with one ``error:`` line on bad input.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build(model, num_classes, size, params=None, **kwargs):
    """(net, feature_info): backbone + FCN head; (N, 3, size, size) -> (N, num_classes, size, size)."""
    import mxnet as mx
    from mxnet.gluon import HybridBlock

    from gluon_nets import get_model
    from gluon_nets._compat import import_gluoncv
    fcn = import_gluoncv().model_zoo.fcn

    backbone = get_model(model, features_only=True, **kwargs)
    deepest = backbone.feature_info[-1]

    class _Net(HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.backbone = backbone
                self.head = fcn._FCNHead(deepest['num_chs'], num_classes)

        def hybrid_forward(self, F, x):
            scores = self.head(self.backbone(x)[-1])
            return F.contrib.BilinearResize2D(scores, height=size, width=size)

    net = _Net()
    net.initialize(mx.init.Xavier())
    if params:
        backbone.load_parameters(params, ignore_extra=True)
    return net, backbone.feature_info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='oct_resnet50_v1b')
    parser.add_argument('--alpha', type=float, default=None)
    parser.add_argument('--params', default=None, help='converted .params of the classifier model')
    parser.add_argument('--num-classes', type=int, default=21)
    parser.add_argument('--size', type=int, default=224)
    args = parser.parse_args(argv)
    if args.params and not os.path.isfile(args.params):
        print('error: --params %s does not exist' % args.params, file=sys.stderr)
        return 2
    try:
        import mxnet as mx
        kwargs = {} if args.alpha is None else {'alpha': args.alpha}
        net, info = build(args.model, args.num_classes, args.size, args.params, **kwargs)
        net.hybridize(static_alloc=True, static_shape=True)
        out = net(mx.nd.random.uniform(shape=(1, 3, args.size, args.size)))
    except (ValueError, OSError) as err:
        print('error: %s' % str(err).splitlines()[0], file=sys.stderr)
        return 2
    print('backbone %s: %s' % (args.model, ', '.join('%d ch / %d' % (i['num_chs'], i['reduction'])
                                                      for i in info)))
    print('segmentation scores: %s' % (out.shape,))
    return 0


if __name__ == '__main__':
    sys.exit(main())
