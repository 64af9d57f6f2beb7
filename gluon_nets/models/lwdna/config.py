"""LW-DNA width configs: the plain ResNet's, checking a user's, and the MACs of one.

A config gives every width of a torchvision-layout ResNet-``depth``::

    {'stem': 64,                                   # conv1 width
     'blocks': [[[64, 64], [64, 64], [64, 64]],    # per stage, per block: the widths of
                ...],                              #   conv1, conv2 ([conv1] for basic blocks)
     'stage_out': [256, 512, 1024, 2048]}          # conv3 / downsample width of each stage

``stage_out[3]`` is the classifier's input.
"""
import json
import os

import numpy as np

from ...nn import RESNET_STAGE_BLOCKS, resnet_stage_blocks

__all__ = ['DEPTHS', 'STAGE_BLOCKS', 'stage_blocks', 'uses_bottlenecks', 'default_config',
           'validate_config', 'config_macs']

#: the depths the reference builds: 18/34 with basic blocks, 50/101/152 with bottlenecks
DEPTHS = (18, 34, 50, 101, 152)

#: blocks per stage of each LW-DNA depth (the shared ResNet table restricted to DEPTHS)
STAGE_BLOCKS = {depth: RESNET_STAGE_BLOCKS[depth] for depth in DEPTHS}


def stage_blocks(depth):
    """Blocks per stage (4-tuple) of ResNet-``depth``; ``ValueError`` for a depth that
    LW-DNA does not build."""
    return resnet_stage_blocks(depth, DEPTHS)


def uses_bottlenecks(depth):
    """True for the bottleneck depths (50, 101, 152), False for 18 and 34."""
    return depth >= 50


def default_config(depth, width_mult=1.0):
    """The plain ResNet-``depth`` widths times ``width_mult`` (floored as the reference
    does: ``int(64 * 2**s * width_mult)`` per stage), in the config format."""
    counts = stage_blocks(depth)
    expansion = 4 if uses_bottlenecks(depth) else 1
    blocks, stage_out = [], []
    for stage, count in enumerate(counts):
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
    counts = stage_blocks(depth)
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
    bottleneck = uses_bottlenecks(depth)
    per_block = 2 if bottleneck else 1
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
