"""ScaleNet: ResNet bottlenecks whose 3x3 conv is a scale-aggregation (SA) block.

Li, Kuang, Chen, Zhang, "Data-Driven Neuron Allocation for Scale Aggregation
Networks", CVPR 2019 (arXiv 1904.09460); reference code and structures:
Eli-YiLi/ScaleNet (PyTorch). This is an independent re-implementation that is
weight-compatible with the reference's ``pytorch/scalenet.py``.

SA block (what the reference computes; see docs/scalenet.md)::

    x -> [2x2/2 max-pool if the stage reduces] -> conv1 1x1 -> BN -> ReLU = u (H x W)
    branch i (factor s = 1, 2, 4, 7): s x s / s max-pool (floor) -> conv2.i (3x3 or 1x1)
        -> resize back to H x W (nearest when H, W are multiples of the pooled size,
           otherwise bilinear with half-pixel centres) -> BN
    concat(branches) -> ReLU -> conv3 1x1 -> BN -> + shortcut -> ReLU

A structure (JSON list, one row per SA block) gives the channels of the four branches
and the nominal map side at 224 px: ``[c1, c2, c4, c7, side]``. ``side`` only fixes
the branch kernel sizes (3x3 when ``side / 2**i > 1``); a branch with 0 channels is
absent (its index is skipped in the parameter names, like the reference).

Static graphs: the reference chooses nearest/bilinear and the resize factors from
the live tensor size. A hybridized graph needs them fixed, so every net holds a
*resize plan* computed for one input size (``input_size``, default 224). Calling the
net on an NDArray of another size re-plans and drops the cached graph, so the
hybridized net reproduces the reference at any size the reference accepts; a size
whose smallest map cannot be pooled by 7 raises ``ValueError``. For Symbol use
(``net(mx.sym.var('data'))``, ``count_macs``, export without a forward pass) call
:meth:`ScaleNet.set_input_size` first. Resizes are built from ops that export to
ONNX exactly: UpSampling (nearest) or repeat + edge pad + average pool
(bilinear, see :func:`_linear_resize_plan`).

Two graphs, same function and parameters: inference (NDArray calls outside autograd)
pads the odd branch widths with zero filters to multiples of 16, which oneDNN runs
much faster; training and Symbol calls use the reference layout, with the branches
concatenated as flattened views because oneDNN's 4-D concat backward fails on channel
offsets that are not multiples of its block.
"""
import json
import math
import os

from mxnet import autograd, ndarray
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from ..model_zoo import (ConversionError, ConversionPlan, get_model, register_converter,
                         register_family, register_model)
from ..nn import Bottleneck, ResNetStem, concat_channels, resnet_stage_blocks

__all__ = ['ScaleNet', 'ScaleAggregation', 'SABottleneck', 'scalenet', 'load_structure',
           'kernel_sizes_for', 'stage_sizes', 'min_input_size', 'STRUCTURES', 'STRUCTURE_DEPTHS']

_HERE = os.path.dirname(os.path.abspath(__file__))
STRUCTURE_DIR = os.path.join(_HERE, 'scalenet_structures')
#: structures shipped as package data (from Eli-YiLi/ScaleNet, see NOTICE there), each with
#: the ResNet depth whose stage layout (nn.RESNET_STAGE_BLOCKS) its rows fill
STRUCTURE_DEPTHS = {'scalenet50': 50, 'scalenet50_light': 50, 'scalenet101': 101,
                    'scalenet152': 152}
STRUCTURES = tuple(STRUCTURE_DEPTHS)
#: pooling factor of each branch; the reference uses 7 (not 8) for the last one
SCALES = (1, 2, 4, 7)
_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4
_REFERENCE = 'Eli-YiLi/ScaleNet@2c27b4207691dbe72f7e19fd88bfccc5ce5b3080:pytorch/scalenet.py'
_PAPER = 'Data-Driven Neuron Allocation for Scale Aggregation Networks (CVPR 2019)'


# ----------------------------------------------------------------------------- structures

