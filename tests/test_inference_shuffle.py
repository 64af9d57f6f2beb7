"""gluon_nets.inference.shuffle: exact graph rewrites for ShuffleNet / MENet in optimize.

- each rewrite fires on the traced ShuffleNet / MENet graphs (counts in optimize_report,
  operators gone from the graph) and the result equals the net (<= 1e-5);
- the dense-form path (per-group 1x1 convs as one dense conv, the shuffle folded into
  its rows, the depthwise conv padded to 16 channels) on a tiny input;
- pad_channels through depthwise convolutions, split_unaligned_depthwise, and the
  patterns merge_channel_splits must leave alone.
"""
import json

import mxnet as mx
import numpy as np
import pytest

from bn_stats import randomise_bn
from gluon_nets import get_model
from gluon_nets.inference import _symbol_block, _trace, optimize, relative_error
from gluon_nets.inference import shuffle
from gluon_nets.inference.fold import fold_batchnorm_graph, fold_constants
from gluon_nets.inference.rewrites import output_shapes, pad_channels
from gluon_nets.nn import ChannelShuffle


def _net(name):
    mx.random.seed(0)
    net = get_model(name)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    randomise_bn(net)
    return net


def _input(side, batch=2, channels=3):
    return mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (batch, channels, side, side)))


def _ops(block_or_graph):
    graph = block_or_graph
    if not isinstance(graph, dict):
        graph = json.loads(block_or_graph._cached_graph[1].tojson())
    return [n['op'] for n in graph['nodes'] if n['op'] != 'null']


def _folded_graph(net, x):
    """(graph, params, input name) of ``net`` traced and BN-folded, as optimize has it
    before the shuffle rewrites."""
    name, sym, params, _ = _trace(net, x)
    graph, params = fold_constants(json.loads(sym.tojson()), params, {name})
    graph, params, _ = fold_batchnorm_graph(graph, params)
    return graph, params, name


def _run(graph, params, name, x):
    return _symbol_block(json.dumps(graph), name, params, mx.cpu(), None, x)(x).asnumpy()


def test_shuffle_permutation_is_the_channel_shuffle():
    x = _input(3, channels=12)
    out = ChannelShuffle(3)(x).asnumpy()
    np.testing.assert_array_equal(out, x.asnumpy()[:, shuffle.shuffle_permutation(12, 3)])


def test_shufflenet_rewrites_fire_in_optimize_and_are_exact():
    net = _net('shufflenet_1x_g3')
    x = _input(32)
    with mx.autograd.predict_mode():
        ref = net(x).asnumpy()
    fast = optimize(net, (1, 3, 32, 32), backend=None)
    report = fast.optimize_report
    # 3 downsampling concats; stage 2's 8 units x (compress, expand) per-group 1x1
    # convs (160 -> 40 per group: 8-aligned) as grouped convs; every split depthwise
    # conv merged (and the unaligned ones split again); the shuffle after the stem's
    # dense compress folded into it
    assert report['concats_4d'] == 3
    assert report['pointwise_merged'] == 16
    assert report['depthwise_merged'] == 12
    assert report['depthwise_split'] == report['depthwise_merged']
    assert report['shuffles_folded'] == 1
    ops = _ops(fast)
    assert 'expand_dims' not in ops and ops.count('SwapAxis') == 15
    assert relative_error(fast(x).asnumpy(), ref) <= 1e-5


def test_menet_rewrites_fire_in_optimize_and_are_exact():
    net = _net('menet108_8x1_g3')
    x = _input(32)
    with mx.autograd.predict_mode():
        ref = net(x).asnumpy()
    fast = optimize(net, (1, 3, 32, 32), backend=None)
    report = fast.optimize_report
    assert report['concats_4d'] == 3 and report['shuffles_folded'] == 1
    assert report['depthwise_merged'] == report['depthwise_split'] == 16
    assert relative_error(fast(x).asnumpy(), ref) <= 1e-5


