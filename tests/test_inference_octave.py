"""gluon_nets.inference.octave: exact rewrites of OctConv inference graphs.

Each rewrite is checked on a small hand-built graph (it fires, the graph has the
expected form, the numbers equal the traced graph's) and on a tiny OctConv net through
``optimize`` (the oneDNN partitioner now fuses every sum without the ``broadcast_add``
workaround, and the result is exact).
"""
import json

import mxnet as mx
import numpy as np
import pytest

from bn_stats import randomise_bn
from gluon_nets import get_model
from gluon_nets.inference import TOLERANCE, _unfuse_nested_sums, optimize, relative_error
from gluon_nets.inference.octave import merged_sums, octave_rewrites, shared_subexpressions

SHAPE = (2, 8, 16, 16)


def _graph(sym):
    """(graph JSON, {name: numpy}) of ``sym`` with random parameters (input ``data``)."""
    rng = np.random.RandomState(0)
    shapes, _, _ = sym.infer_shape(data=SHAPE)
    params = {name: rng.uniform(-1, 1, shape).astype(np.float32)
              for name, shape in zip(sym.list_arguments(), shapes) if name != 'data'}
    return json.loads(sym.tojson()), params


def _run(graph, params, x):
    sym = mx.sym.load_json(json.dumps(graph))
    args = {k: mx.nd.array(v) for k, v in params.items()}
    return sym.eval(ctx=mx.cpu(), data=mx.nd.array(x), **args)[0].asnumpy()


def _x():
    return np.random.RandomState(1).uniform(-1, 1, SHAPE).astype(np.float32)


def _ops(graph):
    return [n['op'] for n in graph['nodes'] if n['op'] != 'null']