def load_structure(structure):
    """Rows ``[c1, c2, c4, c7, side]`` from a shipped name (``'scalenet50'``), a JSON
    file path or a list; validated (``ValueError`` naming the bad row)."""
    if isinstance(structure, str):
        path = structure
        if structure in STRUCTURES:
            path = os.path.join(STRUCTURE_DIR, structure + '.json')
        elif not os.path.isfile(structure):
            raise ValueError('structure %r is neither a shipped structure (%s) nor a file'
                             % (structure, ', '.join(STRUCTURES)))
        try:
            with open(path) as f:
                rows = json.load(f)
        except ValueError as err:
            raise ValueError('structure file %s is not valid JSON: %s' % (path, err)) from None
    else:
        rows = structure
    if not isinstance(rows, (list, tuple)) or not rows:
        raise ValueError('a structure is a non-empty list of rows [c1, c2, c4, c7, side]')
    out = []
    for idx, row in enumerate(rows):
        if (not isinstance(row, (list, tuple)) or len(row) != 5
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in row)
                or min(row) < 0 or row[4] < 1 or sum(row[:4]) == 0):
            raise ValueError('structure row %d is %r; expected [c1, c2, c4, c7, side] with '
                             'non-negative channel counts (not all 0) and side >= 1'
                             % (idx, row))
        out.append([int(v) for v in row])
    return out


def _layers_from_sides(rows):
    """Blocks per stage from the ``side`` column: four runs of equal, decreasing sides."""
    runs = []
    for row in rows:
        if runs and runs[-1][0] == row[4]:
            runs[-1][1] += 1
        else:
            runs.append([row[4], 1])
    if len(runs) != 4 or any(a[0] <= b[0] for a, b in zip(runs, runs[1:])):
        raise ValueError('cannot infer the stage layout from the structure\'s side column %s; '
                         'pass layers=[n1, n2, n3, n4]' % [r[4] for r in rows])
    return [n for _, n in runs]


