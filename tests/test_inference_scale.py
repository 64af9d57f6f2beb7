"""gluon_nets.inference.scale: exact rewrites of ScaleNet's scale aggregation in optimize.

Two SA blocks at 14 and 7 px (a 14x14 input: seconds) cover every branch kind of
ScaleNet-50 at 224 px: nearest x2 / x7 (depthwise deconvolutions of ones), bilinear
3 -> 14 and 3 -> 7 (repeat / edge pad / average pool chains), a 3x3 conv on a 1x1 map,
odd branch widths (sliced from zero-padded convs). Each rewrite must fire and the
optimized graph must equal the net.
"""
import json

import mxnet as mx
import numpy as np
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from bn_stats import randomise_bn
from gluon_nets.inference import TOLERANCE, optimize, relative_error
from gluon_nets.inference.rewrites import output_shapes
from gluon_nets.inference.scale import (aligned_branch_concat, one_pixel_convs_as_1x1,
                                        small_resize_as_deconvolution)
from gluon_nets.models.scalenet import SABottleneck, kernel_sizes_for


class TwoSABlocks(HybridBlock):
    """stem 3x3 conv -> SA block at 14x14 -> SA block with 2x2 pool at 7x7 -> pool, fc."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        rows = [[5, 7, 3, 9, 14], [6, 11, 4, 2, 7]]
        kernels = kernel_sizes_for(rows)
        with self.name_scope():
            self.stem = nn.Conv2D(16, 3, padding=1, in_channels=3)
            self.block1 = SABottleneck(16, 8, rows[0][:4], kernels[0], strides=1)
            self.block2 = SABottleneck(32, 8, rows[1][:4], kernels[1], strides=2)
            self.pool = nn.GlobalAvgPool2D()
            self.fc = nn.Dense(10, in_units=32)
        self.block1.conv2.set_plan((14, 14))
        self.block2.conv2.set_plan((7, 7))

    def use_inference_graph(self, flag):
        self.block1.conv2.inference_graph = self.block2.conv2.inference_graph = flag

    def hybrid_forward(self, F, x):
        return self.fc(self.pool(self.block2(self.block1(self.stem(x)))))


def _net(inference_graph=True):
    mx.random.seed(0)
    net = TwoSABlocks()
    net.initialize(mx.init.Xavier(magnitude=2.0))
    randomise_bn(net)
    net.use_inference_graph(inference_graph)
    return net


def _input(batch=2):
    return mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (batch, 3, 14, 14)))


def _graph(block):
    return json.loads(block._cached_graph[1].tojson())


def test_sa_blocks_optimize_exactly_with_every_scale_rewrite():
    net = _net()
    x = _input()
    ref = net(x).asnumpy()
    fast = optimize(net, (1, 3, 14, 14), backend=None)
    report = fast.optimize_report
    # both concats aligned; bilinear 3->14 (block 1, s=4) and 3->7 (block 2, s=2) as
    # deconvolutions; block 2's 3x3 conv on the 1x1 map (s=4) as a 1x1 conv
    assert report['concats_aligned'] == 2, report
    assert report['resizes_as_deconv'] == 2, report
    assert report['one_pixel_convs_as_1x1'] == 1, report
    assert relative_error(fast(x).asnumpy(), ref) <= TOLERANCE
    graph = _graph(fast)
    ops = [n['op'] for n in graph['nodes']]
    for gone in ('slice_axis', 'repeat', 'Pad', 'UpSampling'):
        assert gone not in ops, gone
    assert all(n['attrs'].get('pool_type') == 'max' for n in graph['nodes']
               if n['op'] == 'Pooling' and n['attrs'].get('global_pool') != 'True'), \
        'an average pool of a resize chain is left'
    # every concat input a multiple of 16 channels, so every offset is one too
    shapes = output_shapes(graph, 'data', (1, 3, 14, 14), _params(fast))
    for node in graph['nodes']:
        if node['op'] == 'Concat':
            widths = [shapes[graph['nodes'][e[0]]['name']][1] for e in node['inputs']]
            assert all(w % 16 == 0 for w in widths), widths
    # the ReLU after the concat moved into the branches (one per branch)
    for node in graph['nodes']:
        if node['op'] == 'Concat':
            reader = [n for n in graph['nodes'] if any(
                graph['nodes'][e[0]] is node for e in n['inputs'])]
            assert [n['op'] for n in reader] == ['Convolution']


def test_reference_layout_graph_is_left_exact():
    # the training / Symbol graph (BN after a concat of flattened views) matches none of
    # the patterns; optimize must still be exact on it
    net = _net(inference_graph=False)
    x = _input()
    fast = optimize(net, (1, 3, 14, 14), backend=None)
    assert fast.optimize_report['concats_aligned'] == 0
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE


def _params(block):
    return {name: p.data().asnumpy() for name, p in block.collect_params().items()}


def test_fused_form_of_the_rewritten_sa_blocks_is_exact():
    net = _net()
    x = _input()
    fast = optimize(net, (1, 3, 14, 14), backend='MKLDNN')
    assert fast.optimize_report['backend'] == 'MKLDNN'
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE


# ----------------------------------------------------------------------------- unit graphs

def _run(graph, params, x):
    sym = mx.sym.load_json(json.dumps(graph))
    args = {name: mx.nd.array(params[name]) for name in sym.list_arguments() if name != 'data'}
    return sym.eval(ctx=mx.cpu(), data=mx.nd.array(x), **args)[0].asnumpy()


def _branch_graph(share_branch=False):
    """data -> conv a (16, zero rows past 5) -> slice 5 ; data -> pool -> conv b (7)
    -> nearest x2 (repeat twice) ; concat -> relu -> conv c. ``share_branch``: conv b's
    output is also a graph output (so its width must not change)."""
    data = mx.sym.var('data')
    a = mx.sym.Convolution(data, num_filter=16, kernel=(3, 3), pad=(1, 1), name='a')
    a = mx.sym.slice_axis(a, axis=1, begin=0, end=5, name='a_slice')
    b = mx.sym.Convolution(mx.sym.Pooling(data, kernel=(2, 2), stride=(2, 2), pool_type='max'),
                           num_filter=7, kernel=(3, 3), pad=(1, 1), name='b')
    up = mx.sym.repeat(mx.sym.repeat(b, repeats=2, axis=2), repeats=2, axis=3)
    out = mx.sym.Convolution(mx.sym.relu(mx.sym.concat(a, up, dim=1)), num_filter=6,
                             kernel=(1, 1), name='c')
    if share_branch:
        out = mx.sym.Group([out, b])
    rng = np.random.RandomState(0)
    params = {'a_weight': rng.randn(16, 4, 3, 3).astype(np.float32),
              'a_bias': rng.randn(16).astype(np.float32),
              'b_weight': rng.randn(7, 4, 3, 3).astype(np.float32),
              'b_bias': rng.randn(7).astype(np.float32),
              'c_weight': rng.randn(6, 12, 1, 1).astype(np.float32),
              'c_bias': rng.randn(6).astype(np.float32)}
    params['a_weight'][5:] = 0
    params['a_bias'][5:] = 0
    return json.loads(out.tojson()), params


def test_branch_concat_is_aligned_and_exact():
    graph, params = _branch_graph()
    x = np.random.RandomState(1).uniform(-1, 1, (2, 4, 8, 8)).astype(np.float32)
    new, new_params, count = aligned_branch_concat(graph, params)
    assert count == 1
    assert new_params['c_weight'].shape == (6, 32, 1, 1)       # 5 -> 16, 7 -> 16 columns
    assert new_params['b_weight'].shape[0] == 16
    assert params['c_weight'].shape == (6, 12, 1, 1)           # the input is left as it was
    ops = [n['op'] for n in new['nodes']]
    assert 'slice_axis' not in ops and ops.count('Activation') == 2   # one ReLU per branch
    assert relative_error(_run(new, new_params, x), _run(graph, params, x)) <= 1e-6


def test_branch_read_elsewhere_blocks_the_alignment():
    graph, params = _branch_graph(share_branch=True)
    new, new_params, count = aligned_branch_concat(graph, params)
    assert count == 0 and new is graph


def test_small_resize_chain_becomes_two_convolutions_exactly():
    # conv on a 3x3 map -> bilinear 3 -> 7 as the model builds it (repeat, edge pad, avg pool)
    from gluon_nets.models.scalenet import _linear_resize_plan
    length, pad, stride = _linear_resize_plan(3, 7)
    data = mx.sym.var('data')
    y = mx.sym.Convolution(data, num_filter=5, kernel=(3, 3), pad=(1, 1), name='a')
    y = mx.sym.repeat(y, repeats=length, axis=2)
    y = mx.sym.pad(y, mode='edge', pad_width=(0, 0, 0, 0, pad, pad, 0, 0))
    y = mx.sym.Pooling(y, kernel=(length, 1), stride=(stride, 1), pool_type='avg')
    y = mx.sym.repeat(y, repeats=length, axis=3)
    y = mx.sym.pad(y, mode='edge', pad_width=(0, 0, 0, 0, 0, 0, pad, pad))
    y = mx.sym.Pooling(y, kernel=(1, length), stride=(1, stride), pool_type='avg')
    y = mx.sym.relu(y)
    graph = json.loads(y.tojson())
    rng = np.random.RandomState(0)
    params = {'a_weight': rng.randn(5, 4, 3, 3).astype(np.float32),
              'a_bias': rng.randn(5).astype(np.float32)}
    x = rng.uniform(-1, 1, (2, 4, 3, 3)).astype(np.float32)
    new, new_params, count = small_resize_as_deconvolution(graph, params, 'data', x.shape)
    assert count == 1
    ops = [n['op'] for n in new['nodes'] if n['op'] != 'null']
    assert ops == ['Convolution', 'Convolution', 'Deconvolution', 'relu']
    out = _run(new, new_params, x)
    assert out.shape == (2, 5, 7, 7)
    assert relative_error(out, _run(graph, params, x)) <= 1e-6
    # a map larger than max_pixels is left alone
    assert small_resize_as_deconvolution(graph, params, 'data', x.shape, max_pixels=8)[2] == 0


def test_conv_on_a_one_pixel_map_keeps_its_centre_tap():
    data = mx.sym.var('data')
    y = mx.sym.Convolution(data, num_filter=5, kernel=(3, 3), pad=(1, 1), name='a')
    graph = json.loads(y.tojson())
    rng = np.random.RandomState(0)
    params = {'a_weight': rng.randn(5, 4, 3, 3).astype(np.float32),
              'a_bias': rng.randn(5).astype(np.float32)}
    x = rng.uniform(-1, 1, (2, 4, 1, 1)).astype(np.float32)
    new, new_params, count = one_pixel_convs_as_1x1(graph, params, 'data', x.shape)
    assert count == 1 and new_params['a_weight'].shape == (5, 4, 1, 1)
    assert relative_error(_run(new, new_params, x), _run(graph, params, x)) <= 1e-6
    # on a 2x2 map every tap matters: left alone
    assert one_pixel_convs_as_1x1(graph, params, 'data', (2, 4, 2, 2))[2] == 0


def test_scalenet_family_gets_the_rewrites():
    # optimize runs them for the scalenet family (gated by family): every SA block of a
    # real ScaleNet at its smallest input
    from gluon_nets import get_model
    mx.random.seed(0)
    net = get_model('scalenet50_light')
    net.initialize(mx.init.Xavier(magnitude=2.0))
    fast = optimize(net, (1, 3, 221, 221), backend=None)
    report = fast.optimize_report
    assert report['concats_aligned'] == 16, report
    assert report['resizes_as_deconv'] > 0 and report['one_pixel_convs_as_1x1'] > 0, report
    ops = [n['op'] for n in _graph(fast)['nodes']]
    assert 'slice_axis' not in ops and 'repeat' not in ops and 'Pad' not in ops
    x = mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (1, 3, 221, 221)))
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE
