"""One exact inference path for every family: :func:`optimize`.

``optimize(net, input_shape)`` returns a static-graph ``SymbolBlock`` computing what
``net`` computes (checked: max |fast - net| / max |net| <= 1e-5 on a random input of
``input_shape``), built for speed on MXNet's oneDNN CPU backend:

1. the family's own exact rewrite, when it has one (:data:`FAMILY_REWRITES`, keyed by
   registry family): LW-DNA's learned widths padded to the SIMD width (``pad_widths``);
   ScaleNet's padded, BN-folded branch graph and OctConv's merged octave paths are the
   default inference graphs of those nets already, and are what gets traced;
2. the net traced to one Symbol (its inference graph, outside ``autograd.record``);
3. every value computed from parameters alone (ScaleNet pads its weights with a
   ``Concat`` on every call) computed once (:func:`.fold.fold_constants`), then
   every BatchNorm that follows a convolution folded into it, generically at the graph
   level (:func:`gluon_nets.inference.fold.fold_batchnorm_graph`), so a family with no
   rewrite of its own (MENet, ED-Net, OctConv, ...) gets it too;
4. exact operator rewrites for oneDNN (:mod:`.rewrites`): every nearest ``UpSampling``
   as a depthwise ``Deconvolution`` of ones (bit-exact; no reorders around it), and odd
   convolution widths padded with zero channels to the SIMD multiple where every reader
   of them can take the padding (depthwise convolutions included); for the MENet family
   (ShuffleNet, MENet) first (:mod:`.shuffle`): per-group 1x1 convolutions in the form
   oneDNN runs fastest (dense block-diagonal on large maps, grouped at 8-aligned
   widths), split depthwise convolutions merged (split again at 16 channels where
   padding did not align them), channel shuffles folded into the dense convolution
   that feeds them, ``concat_channels``' 5-D concats as 4-D ones; multi-scale
   aggregations (ScaleNet's SA blocks, :mod:`.scale`): branch concats at 16-aligned
   widths with no ``slice_axis``, the ReLU after the concat moved into the branches
   (fused into their convolutions), small bilinear resize chains as a one-hot grouped
   conv + grouped deconvolution, 3x3 convolutions on 1x1 maps as 1x1; OctConv graphs
   (:mod:`.octave`): equal poolings computed once, narrow low parts upsampled before
   their 1x1 l->h convolution, and every sum written ``conv + (rest)`` with the
   convolutions of one kind merged into one over their concatenated inputs (so oneDNN
   fuses each residual sum + ReLU, no ``broadcast_add`` workaround); grouped
   (transposed) convolutions (:mod:`.grouped`, any family): a ``Deconvolution``'s bias
   (oneDNN's deconvolution with a bias is 10-100x slower) moved into a convolution it
   is summed with, else into a 1x1 depthwise convolution after it, and groups of fewer
   than 4 (convolution) / 16 (deconvolution) channels merged with block-diagonal
   weights (ED-Net's encoder-decoder path: 0.40x -> ~0.8x of ``ed=False``);
5. MXNet's oneDNN partitioner (conv + bias + ReLU (+ add) fusion, ``optimize_for``)
   where it is exact and faster: ``backend='auto'`` (default) times both graphs on the
   input shape and keeps the faster one (it was slower on MENet's graphs;
   bench/inference.py).

The input net is left as it was (only hybridized, as ``export`` does); the result has
no BatchNorm statistics left to train: it is for inference only.
"""
import json
import time

import numpy as np

from .fold import fold_batchnorm_graph, fold_constants
from .octave import octave_rewrites
from .grouped import optimize_grouped
from .rewrites import pad_channels, upsampling_as_deconvolution
from .scale import aligned_branch_concat, one_pixel_convs_as_1x1, small_resize_as_deconvolution
from .shuffle import shuffle_rewrites, split_unaligned_depthwise

__all__ = ['optimize', 'FAMILY_REWRITES', 'family_of', 'relative_error', 'TOLERANCE']

TOLERANCE = 1e-5   # max |optimized - net| / max |net|