def kernel_sizes_for(rows, rule='py3'):
    """Branch kernel sizes per row: 3 if ``side / 2**i > 1`` else 1 (0 for absent branches).

    ``rule='py3'`` uses true division as the reference under Python 3 (the golden
    files); ``'py2'`` integer division, which makes (side 14, i=3) and (side 7, i=2)
    1x1 convs.
    """
    if rule not in ('py3', 'py2'):
        raise ValueError("kernel rule must be 'py3' or 'py2', got %r" % (rule,))
    sizes = []
    for row in rows:
        side = row[4]
        ratio = (lambda i: side / 2 ** i) if rule == 'py3' else (lambda i: side // 2 ** i)
        sizes.append([(3 if ratio(i) > 1 else 1) if row[i] else 0 for i in range(4)])
    return sizes


# ----------------------------------------------------------------------------- size plans

def stage_sizes(height, width):
    """Map sizes (h, w) of the four stages for an (height, width) input, as the
    reference computes them: 7x7/2 conv (pad 3), 3x3/2 max-pool (pad 1), then a
    2x2/2 floor max-pool before stages 2-4."""
    h = (height - 1) // 2 + 1
    w = (width - 1) // 2 + 1
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    sizes = [(h, w)]
    for _ in range(3):
        h, w = h // 2, w // 2
        sizes.append((h, w))
    return sizes


def min_input_size():
    """Smallest square input the reference accepts: its last stage must be >= 7 px so
    that the 7x7/7 max-pool of branch 3 has an output."""
    size = 1
    while min(stage_sizes(size, size)[-1]) < SCALES[-1]:
        size += 1
    return size


def _linear_resize_plan(src, dst):
    """(L, pad, stride) so that ``repeat(L) -> edge pad(pad, pad) -> avg-pool(L, stride)``
    along one axis equals 1-D linear interpolation ``src -> dst`` with half-pixel centres
    and edge clamping (PyTorch ``align_corners=False``).

    Why it is exact: after repeating each sample L times, the mean of L consecutive
    samples starting at index j is the linear interpolation of the input at position
    j / L. Output o needs position (o + 0.5) * src / dst - 0.5, i.e. j = o * L*src/dst +
    L*src/(2*dst) - L/2, an integer for every o when L is even and L*src is a multiple
    of 2*dst. Edge padding reproduces the clamping at both borders. Unlike
    ``BilinearResize2D``, these ops export to ONNX with the right semantics.
    """
    need = 2 * dst // math.gcd(2 * dst, src)
    length = need if need % 2 == 0 else 2 * need
    stride = length * src // dst
    pad = length * (dst - src) // (2 * dst)
    return length, pad, stride


class _BranchPlan:
    """How branch i of one SA block runs for one input size (static for the graph)."""
    __slots__ = ('pooled', 'nearest', 'rows', 'cols')

    def __init__(self, size, scale):
        h, w = size
        p, q = h // scale, w // scale
        self.pooled = (p, q)
        self.nearest = None
        self.rows = self.cols = None
        if h % p == 0 and w % q == 0:
            self.nearest = (h // p, w // q)
        else:
            self.rows = _linear_resize_plan(p, h) if p != h else None
            self.cols = _linear_resize_plan(q, w) if q != w else None


# ----------------------------------------------------------------------------- blocks

class ScaleAggregation(HybridBlock):
    """The multi-scale middle of an SA block: (N, in, H, W) -> (N, sum(channels), H, W).

    Branch i max-pools by ``SCALES[i]``, convolves (``conv2.i``, kernel
    ``kernel_sizes[i]``) and is resized back to H x W; the branches are concatenated
    in index order. The per-branch BN of the reference follows in the enclosing
    :class:`SABottleneck` as one BN over the concatenation (per-channel, hence the same).
    Absent branches (0 channels) are not built, and their index is skipped in the
    parameter names (``conv2.0``, ``conv2.1``, ``conv2.3``), as in the reference.
    """

    #: channel block of oneDNN's fast kernels: branch convs with odd widths (the learned
    #: allocations) run several times slower, so the inference graph pads them with zero
    #: filters and drops those outputs again
    PAD = 16

    def __init__(self, in_channels, channels, kernel_sizes, **kwargs):
        super().__init__(**kwargs)
        self.channels = list(channels)
        self.kernel_sizes = list(kernel_sizes)
        self.branches = []
        with self.name_scope():
            for i, (c, k) in enumerate(zip(self.channels, self.kernel_sizes)):
                if c == 0:
                    continue
                if k not in (1, 3):
                    raise ValueError('branch %d kernel size must be 1 or 3, got %r' % (i, k))
                conv = nn.Conv2D(c, k, 1, k // 2, use_bias=False, in_channels=in_channels)
                self.register_child(conv, str(i))
                self.branches.append(i)
        self.plans = None
        self.inference_graph = False    # set by ScaleNet.forward

    def set_plan(self, size):
        """Fix the resize ops for an input map of ``size`` = (H, W) (>= 7 each)."""
        self.map_size = tuple(size)
        self.plans = {i: _BranchPlan(size, SCALES[i]) for i in self.branches if i > 0}

    def _resize(self, F, x, plan):
        if plan.nearest is not None:
            kh, kw = plan.nearest
            if kh == kw:
                return F.UpSampling(x, scale=kh, sample_type='nearest', num_args=1)
            return F.repeat(F.repeat(x, repeats=kh, axis=2), repeats=kw, axis=3)
        if plan.rows is not None:
            length, pad, stride = plan.rows
            x = F.repeat(x, repeats=length, axis=2)
            if pad:
                x = F.pad(x, mode='edge', pad_width=(0, 0, 0, 0, pad, pad, 0, 0))
            x = F.Pooling(x, kernel=(length, 1), stride=(stride, 1), pool_type='avg')
        if plan.cols is not None:
            length, pad, stride = plan.cols
            x = F.repeat(x, repeats=length, axis=3)
            if pad:
                x = F.pad(x, mode='edge', pad_width=(0, 0, 0, 0, 0, 0, pad, pad))
            x = F.Pooling(x, kernel=(1, length), stride=(1, stride), pool_type='avg')
        return x

    def _pooled_inputs(self, F, x):
        """{branch: its (pooled) input}; the 4x4/4 pool reuses the 2x2/2 one because
        floor(floor(H/2)/2) == floor(H/4) and a max of maxes is the max (exact)."""
        if self.plans is None:
            raise RuntimeError('ScaleAggregation has no resize plan: call '
                               'ScaleNet.set_input_size first')
        inputs, pooled2 = {}, None
        for i in self.branches:
            s = SCALES[i]
            if s == 1:
                inputs[i] = x
                continue
            source, k = (pooled2, 2) if (s == 4 and pooled2 is not None) else (x, s)
            inputs[i] = F.Pooling(source, kernel=(k, k), stride=(k, k), pool_type='max')
            if s == 2:
                pooled2 = inputs[i]
        return inputs

    def hybrid_forward(self, F, x):
        """Reference layout (training, Symbol calls)."""
        inputs = self._pooled_inputs(F, x)
        outs = []
        for i in self.branches:
            y = self._children[str(i)](inputs[i])
            outs.append(y if i == 0 else self._resize(F, y, self.plans[i]))
        if len(outs) == 1:
            return outs[0]
        # concat_channels: oneDNN's 4-D concat backward cannot split a blocked-layout
        # gradient at channel offsets off its block size (hybridized training)
        return concat_channels(F, *outs)

    def padded_total(self):
        return _round_up(sum(self.channels), self.PAD)

    def folded_forward(self, F, x, scale, shift):
        """Inference layout: ReLU(BN2(branches)) as (N, padded_total(), H, W), the extra
        channels exactly 0.

        BN2 (per channel ``scale``/``shift``) is folded into the branch convs: it commutes
        with the resize (nearest copies values, the bilinear weights sum to 1). Each branch
        conv but the last runs with zero filters up to a multiple of PAD (oneDNN is several
        times slower on odd widths) and drops those outputs; the last keeps its zero
        channels so that the total, conv3's input, is a multiple of PAD too.
        """
        inputs = self._pooled_inputs(F, x)
        outs, start = [], 0
        extra = self.padded_total() - sum(self.channels)
        for j, i in enumerate(self.branches):
            conv, c, k = self._children[str(i)], self.channels[i], self.kernel_sizes[i]
            last = j == len(self.branches) - 1
            width = c + extra if last else _round_up(c, self.PAD)
            a = F.slice_axis(scale, axis=0, begin=start, end=start + c)
            bias = F.slice_axis(shift, axis=0, begin=start, end=start + c)
            start += c
            weight = F.broadcast_mul(_param(F, conv.weight, x), F.reshape(a, (-1, 1, 1, 1)))
            if width > c:
                weight = F.concat(weight, F.zeros(shape=(width - c, conv._in_channels, k, k)),
                                  dim=0)
                bias = F.concat(bias, F.zeros(shape=(width - c,)), dim=0)
            y = F.Convolution(inputs[i], weight, bias, kernel=(k, k), pad=(k // 2, k // 2),
                              num_filter=width)
            if not last and width > c:
                y = F.slice_axis(y, axis=1, begin=0, end=c)
            outs.append(y if i == 0 else self._resize(F, y, self.plans[i]))
        out = outs[0] if len(outs) == 1 else F.concat(*outs, dim=1)
        return F.Activation(out, act_type='relu')


def _round_up(value, block):
    return -(-value // block) * block


def _param(F, param, like):
    """A parameter as the graph input (Symbol) or its data (NDArray) on ``like``'s device."""
    if isinstance(like, ndarray.NDArray):
        return param.data(like.context)
    return param.var()


class SABottleneck(Bottleneck):
    """ScaleNet block: the shared :class:`Bottleneck` with a :class:`ScaleAggregation`
    as ``conv2`` and a 2x2/2 max-pool on the block input when ``strides == 2`` (the
    reference pools before both the shortcut and the main path; no strided conv).

    (N, in, H, W) -> (N, 4 * planes, H / strides, W / strides).
    """

    def __init__(self, in_channels, planes, channels, kernel_sizes, strides=1,
                 norm_kwargs=None, **kwargs):
        def factory(mid1, mid2, _strides, _groups):
            return ScaleAggregation(mid1, channels, kernel_sizes)
        super().__init__(in_channels, planes, sum(channels), planes * _EXPANSION, strides=1,
                         conv2_factory=factory, norm_kwargs=norm_kwargs, **kwargs)
        self.pool_input = strides
        self.out_channels = planes * _EXPANSION

    def inference_residual(self, F, x):
        """:meth:`residual` for inference (BN2 with running statistics): BN2 folded into
        the branch convs and conv3's input padded to a multiple of 16 channels with zero
        weights (see :meth:`ScaleAggregation.folded_forward`); same function."""
        out = self.relu(self.bn1(self.conv1(x)))
        bn = self.bn2
        gamma, beta, mean, var = (_param(F, p, x) for p in (
            bn.gamma, bn.beta, bn.running_mean, bn.running_var))
        scale = gamma / F.sqrt(var + bn._kwargs['eps'])
        out = self.conv2.folded_forward(F, out, scale, beta - mean * scale)
        weight = _param(F, self.conv3.weight, x)
        extra = self.conv2.padded_total() - sum(self.conv2.channels)
        if extra:
            weight = F.concat(weight, F.zeros(shape=(self.out_channels, extra, 1, 1)), dim=1)
        out = F.Convolution(out, weight, kernel=(1, 1), num_filter=self.out_channels,
                            no_bias=True)
        return self.bn3(out)

    def hybrid_forward(self, F, x):
        if self.pool_input > 1:
            x = F.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type='max')
        residual = (self.inference_residual(F, x) if self.conv2.inference_graph
                    else self.residual(x))
        return self.relu(residual + self.shortcut(x))


class ScaleNet(HybridBlock):
    """ScaleNet: ResNet stem, four stages of :class:`SABottleneck`, global average pool,
    ``fc``. (N, 3, H, W) -> (N, classes).

    Parameters
    ----------
    structure : str or list
        Shipped name, JSON path or rows ``[c1, c2, c4, c7, side]`` (one per block).
    layers : list of 4 int, optional
        Blocks per stage; inferred from the ``side`` column when omitted.
    kernel_sizes : list of rows of 4 int, optional
        Branch kernel sizes (0 for absent branches); default from ``kernel_rule``.
    kernel_rule : 'py3' or 'py2'
        How the reference's ``side / 2**i > 1`` test is evaluated (see
        :func:`kernel_sizes_for`); the golden files use 'py3'.
    input_size : int or (int, int)
        Input size the graph is planned for (re-planned on the fly for NDArray inputs).
    fast_inference : bool
        Outside training, run a graph with BN2 folded into the branch convs and the
        branch widths zero-padded to multiples of 16 (oneDNN runs odd widths several
        times slower); same function, same parameters. False: always the
        reference-layout graph.
    """

    def __init__(self, structure, layers=None, classes=1000, kernel_sizes=None,
                 kernel_rule='py3', input_size=224, fast_inference=True, norm_kwargs=None,
                 **kwargs):
        super().__init__(**kwargs)
        rows = load_structure(structure)
        layers = list(layers) if layers is not None else _layers_from_sides(rows)
        if len(layers) != 4 or sum(layers) != len(rows) or min(layers) < 1:
            raise ValueError('layers %s do not fit a structure of %d rows (need 4 stages '
                             'summing to the row count)' % (layers, len(rows)))
        if kernel_sizes is None:
            kernel_sizes = kernel_sizes_for(rows, kernel_rule)
        kernel_sizes = [list(k) for k in kernel_sizes]
        if len(kernel_sizes) != len(rows) or any(
                len(k) != 4 or any(bool(kk) != bool(c) for kk, c in zip(k, row[:4]))
                for k, row in zip(kernel_sizes, rows)):
            raise ValueError('kernel_sizes must give one row of 4 sizes per structure row, '
                             'non-zero exactly for the branches with channels')
        if not isinstance(classes, int) or classes < 1:
            raise ValueError('classes must be a positive int, got %r' % (classes,))
        self.structure = rows
        self.layers = layers
        self.kernel_sizes = kernel_sizes
        self.input_size = None
        self.fast_inference = fast_inference
        self._graph_is_inference = None
        with self.name_scope():
            self.stem = ResNetStem(64, norm_kwargs=norm_kwargs)
            in_channels, row = 64, 0
            for stage, (planes, blocks) in enumerate(zip(_WIDTHS, layers)):
                layer = nn.HybridSequential(prefix='layer%d_' % (stage + 1))
                with layer.name_scope():
                    for b in range(blocks):
                        layer.add(SABottleneck(
                            in_channels, planes, rows[row][:4], kernel_sizes[row],
                            strides=2 if (stage > 0 and b == 0) else 1,
                            norm_kwargs=norm_kwargs))
                        in_channels = planes * _EXPANSION
                        row += 1
                setattr(self, 'layer%d' % (stage + 1), layer)
            self.pool = nn.GlobalAvgPool2D()
            self.flat = nn.Flatten()
            self.fc = nn.Dense(classes, in_units=in_channels)
        self.set_input_size(input_size)

    def _blocks(self):
        for stage in range(4):
            for block in getattr(self, 'layer%d' % (stage + 1)):
                yield stage, block

    def set_input_size(self, size):
        """Plan every resize for (N, 3, H, W) inputs with ``size`` = H or (H, W); drops a
        cached hybrid graph. ``ValueError`` if the reference cannot run that size."""
        if isinstance(size, int):
            size = (size, size)
        size = tuple(int(s) for s in size)
        if len(size) != 2:
            raise ValueError('input size must be an int or (height, width), got %r' % (size,))
        if size == self.input_size:
            return
        sizes = stage_sizes(*size)
        if min(sizes[-1]) < SCALES[-1]:
            raise ValueError(
                'ScaleNet cannot run a %dx%d input: its last stage would be %dx%d, smaller '
                'than the 7x7 max-pool of the coarsest branch (the reference fails there '
                'too); use inputs of at least %d px per side'
                % (size + sizes[-1] + (min_input_size(),)))
        for stage, block in self._blocks():
            block.conv2.set_plan(sizes[stage])
        self.input_size = size
        self._clear_cached_op()

    def _use_inference_graph(self, flag):
        for _, block in self._blocks():
            block.conv2.inference_graph = flag

    def forward(self, x, *args):
        """NDArray calls re-plan for the input size and pick the graph: the padded,
        BN-folded inference graph (same numbers, faster) outside ``autograd.record`` /
        train mode, the reference-layout graph for training. Symbol calls (export
        without a forward, ``count_macs``) trace the reference-layout graph."""
        if isinstance(x, ndarray.NDArray):
            if x.ndim != 4 or x.shape[1] != 3:
                raise ValueError('ScaleNet expects (N, 3, H, W) images, got shape %s'
                                 % (x.shape,))
            self.set_input_size(x.shape[2:])
            fast = self.fast_inference and not (autograd.is_training()
                                                or autograd.is_recording())
            if fast != self._graph_is_inference:
                self._clear_cached_op()
                self._graph_is_inference = fast
            self._use_inference_graph(fast)
        else:
            self._use_inference_graph(False)
        return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flat(self.pool(x)))


# ----------------------------------------------------------------------------- registry

def scalenet(structure='scalenet50', classes=1000, layers=None, **kwargs):
    """Build a ScaleNet from any structure (shipped name, JSON path or list of rows).

    ``layers`` (blocks per stage) defaults to the ResNet depth's layout for a shipped
    structure and is inferred from the ``side`` column otherwise. See :class:`ScaleNet`
    for ``kernel_sizes``, ``kernel_rule``, ``input_size`` and ``fast_inference``.
    Returns an uninitialised (N, 3, H, W) -> (N, classes) HybridBlock.
    """
    if layers is None and isinstance(structure, str) and structure in STRUCTURE_DEPTHS:
        layers = resnet_stage_blocks(STRUCTURE_DEPTHS[structure])
    return ScaleNet(structure, layers=layers, classes=classes, **kwargs)


register_family(
    'scalenet', paper=_PAPER, reference=_REFERENCE,
    # Eli-YiLi/ScaleNet ships no training or evaluation code, so it states no pipeline:
    # the standard ImageNet one (resize 256, centre crop 224, bilinear, ImageNet mean/std)
    data_config=dict(input_size=(3, 224, 224), crop_ratio=224 / 256, interpolation='bilinear',
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    classifier='fc',
    weights="the authors' PyTorch weights (scalenet50/50_light/101/152 .pth), offered on "
            "BaiduYun only (Eli-YiLi/ScaleNet README), which we could not reach; the "
            "repository declares no licence (all rights reserved): convert them locally "
            "(python -m gluon_nets.convert). The shipped structure files: "
            "scalenet_structures/NOTICE.")

# Each model is the authors' structure of that name; ``structure=`` swaps in another one
# (its stage layout then comes with it).
_MIN_SIZE = min_input_size()


@register_model('scalenet', min_input_size=_MIN_SIZE)
def scalenet50(classes=1000, structure='scalenet50', layers=None, input_size=224, **kwargs):
    """ScaleNet-50 with the authors' neuron allocation (README top-1 err. 22.02)."""
    return scalenet(structure, classes, layers, input_size=input_size, **kwargs)


@register_model('scalenet', min_input_size=_MIN_SIZE)
def scalenet50_light(classes=1000, structure='scalenet50_light', layers=None, input_size=224,
                     **kwargs):
    """ScaleNet-50-light: ResNet-50's widths split over the scales (README top-1 err. 22.80)."""
    return scalenet(structure, classes, layers, input_size=input_size, **kwargs)


@register_model('scalenet', min_input_size=_MIN_SIZE)
def scalenet101(classes=1000, structure='scalenet101', layers=None, input_size=224, **kwargs):
    """ScaleNet-101 with the authors' neuron allocation (README top-1 err. 20.82)."""
    return scalenet(structure, classes, layers, input_size=input_size, **kwargs)


@register_model('scalenet', min_input_size=_MIN_SIZE, slow=True)
def scalenet152(classes=1000, structure='scalenet152', layers=None, input_size=224, **kwargs):
    """ScaleNet-152 with the authors' neuron allocation (README top-1 err. 20.06)."""
    return scalenet(structure, classes, layers, input_size=input_size, **kwargs)


# ----------------------------------------------------------------------------- converter

def _reference_name(ours):
    """Our structural name -> the reference's (None for bn2, which concatenates)."""
    name = ours
    if name.startswith('stem.'):
        name = name[len('stem.'):]
    for a, b in (('.gamma', '.weight'), ('.beta', '.bias'),
                 ('.running_mean', '.running_mean'), ('.running_var', '.running_var')):
        if name.endswith(a):
            return name[:-len(a)] + b
    return name


@register_converter('scalenet')
def _convert_scalenet(name, state_dict, **kwargs):
    """Reference ``pytorch/scalenet.py`` names -> ours.

    The branch kernel sizes (3x3 vs 1x1: Python 3 vs 2 division in the reference) and
    the class count are read from the checkpoint unless given; the per-branch ``bn2.i``
    arrays are concatenated into our single ``bn2``.
    """
    if 'fc.weight' in state_dict and 'classes' not in kwargs:
        kwargs['classes'] = int(state_dict['fc.weight'].shape[0])
    if 'kernel_sizes' not in kwargs:
        probe = get_model(name, **{k: v for k, v in kwargs.items() if k != 'classes'})
        kernel_sizes = [list(k) for k in probe.kernel_sizes]
        row = 0
        for stage, layers in enumerate(probe.layers):
            for b in range(layers):
                for i in range(4):
                    weight = state_dict.get('layer%d.%d.conv2.%d.weight' % (stage + 1, b, i))
                    if weight is None or not kernel_sizes[row][i]:
                        continue  # absent: reported as missing/unexpected by the plan
                    k = int(weight.shape[-1])
                    if weight.ndim != 4 or k not in (1, 3) or weight.shape[-2] != k:
                        raise ConversionError(
                            'layer%d.%d.conv2.%d.weight has shape %s; expected a 1x1 or 3x3 '
                            'kernel' % (stage + 1, b, i, tuple(weight.shape)))
                    kernel_sizes[row][i] = k
                row += 1
        kwargs['kernel_sizes'] = kernel_sizes
    net = get_model(name, **kwargs)
    mapping = {}
    for ours in net._collect_params_with_prefix():
        if '.bn2.' in ours:
            prefix, field = ours.rsplit('.bn2.', 1)
            block = net
            for part in prefix.split('.'):
                block = block._children[part]
            ref_field = _reference_name('.' + field)[1:]
            keys = tuple('%s.bn2.%d.%s' % (prefix, i, ref_field) for i in block.conv2.branches)
            mapping[ours] = (keys, _concat)
        else:
            mapping[ours] = _reference_name(ours)
    return ConversionPlan(net, mapping)


def _concat(*arrays):
    import numpy as np
    return np.concatenate(arrays)
