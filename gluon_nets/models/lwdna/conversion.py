"""Reading the authors' checkpoints into LW-DNA and HH nets (the family's converter).

- ``lwdna_*``: torchvision names, or the released ``resnet50_lwdna.pt``'s positional
  layout (the reference loads it by position); the widths are read from the tensor
  shapes (:func:`config_from_state_dict`).
- ``hh_*``: the reference's ``ResNet_ImageNet_DHP`` state_dicts (:func:`hh_reference_names`).
"""
import math

import numpy as np

from ...model_zoo import ConversionError, ConversionPlan, register_converter
from .config import DEPTHS, stage_blocks, uses_bottlenecks, validate_config
from .hypernet import HHResNet
from .nets import LWDNAResNet

__all__ = ['config_from_state_dict', 'hh_reference_names', 'torchvision_conv_names']


def _is_leftover_latent(key):
    return key.rsplit('.', 1)[-1].startswith('latent_vector')


def torchvision_conv_names(depth):
    """The conv kernel keys of a torchvision ResNet-``depth`` state_dict, in its order."""
    names = ['conv1.weight']
    bottleneck = uses_bottlenecks(depth)
    for s, count in enumerate(stage_blocks(depth)):
        for b in range(count):
            pre = 'layer%d.%d.' % (s + 1, b)
            names += [pre + 'conv%d.weight' % i for i in ((1, 2, 3) if bottleneck else (1, 2))]
            if b == 0 and (bottleneck or s > 0):
                names.append(pre + 'downsample.0.weight')
    return names


#: depth of a ResNet from the number of conv kernels in its checkpoint (20 -> 18, ...)
_DEPTH_OF_CONV_COUNT = {len(torchvision_conv_names(depth)): depth for depth in DEPTHS}


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
    for d in ([depth] if depth else DEPTHS):
        names = torchvision_conv_names(d)
        if kernels == set(names) and 'fc.weight' in arrays:
            depth, convs, fcs = d, [arrays[n] for n in names], [arrays['fc.weight']]
            break
    if convs is None:                                    # positional layout
        convs = [a for a in arrays.values() if a.ndim == 4]
        found = _DEPTH_OF_CONV_COUNT.get(len(convs))
        if depth is None:
            if found is None:
                raise ConversionError('cannot tell the ResNet depth: the checkpoint holds %d conv '
                                      'kernels (ResNet-18/34/50/101/152 have %s)'
                                      % (len(convs),
                                         ', '.join(str(c) for c in sorted(_DEPTH_OF_CONV_COUNT))))
            depth = found
        elif len(convs) != len(torchvision_conv_names(depth)):
            raise ConversionError('the checkpoint holds %d conv kernels, ResNet-%d has %d'
                                  % (len(convs), depth, len(torchvision_conv_names(depth))))
    if len(fcs) != 1:
        raise ConversionError('expected one 2-D classifier weight in the checkpoint, found %d'
                              % len(fcs))
    names = torchvision_conv_names(depth)

    def take(i, in_ch, kernel):
        w = convs[i]
        if w.shape[1] != in_ch or w.shape[2:] != (kernel, kernel):
            raise ConversionError('%s (position %d) has shape %s; after the widths before it, '
                                  'it should take %d inputs with a %dx%d kernel'
                                  % (names[i], i, tuple(w.shape), in_ch, kernel, kernel))
        return int(w.shape[0])

    bottleneck = uses_bottlenecks(depth)
    stem = take(0, 3, 7)
    in_ch, i, blocks, stage_out = stem, 1, [], []
    for s, count in enumerate(stage_blocks(depth)):
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
    _, found, found_classes = config_from_state_dict(state_dict, depth)
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
    expansion = 4 if uses_bottlenecks(depth) else 1
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