def test_dense_form_folds_the_shuffle_and_pads_the_depthwise_conv():
    """The path optimize takes on 224 px ShuffleNet's stage 1 (>= 28 x 28 px), forced on
    every per-group 1x1 conv of a 32 px input: each becomes dense, so each shuffle after
    one folds into it, and it is padded (60 -> 64, 120 -> 128) with its depthwise conv
    and the expand's columns."""
    net = _net('shufflenet_1x_g3')
    x = _input(32)
    with mx.autograd.predict_mode():
        ref = net(x).asnumpy()
    graph, params, name = _folded_graph(net, x)
    graph, params, report = shuffle.shuffle_rewrites(
        graph, params, name, x.shape, form=lambda *args: 'dense')
    assert report['concats_as_sum'] == 1     # stage 1's 216 + 24 (the others: 16-aligned)
    assert report['pointwise_merged'] == 2 * 8 + 2 * 4 - 1   # stages 1-2; stem compress dense
    assert report['shuffles_folded'] == 1 + 3 + 8            # stem unit + the dense compresses
    assert 'SwapAxis' in _ops(graph)                          # stage 3: grouped, kept
    graph, params, padded = pad_channels(graph, params, name, x.shape, multiple=16)
    # the 60-wide (stage 1) and 120-wide (2) compresses; the stem (24 -> 32): its
    # downsampling concat became a sum, whose 0/1 placement conv takes the padding
    assert padded == 4 + 8 + 1
    widths = [int(n['attrs']['num_filter']) for n in graph['nodes']
              if n['op'] == 'Convolution' and n['attrs'].get('num_group') not in (None, '1')
              and n['attrs']['num_group'] == n['attrs']['num_filter']]
    assert widths.count(64) == 4 and widths.count(128) == 8   # their depthwise convs too
    graph, params, split = shuffle.split_unaligned_depthwise(graph, params)
    assert split == 0                        # all aligned now (stage 3: 240)
    assert relative_error(_run(graph, params, name, x), ref) <= 1e-5


def _conv_graph(widths, depthwise_channels, side=5):
    """data -> conv 3x3 (3 -> widths[0]) -> relu -> depthwise 3x3 -> conv 1x1 (-> widths[1])."""
    data = mx.sym.var('data')
    y = mx.sym.Convolution(data, num_filter=widths[0], kernel=(3, 3), pad=(1, 1), name='c0')
    y = mx.sym.Activation(y, act_type='relu', name='r0')
    y = mx.sym.Convolution(y, num_filter=depthwise_channels, num_group=depthwise_channels,
                           kernel=(3, 3), pad=(1, 1), name='dw')
    y = mx.sym.Convolution(y, num_filter=widths[1], kernel=(1, 1), name='c1')
    graph = json.loads(y.tojson())
    rng = np.random.RandomState(3)
    arg_shapes, _, _ = y.infer_shape(data=(2, 3, side, side))
    params = {n: rng.uniform(-1, 1, s).astype(np.float32)
              for n, s in zip(y.list_arguments(), arg_shapes) if n != 'data'}
    return graph, params


def test_pad_channels_pads_a_depthwise_reader_exactly():
    graph, params = _conv_graph((12, 8), 12)
    x = _input(5)
    ref = _run(graph, params, 'data', x)
    padded_graph, padded_params, count = pad_channels(graph, params, 'data', x.shape, 16)
    assert count == 1                  # c0 (12 -> 16) through the depthwise (c1: the output)
    dw = [n for n in padded_graph['nodes'] if n['name'] == 'dw'][0]
    assert dw['attrs']['num_filter'] == dw['attrs']['num_group'] == '16'
    assert padded_params['dw_weight'].shape == (16, 1, 3, 3)
    assert not padded_params['dw_weight'][12:].any() and not padded_params['dw_bias'][12:].any()
    assert relative_error(_run(padded_graph, padded_params, 'data', x), ref) <= 1e-6
    assert params['dw_weight'].shape == (12, 1, 3, 3)   # the input dict is not modified