def _pad_lwdna(net, input_shape, ctx):
    """LW-DNA's shrunk widths (65, 57, 983, ...) to multiples of the SIMD width: zero
    kernels and zero BN rows keep every padded channel at 0 (exact)."""
    from gluon_nets.models.lwdna import LWDNAResNet, cpu_widths, pad_widths
    if not isinstance(net, LWDNAResNet):
        return net, None
    multiple = _simd_channels()
    # multiples of 16 (AVX-512), and 32 or 48 for the bottlenecks' 3x3 convs (oneDNN 2.4's
    # brgconv kernels): see cpu_widths
    widths = cpu_widths(net.config, net.depth, multiple)
    if widths == net.config:
        return net, None
    return pad_widths(net, ctx=ctx, config=widths), 'lwdna.pad_widths(cpu_widths(%d))' % multiple


# family -> rewrite(net, input_shape, ctx) -> (net, description or None). A rewrite
# returns a NEW net (never edits the caller's) computing the same function.
FAMILY_REWRITES = {'lwdna': _pad_lwdna}


_EVERY_NET = '*'   # a graph rewrite that runs on every net


def _graph_rewrites(input_name, shape, multiple):
    """The exact graph rewrites ``optimize`` runs after BatchNorm folding, in order,
    as (families, report key, rewrite): ``families`` are the registry families it
    runs for (None in it: nets of no family) or _EVERY_NET; ``report key`` names its
    count in ``optimize_report``, or is None when it returns a dict of counts;
    ``rewrite(graph, params)`` returns (graph, params, count or counts).

    The pattern rewrites of one family are exact on any graph but were timed on that
    family's graphs alone, so they run only there (ScaleNet's also on nets of no
    family)."""
    return [
        (('menet',), None, lambda g, p: shuffle_rewrites(g, p, input_name, shape)),
        (_EVERY_NET, None, optimize_grouped),
        (_EVERY_NET, 'upsampling_as_deconv',
         lambda g, p: upsampling_as_deconvolution(g, p, input_name, shape)),
        (('scalenet', None), 'concats_aligned',
         lambda g, p: aligned_branch_concat(g, p, multiple=multiple)),
        (('scalenet', None), 'resizes_as_deconv',
         lambda g, p: small_resize_as_deconvolution(g, p, input_name, shape)),
        (('scalenet', None), 'one_pixel_convs_as_1x1',
         lambda g, p: one_pixel_convs_as_1x1(g, p, input_name, shape)),
        (_EVERY_NET, 'convs_padded',
         lambda g, p: pad_channels(g, p, input_name, shape, multiple=multiple)),
        # the depthwise convs shuffle_rewrites merged and padding left unaligned: split again
        (('menet',), 'depthwise_split', split_unaligned_depthwise),
        (('octconv',), None, lambda g, p: octave_rewrites(g, p, input_name, shape)),
    ]


def _simd_channels():
    """16 (channels per AVX-512 register) where the CPU has AVX-512, else 8 (AVX2):
    oneDNN's blocked direct-convolution kernels want channel counts of that multiple."""
    try:
        with open('/proc/cpuinfo') as f:
            return 16 if ' avx512f' in f.read() else 8
    except OSError:
        return 8


def family_of(net):
    """The registry family of ``net``'s class (``gluon_nets.models.<family>...``), or
    None for a net defined elsewhere."""
    parts = type(net).__module__.split('.')
    if parts[:2] == ['gluon_nets', 'models'] and len(parts) > 2:
        return parts[2]
    return None


def relative_error(out, ref):
    """max |out - ref| / max |ref| of two numpy arrays."""
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(out - ref).max()) / scale


def _context(net, ctx):
    import mxnet as mx
    if ctx is not None:
        return ctx
    for param in net.collect_params().values():
        try:
            return param.list_ctx()[0]
        except RuntimeError:   # deferred init
            break
    return mx.cpu()


def _trace(net, x):
    """(input name, output Symbol, {name: numpy array}) of ``net``'s inference graph on
    the NDArray ``x`` (the graph the net's cached op runs)."""
    from mxnet import autograd
    net.hybridize(static_alloc=True, static_shape=True)
    with autograd.predict_mode():
        ref = net(x)
    inputs, out = net._cached_graph
    if len(inputs) != 1:
        raise ValueError('optimize expects a net with one input, got %d' % len(inputs))
    wanted = set(out.list_arguments()) | set(out.list_auxiliary_states())
    params = {name: param.data(x.context).asnumpy()
              for name, param in net.collect_params().items() if name in wanted}
    return inputs[0].name, out, params, ref