def _conv(x, name, channels=8, kernel=1):
    return mx.sym.Convolution(x, num_filter=channels, kernel=(kernel, kernel),
                              pad=(kernel // 2, kernel // 2), no_bias=False, name=name)


def _octave_sum(projection):
    """high = (h2h(x) + upsample(l2h(pool(x)))) [+ shortcut conv | + x], then ReLU."""
    data = mx.sym.var('data')
    low = mx.sym.Pooling(data, kernel=(2, 2), stride=(2, 2), pool_type='avg', name='pool_a')
    up = mx.sym.UpSampling(_conv(low, 'l2h'), scale=2, sample_type='nearest', num_args=1)
    inner = _conv(data, 'h2h', kernel=3) + up
    if projection:
        low2 = mx.sym.Pooling(data, kernel=(2, 2), stride=(2, 2), pool_type='avg', name='pool_b')
        side = _conv(mx.sym.concat(mx.sym.relu(data), mx.sym.UpSampling(
            low2, scale=2, sample_type='nearest', num_args=1), dim=1), 'shortcut', kernel=3)
    else:
        side = data
    return mx.sym.relu(inner + side)


def test_equal_poolings_are_computed_once_bit_exactly():
    graph, params = _graph(_octave_sum(projection=True))
    assert _ops(graph).count('Pooling') == 2
    new, new_params, count = shared_subexpressions(graph, params)
    assert count == 1 and _ops(new).count('Pooling') == 1
    assert np.array_equal(_run(new, new_params, _x()), _run(graph, params, _x()))


def test_residual_sum_is_reassociated_so_the_conv_is_summed_last():
    graph, params = _graph(_octave_sum(projection=False))
    new, new_params, count = merged_sums(graph, params, 'data', SHAPE)
    assert count == 1
    nodes = new['nodes']
    outer = [n for n in nodes if n['op'] == 'Activation' or n['op'] == 'relu'][-1]
    root = nodes[outer['inputs'][0][0]]
    # relu(conv + (upsample + x)): the conv is a direct summand of the last sum
    assert root['op'] == 'elemwise_add'
    kinds = sorted(nodes[e[0]]['op'] for e in root['inputs'])
    assert kinds == ['Convolution', 'elemwise_add']
    inner = [nodes[e[0]] for e in root['inputs'] if nodes[e[0]]['op'] == 'elemwise_add'][0]
    assert 'Convolution' not in [nodes[e[0]]['op'] for e in inner['inputs']]
    # and the partitioner's workaround leaves this form alone
    assert _unfuse_nested_sums(json.loads(json.dumps(new))) == 0
    assert _unfuse_nested_sums(json.loads(json.dumps(graph))) == 0
    out, ref = _run(new, new_params, _x()), _run(graph, params, _x())
    assert relative_error(out, ref) <= 1e-6


def test_projection_sum_of_two_convs_becomes_one_conv_over_their_inputs():
    graph, params = _graph(_octave_sum(projection=True))
    assert _ops(graph).count('Convolution') == 3
    new, new_params, count = merged_sums(graph, params, 'data', SHAPE)
    assert count == 1
    ops = _ops(new)
    # h2h and the shortcut conv run as one (3x3, over [x, relu(x), up(pool(x))]); l2h stays
    assert ops.count('Convolution') == 2
    merged = [n for n in new['nodes'] if n['op'] == 'Convolution' and n['name'] == 'h2h'][0]
    weight = new_params[new['nodes'][merged['inputs'][1][0]]['name']]
    assert weight.shape == (8, 24, 3, 3)
    cat = new['nodes'][merged['inputs'][0][0]]
    assert cat['op'] == 'Concat' and len(cat['inputs']) == 3   # the shortcut's concat spliced
    assert _unfuse_nested_sums(json.loads(json.dumps(graph))) == 1     # the old workaround
    assert _unfuse_nested_sums(json.loads(json.dumps(new))) == 0
    out, ref = _run(new, new_params, _x()), _run(graph, params, _x())
    assert relative_error(out, ref) <= 1e-6


def test_sum_of_different_convs_is_left_as_traced():
    data = mx.sym.var('data')
    sym = mx.sym.relu((_conv(data, 'a', kernel=3) + data) + _conv(data, 'b', kernel=1))
    graph, params = _graph(sym)
    new, _, count = merged_sums(graph, params, 'data', SHAPE)
    assert count == 0 and new is graph


def test_graph_with_repeated_node_names_is_rewritten_exactly():
    # ED-Net's and LW-DNA's traced graphs name several nodes alike
    data = mx.sym.var('data')
    a = mx.sym.relu(_conv(data, 'a'), name='same')
    b = mx.sym.relu(_conv(a, 'b'), name='same')
    sym = mx.sym.relu((_conv(b, 'c') + a) + b)
    graph, params = _graph(sym)
    new, new_params, counts = octave_rewrites(graph, params, 'data', SHAPE)
    assert counts['merged_sums'] == 1
    out, ref = _run(new, new_params, _x()), _run(graph, params, _x())
    assert relative_error(out, ref) <= 1e-6


@pytest.mark.parametrize('alpha', [0.5, 0.125])
def test_octconv_net_partitions_with_every_sum_fused_and_is_exact(alpha):
    mx.random.seed(0)
    net = get_model('oct_resnet26_v1b', alpha=alpha, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    randomise_bn(net)
    fast = optimize(net, (1, 3, 32, 32), backend='MKLDNN')
    report = fast.optimize_report
    assert report['backend'] == 'MKLDNN'
    assert report['merged_sums'] > 0 and report['shared_subexpressions'] > 0
    # without the rewrite the partitioner needed the broadcast_add workaround
    assert 'sums_left_unfused' not in report
    graph = json.loads(fast._cached_graph[1].tojson())
    assert 'broadcast_add' not in _ops(graph)
    x = mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (2, 3, 32, 32)))
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE


def _pointwise_octave(low_channels):
    """relu(h2h(x) + upsample(l2h(x_l))), 1x1 convolutions, x_l = pool(conv(x))."""
    data = mx.sym.var('data')
    x_low = mx.sym.Pooling(_conv(data, 'to_low', channels=low_channels), kernel=(2, 2),
                           stride=(2, 2), pool_type='avg')
    up = mx.sym.UpSampling(_conv(x_low, 'l2h', channels=16), scale=2, sample_type='nearest',
                           num_args=1)
    return mx.sym.relu(_conv(data, 'h2h', channels=16) + up)


def test_narrow_low_part_is_upsampled_before_its_pointwise_conv_and_merged():
    from gluon_nets.inference.rewrites import upsampling_as_deconvolution
    graph, params = _graph(_pointwise_octave(low_channels=8))
    graph, params, _ = upsampling_as_deconvolution(graph, params, 'data', SHAPE)
    new, new_params, counts = octave_rewrites(graph, params, 'data', SHAPE)
    assert counts['upsampling_before_pointwise'] == 1 and counts['merged_sums'] == 1
    convs = [n for n in new['nodes'] if n['op'] == 'Convolution']
    assert len(convs) == 2            # to_low, and h2h + l2h as one over [x, up(x_low)]
    merged = [n for n in convs if n['name'] != 'to_low'][0]
    assert new_params[new['nodes'][merged['inputs'][1][0]]['name']].shape == (16, 16, 1, 1)
    deconv = [n for n in new['nodes'] if n['op'] == 'Deconvolution'][0]
    assert deconv['attrs']['num_filter'] == '8'       # upsamples the 8 low channels
    out, ref = _run(new, new_params, _x()), _run(graph, params, _x())
    assert relative_error(out, ref) <= 1e-6


def test_wide_low_part_keeps_its_low_resolution_conv():
    from gluon_nets.inference.rewrites import upsampling_as_deconvolution
    graph, params = _graph(_pointwise_octave(low_channels=48))
    graph, params, _ = upsampling_as_deconvolution(graph, params, 'data', SHAPE)
    _, _, counts = octave_rewrites(graph, params, 'data', SHAPE)
    assert counts['upsampling_before_pointwise'] == 0


def test_rewritten_octconv_graph_exports_to_every_format(tmp_path):
    # the exports are of the optimized graph: merged convolutions over concats, the
    # reassociated sums and the narrow low parts' upsampling must survive the symbol,
    # fused (partitioned), ONNX and int8 writers
    pytest.importorskip('onnxruntime')
    import symbols
    mx.random.seed(0)
    net = get_model('oct_resnet26_v1b', alpha=0.125, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    x = np.random.RandomState(3).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    expected = net(mx.nd.array(x)).asnumpy()
    calib = [np.random.RandomState(4).uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32)]
    for fmt in ('symbol', 'fused', 'onnx', 'int8'):
        info = symbols.export(net, str(tmp_path), 'oct-' + fmt, format=fmt, input_size=32,
                              optimize=True, calib_data=calib if fmt == 'int8' else None)
        if fmt == 'symbol':
            with open(info['files']['symbol']) as f:
                names = [n['name'] for n in json.load(f)['nodes']]
            assert any(n.endswith('_merged_weight') for n in names)
            out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
            assert relative_error(out, expected) <= TOLERANCE
        elif fmt == 'fused':
            assert info['checks']['fused_max_rel_err'] <= TOLERANCE
        elif fmt == 'onnx':
            model = symbols.load_onnx(info['files']['onnx'], threads=1)
            assert relative_error(model(x), expected) <= TOLERANCE
        else:
            out = symbols.load(str(tmp_path / 'oct-int8-int8'))(mx.nd.array(x)).asnumpy()
            # 8-bit activations of a random net: a wrong graph is off by ~100%
            assert out.shape == (2, 10) and relative_error(out, expected) < 0.5