def test_split_unaligned_depthwise_is_exact_and_leaves_aligned_ones():
    graph, params = _conv_graph((57, 8), 57)
    x = _input(5)
    ref = _run(graph, params, 'data', x)
    split_graph, split_params, count = shuffle.split_unaligned_depthwise(graph, params)
    assert count == 1
    groups = sorted(int(n['attrs']['num_group']) for n in split_graph['nodes']
                    if n['op'] == 'Convolution' and n['attrs'].get('num_group', '1') != '1')
    assert groups == [9, 48]
    np.testing.assert_array_equal(_run(split_graph, split_params, 'data', x), ref)
    aligned, aligned_params = _conv_graph((32, 8), 32)
    assert shuffle.split_unaligned_depthwise(aligned, aligned_params)[2] == 0


def _split_convs_graph(bounds, channels=12, extra_reader=False):
    """data -> conv (3 -> channels) -> [slice_axis(begin, end) -> dense 1x1 conv (4 out)]
    for each (begin, end) of ``bounds`` -> Concat."""
    data = mx.sym.var('data')
    x = mx.sym.Convolution(data, num_filter=channels, kernel=(1, 1), name='c0')
    outs = []
    for k, (begin, end) in enumerate(bounds):
        part = mx.sym.slice_axis(x, axis=1, begin=begin, end=end)
        outs.append(mx.sym.Convolution(part, num_filter=4, kernel=(1, 1), name='p%d' % k))
        if extra_reader and k == 0:
            outs.append(mx.sym.Activation(part, act_type='relu'))
    y = mx.sym.concat(*outs, dim=1)
    rng = np.random.RandomState(4)
    arg_shapes, _, _ = y.infer_shape(data=(2, 3, 4, 4))
    params = {n: rng.uniform(-1, 1, s).astype(np.float32)
              for n, s in zip(y.list_arguments(), arg_shapes) if n != 'data'}
    return json.loads(y.tojson()), params


@pytest.mark.parametrize('form', ['grouped', 'dense'])
def test_per_group_convs_merge_into_one_exact_conv(form):
    graph, params = _split_convs_graph([(0, 4), (4, 8), (8, 12)])
    x = _input(4)
    ref = _run(graph, params, 'data', x)
    shapes = output_shapes(graph, 'data', x.shape, params)
    merged, merged_params, count = shuffle.merge_channel_splits(
        graph, params, shapes, kinds=('grouped',), form=lambda *args: form)
    assert count == 1
    assert _ops(merged) == ['Convolution', 'Convolution']
    conv = [n for n in merged['nodes'] if n['op'] == 'Convolution'][-1]
    assert conv['attrs']['num_group'] == ('3' if form == 'grouped' else '1')
    assert relative_error(_run(merged, merged_params, 'data', x), ref) <= 1e-6


@pytest.mark.parametrize('bounds,extra_reader', [
    ([(0, 4), (4, 8)], False),              # does not cover the 12 channels
    ([(0, 4), (8, 12), (4, 8)], False),     # not in channel order
    ([(0, 4), (4, 8), (8, 12)], True),      # a slice is read by something else too
])
def test_merge_leaves_other_concats_alone(bounds, extra_reader):
    graph, params = _split_convs_graph(bounds, extra_reader=extra_reader)
    shapes = output_shapes(graph, 'data', (2, 3, 4, 4), params)
    _, _, count = shuffle.merge_channel_splits(graph, params, shapes, kinds=('grouped',),
                                               form=lambda *args: 'grouped')
    assert count == 0