def _symbol_block(graph_text, input_name, params, ctx, backend, x):
    """A static SymbolBlock of the graph JSON ``graph_text`` with ``params`` (numpy) on
    ``ctx``, partitioned for ``backend`` (None: plain) on the example input ``x``."""
    import mxnet as mx
    block = mx.gluon.SymbolBlock(mx.sym.load_json(graph_text), mx.sym.var(input_name))
    for name, param in block.collect_params().items():
        if name not in params:
            raise ValueError('optimize: graph variable %r has no value' % name)
        param._load_init(mx.nd.array(params[name], ctx=ctx), ctx)
        param.grad_req = 'null'
    if backend is None:
        block.hybridize(static_alloc=True, static_shape=True)
    else:
        block.optimize_for(x, backend=backend, static_alloc=True, static_shape=True)
    for _ in range(2):    # build the graph; static memory is allocated on the first calls
        block(x).wait_to_read()
    return block


def _unfuse_nested_sums(graph):
    """Turn ``elemwise_add(elemwise_add(..), Convolution(..))`` into the same sum written
    as ``broadcast_add`` (same numbers), in place; returns how many.

    Why: MXNet 1.9.1's oneDNN conv + sum fusion mixes up the inputs of the fused
    convolutions when a convolution is summed with a sum that is itself a conv + sum
    (OctConv blocks: ``(h2h + upsample(l2h)) + shortcut``): ``optimize_for`` then fails
    with "Shape inconsistent" on an unrelated convolution. ``broadcast_add`` is not a
    fusion pattern, so only those few sums stay unfused.
    """
    nodes = graph['nodes']
    count = 0
    for node in nodes:
        if node['op'] == 'elemwise_add':
            ins = [nodes[e[0]] for e in node['inputs']]
            if sorted(n['op'] for n in ins) == ['Convolution', 'elemwise_add'] and any(
                    nodes[e[0]]['op'] == 'Convolution' for n in ins if n['op'] == 'elemwise_add'
                    for e in n['inputs']):
                # (conv + x) + conv only: conv + (x + y) with no conv in x + y fuses fine
                node['op'] = 'broadcast_add'
                count += 1
    return count


def _cpu_seconds(blocks, x, runs=5):
    """{name: least process CPU seconds of ``runs`` calls on ``x``} of ``blocks``
    ({name: block}), called in turns (CPU time: what other load disturbs least)."""
    best = {name: float('inf') for name in blocks}
    for _ in range(runs):
        for name, block in blocks.items():
            start = time.process_time()
            block(x).wait_to_read()
            best[name] = min(best[name], time.process_time() - start)
    return best


