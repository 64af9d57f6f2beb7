"""Classify an image with a zoo model and print the top-5 ImageNet classes.

    # the authors' checkpoint is converted on the fly (needs the torch extra) ...
    python examples/classify.py --model menet108_8x1_g3 \\
        --checkpoint 108-MENet-8x1-group-3.pth.tar --image cat.jpg
    # ... or converted once, then loaded without torch
    python -m gluon_nets.convert --model menet108_8x1_g3 \\
        --checkpoint 108-MENet-8x1-group-3.pth.tar --out menet108.params
    python examples/classify.py --model menet108_8x1_g3 --checkpoint menet108.params --image cat.jpg

Preprocessing is the model's registry ``data_config`` (``gluon_nets.get_model_info(name)
.data_config``; for the ImageNet models: shorter side to ceil(224 / 0.875) = 256, centre
crop 224, RGB / 255, ImageNet mean/std), the MENet repository's validation pipeline,
resized with PIL's bilinear filter (antialiased). PIL rather than ``mx.image``/OpenCV,
because OpenCV's resize does not antialias and moves the logits of these nets by tens
of percent on real photos.
"""
import argparse
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def preprocess(path, data_config):
    """Image file -> (1, 3, S, S) float32 as ``data_config`` says (S = its input size)."""
    from PIL import Image
    crop = data_config['input_size'][-1]
    resize = int(math.ceil(crop / data_config['crop_ratio']))
    filters = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC}
    if data_config['interpolation'] not in filters:
        raise ValueError('no PIL filter for interpolation %r' % data_config['interpolation'])
    with Image.open(path) as image:
        image = image.convert('RGB')
        width, height = image.size
        # shorter side to `resize`, the longer one scaled and truncated (torchvision Resize)
        if width <= height:
            size = (resize, int(resize * height / width))
        else:
            size = (int(resize * width / height), resize)
        image = image.resize(size, filters[data_config['interpolation']])
    width, height = image.size
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop))
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.float32(data_config['mean'])) / np.float32(data_config['std'])
    return array.transpose(2, 0, 1)[None].astype(np.float32)


def load_net(model, checkpoint):
    """Our model with weights from ``checkpoint``: our .params, or the authors' file
    (converted in memory)."""
    import mxnet as mx
    from gluon_nets import get_model
    from gluon_nets.convert import convert_state_dict, load_checkpoint
    if checkpoint.endswith('.params'):
        net = get_model(model)
        net.load_parameters(checkpoint, ctx=mx.cpu())
    else:
        net = convert_state_dict(model, load_checkpoint(checkpoint))
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def top_k(logits, k=5):
    """[(class index, name, probability)] of the k largest ``logits`` (1000,)."""
    from gluon_nets.resources import imagenet_class_names
    names = imagenet_class_names()
    shifted = np.exp(logits - logits.max())
    probs = shifted / shifted.sum()
    order = np.argsort(-logits)[:k]
    return [(int(i), names[i], float(probs[i])) for i in order]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', required=True, help='registry name, e.g. menet108_8x1_g3')
    parser.add_argument('--checkpoint', required=True,
                        help="the authors' .pth.tar or our converted .params")
    parser.add_argument('--image', required=True, help='an image file (JPEG, PNG, ...)')
    parser.add_argument('--topk', type=int, default=5)
    args = parser.parse_args(argv)
    import mxnet as mx
    from gluon_nets import get_model_info
    from gluon_nets.convert import ConversionError
    try:
        if not os.path.isfile(args.image):
            raise FileNotFoundError('image %s does not exist' % args.image)
        data_config = get_model_info(args.model).data_config
        net = load_net(args.model, args.checkpoint)
        logits = net(mx.nd.array(preprocess(args.image, data_config))).asnumpy()[0]
    except (ValueError, FileNotFoundError, ImportError, OSError, ConversionError,
            mx.base.MXNetError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    print('%s on %s' % (args.model, args.image))
    for rank, (index, name, prob) in enumerate(top_k(logits, args.topk), 1):
        print('%d. %-30s class %4d  p=%.4f' % (rank, name, index, prob))
    return 0


if __name__ == '__main__':
    sys.exit(main())