def _concat_graph(conv_width, pool_width, dense=True):
    """data -> [conv 1x1 (-> conv_width), avgpool(conv 1x1 (-> pool_width))] -> Concat."""
    data = mx.sym.var('data')
    a = mx.sym.Convolution(data, num_filter=conv_width, kernel=(1, 1),
                           num_group=1 if dense else 2, name='a')
    b = mx.sym.Pooling(mx.sym.Convolution(data, num_filter=pool_width, kernel=(1, 1), name='b'),
                       kernel=(3, 3), pad=(1, 1), pool_type='avg')
    y = mx.sym.Activation(mx.sym.concat(a, b, dim=1), act_type='relu')
    rng = np.random.RandomState(6)
    arg_shapes, _, _ = y.infer_shape(data=(2, 4, 5, 5))
    params = {n: rng.uniform(-1, 1, s).astype(np.float32)
              for n, s in zip(y.list_arguments(), arg_shapes) if n != 'data'}
    return json.loads(y.tojson()), params


def test_unaligned_concat_becomes_an_exact_sum():
    graph, params = _concat_graph(20, 12)
    x = _input(5, channels=4)
    ref = _run(graph, params, 'data', x)
    shapes = output_shapes(graph, 'data', x.shape, params)
    summed, summed_params, count = shuffle.unaligned_concat_as_sum(graph, params, shapes)
    assert count == 1
    assert 'Concat' not in _ops(summed) and 'elemwise_add' in _ops(summed)
    np.testing.assert_array_equal(_run(summed, summed_params, 'data', x), ref)   # bit-exact
    # aligned offsets, or no dense convolution of its own among the parts: left alone
    for width, dense in ((16, True), (20, False)):
        graph, params = _concat_graph(width, 12, dense)
        shapes = output_shapes(graph, 'data', x.shape, params)
        assert shuffle.unaligned_concat_as_sum(graph, params, shapes)[2] == 0


def test_shuffle_not_fed_by_an_own_conv_is_left_alone():
    """A shuffle of the input (no convolution to fold it into) stays."""
    data = mx.sym.var('data')
    y = mx.sym.reshape(mx.sym.swapaxes(mx.sym.reshape(data, shape=(0, -4, 3, -1, -2)), 1, 2),
                       shape=(0, -3, -2))
    y = mx.sym.Convolution(y, num_filter=4, kernel=(1, 1), name='c')
    graph = json.loads(y.tojson())
    params = {'c_weight': np.ones((4, 6, 1, 1), np.float32), 'c_bias': np.zeros(4, np.float32)}
    assert shuffle.fold_channel_shuffle(graph, params)[2] == 0


def test_rewritten_shufflenet_exports_to_every_format(tmp_path):
    """At 112 px ShuffleNet's stage 1 maps are 14 x 14: optimize takes the dense path
    (dense 1x1 convs, shuffles folded, depthwise convs padded). The symbol, fused, ONNX
    and int8 exports of that graph must still work (the float ones exact)."""
    pytest.importorskip('onnxruntime')
    import symbols
    net = get_model('shufflenet_1x_g3', classes=10)
    net.initialize(mx.init.Xavier())
    x = _input(112, batch=2).asnumpy()
    with mx.autograd.predict_mode():
        ref = net(mx.nd.array(x)).asnumpy()
    fast = optimize(net, (1, 3, 112, 112), backend=None)
    assert fast.optimize_report['pointwise_merged'] > 0 and \
        fast.optimize_report['shuffles_folded'] > 1 and \
        fast.optimize_report['concats_as_sum'] == 1      # stage 1: 216 + 24 channels
    calib = [np.random.RandomState(5).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)]
    for fmt in ('symbol', 'fused', 'onnx', 'int8'):
        info = symbols.export(net, str(tmp_path), 'shufflenet-' + fmt, format=fmt,
                              input_size=112, optimize=True,
                              calib_data=calib if fmt == 'int8' else None,
                              num_calib_examples=2)
        if fmt == 'int8':
            out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
            assert out.shape == ref.shape and np.isfinite(out).all()
        elif fmt == 'onnx':
            out = symbols.load_onnx(info['files']['onnx'], threads=1)(x)
            assert relative_error(out, ref) <= 1e-5
        else:
            out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
            assert relative_error(out, ref) <= 1e-5