def optimize(net, input_shape=(1, 3, 224, 224), ctx=None, backend='auto', check=True):
    """A fast inference form of the initialised HybridBlock ``net``.

    Parameters
    ----------
    net : HybridBlock
        Maps (N, C, H, W) float32 images to its outputs; initialised (trained or not).
    input_shape : tuple
        (N, C, H, W) of the trace and check input. The graph is static: other batch
        sizes work (MXNet re-plans), other H, W only where the net's graph is
        size-independent (ScaleNet and ED-Net plan per size: optimize per size).
    ctx : mx.Context, optional
        Where the result lives; default: the context of ``net``'s parameters.
    backend : 'auto', None or 'MKLDNN'
        'MKLDNN' also runs MXNet's oneDNN partitioner (``optimize_for``: conv + bias +
        ReLU (+ add) fused) on the folded graph; 'auto' builds both and keeps the one
        that runs ``input_shape`` in less CPU time (and the plain one when the
        partitioner fails or is not exact; it was slower on MENet's); None: the plain
        folded graph only.
    check : bool
        Compare with ``net`` on a random input of ``input_shape``; ``ValueError`` when the
        max relative error exceeds :data:`TOLERANCE`.

    Returns
    -------
    A hybridized (static_alloc, static_shape) ``mx.gluon.SymbolBlock`` with the same
    outputs, and an ``optimize_report`` dict attribute: ``family``, ``rewrites`` (the
    family rewrites applied), ``bn_folded``, ``bn_left``, ``backend`` (the one kept),
    ``upsampling_as_deconv`` and ``convs_padded`` (how many of each rewrite; OctConv
    graphs also ``shared_subexpressions``, ``upsampling_before_pointwise``,
    ``merged_sums``; every graph ``deconv_bias_moved``, ``deconv_bias_as_conv``,
    ``groups_merged`` (:mod:`.grouped`); ``concats_aligned``, ``resizes_as_deconv``,
    ``one_pixel_convs_as_1x1`` (:mod:`.scale`)),
    ``max_rel_err`` and, for 'auto', ``cpu_seconds`` of both candidates or
    ``backend_failed`` (why the partitioned graph was not kept).
    """
    import mxnet as mx
    ctx = _context(net, ctx)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError('input_shape must be (N, C, H, W) with positive sides, got %r'
                         % (input_shape,))
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.uniform(-1, 1, shape).astype(np.float32), ctx=ctx)
    from mxnet import autograd
    # the reference first, as the net runs now: a net with deferred-init parameters
    # gets them here, imperatively (initialising them inside the hybridized trace
    # gave a reference 0.14 off the traced graph on gluoncv's resnet18_v1b)
    with autograd.predict_mode():
        ref = net(x) if check else None
    refs = ref if isinstance(ref, (list, tuple)) else [ref]
    family = family_of(net)
    rewrites = []
    source = net
    rewrite = FAMILY_REWRITES.get(family)
    if rewrite is not None:
        source, done = rewrite(net, shape, ctx)
        if done:
            rewrites.append(done)
    was_active = net._active
    try:
        input_name, sym, params, _ = _trace(source, x)
    finally:
        if not was_active and source is net:
            net.hybridize(False)
    graph, params = fold_constants(json.loads(sym.tojson()), params, {input_name})
    graph, params, folded = fold_batchnorm_graph(graph, params)
    counts = {}
    for families, key, rewrite_graph in _graph_rewrites(input_name, shape, _simd_channels()):
        if families is not _EVERY_NET and family not in families:
            if key is not None:
                counts[key] = 0
            continue
        graph, params, done = rewrite_graph(graph, params)
        counts.update(done if key is None else {key: done})
    left = sum(1 for n in graph['nodes'] if n['op'] in ('BatchNorm', '_contrib_BatchNormWithReLU'))
    report = {'family': family, 'rewrites': rewrites, 'bn_folded': folded, 'bn_left': left,
              **counts, 'backend': None, 'max_rel_err': None}

    def error_of(block):
        out = block(x)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return max(relative_error(o.asnumpy(), r.asnumpy()) for o, r in zip(outs, refs))

    graph_text = json.dumps(graph)
    block = _symbol_block(graph_text, input_name, params, ctx, None, x)
    if check:
        report['max_rel_err'] = error_of(block)
        if not report['max_rel_err'] <= TOLERANCE:
            raise ValueError('optimize: the optimized graph differs from the net by %.3g '
                             'relative (tolerance %g)' % (report['max_rel_err'], TOLERANCE))
    if backend in ('MKLDNN', 'auto'):
        try:
            try:
                fused = _symbol_block(graph_text, input_name, params, ctx, 'MKLDNN', x)
            except mx.base.MXNetError:
                nested = _unfuse_nested_sums(graph)
                if not nested:
                    raise
                fused = _symbol_block(json.dumps(graph), input_name, params, ctx, 'MKLDNN', x)
                report['sums_left_unfused'] = nested
            fused_err = error_of(fused) if check else None
        except mx.base.MXNetError as err:
            if backend == 'MKLDNN':
                raise ValueError('optimize: the oneDNN partitioner fails on this graph: %s'
                                 % str(err).strip().splitlines()[0]) from None
            report['backend_failed'] = str(err).strip().splitlines()[0][:300]
            fused = None
        if fused is not None and check and not fused_err <= TOLERANCE:
            if backend == 'MKLDNN':
                raise ValueError('optimize: the oneDNN-fused graph differs from the net by %.3g '
                                 'relative (tolerance %g)' % (fused_err, TOLERANCE))
            report['backend_failed'] = 'max rel err %.3g' % fused_err
            fused = None
        if fused is not None:
            if backend == 'auto':
                report['cpu_seconds'] = _cpu_seconds({'plain': block, 'MKLDNN': fused}, x)
            # the fused graph unless the plain one is clearly faster: timing a few calls
            # on a loaded machine is noisy, and fusion was the faster one on most graphs
            if backend == 'MKLDNN' or \
                    report['cpu_seconds']['plain'] > 0.9 * report['cpu_seconds']['MKLDNN']:
                block, report['backend'] = fused, 'MKLDNN'
                report['max_rel_err'] = fused_err
    elif backend is not None:
        raise ValueError("backend must be None, 'MKLDNN' or 'auto', got %r" % (backend,))
    block.optimize_report = report
    return block
