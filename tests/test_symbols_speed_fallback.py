"""The fused export keeps the oneDNN-partitioned graph only where it is faster than the
plain one (symbols.fused, partition='auto'), and says which it kept; the int8 export's
layer exclusion and percentile calibration (symbols.int8).

Speed is never asserted: the timings that decide are injected (``time_graphs``
monkeypatched), so both branches are taken on any machine.
"""
import json

import numpy as np
import pytest

mx = pytest.importorskip('mxnet')

import symbols  # noqa: E402
import symbols.fused as fused_format  # noqa: E402
import symbols.int8 as int8_format  # noqa: E402
from symbols.checks import ExportError  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

SIZE = 16
CLASSES = 5


def _net():
    """conv-BN-ReLU x3 (the second a residual add), global pooling, dense: enough for
    the partitioner to fuse several convolutions, and for int8 to quantize them."""
    mx.random.seed(4)

    class Small(mx.gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.stem = nn.Conv2D(8, 3, padding=1, in_channels=3, use_bias=False)
                self.bn0 = nn.BatchNorm(in_channels=8)
                self.conv1 = nn.Conv2D(8, 3, padding=1, in_channels=8, use_bias=False)
                self.bn1 = nn.BatchNorm(in_channels=8)
                self.conv2 = nn.Conv2D(16, 1, in_channels=8)
                self.fc = nn.Dense(CLASSES, in_units=16)

        def hybrid_forward(self, F, x):
            relu = lambda y: F.Activation(y, act_type='relu')   # noqa: E731  (as nn.Activation)
            x = relu(self.bn0(self.stem(x)))
            x = relu(self.bn1(self.conv1(x)) + x)
            x = relu(self.conv2(x))
            return self.fc(F.Pooling(x, global_pool=True, pool_type='avg', kernel=(1, 1)))

    net = Small()
    net.initialize(mx.init.Xavier(magnitude=2.0))
    rng = np.random.RandomState(0)
    for name, param in net.collect_params().items():
        if name.endswith('running_var'):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif name.endswith(('running_mean', 'beta')):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
    return net


def _x(batch=3, seed=1):
    return np.random.RandomState(seed).uniform(-2, 2, (batch, 3, SIZE, SIZE)).astype(np.float32)


def _logits(net, x):
    net.hybridize(static_alloc=True, static_shape=True)
    return net(mx.nd.array(x)).asnumpy()


def _ops(symbol_file):
    with open(symbol_file) as f:
        return [n['op'] for n in json.load(f)['nodes']]


def _inject(monkeypatch, plain, partitioned, relu_apart=None):
    """Make ``time_graphs`` return these seconds (``relu_apart``: of the partitioned
    graph with the ReLUs left out of the convolutions; default: as ``partitioned``)."""
    calls = []

    def fake(blocks, x, runs=fused_format.TIMING_RUNS):
        assert sorted(blocks) == ['partitioned', 'partitioned_relu_apart', 'plain']
        calls.append(tuple(x.shape))
        return {'plain': plain, 'partitioned': partitioned,
                'partitioned_relu_apart': partitioned if relu_apart is None else relu_apart}
    monkeypatch.setattr(fused_format, 'time_graphs', fake)
    return calls


def test_fused_keeps_the_partitioned_graph_when_it_is_faster(tmp_path, monkeypatch):
    calls = _inject(monkeypatch, plain=1.0, partitioned=0.5)
    net = _net()
    info = symbols.export(net, str(tmp_path), 'small', format='fused', input_size=SIZE, batch=2)
    assert calls == [(2, 3, SIZE, SIZE)]            # timed once, on the check input
    checks = info['checks']
    assert checks['fused_kept'] == 'partitioned' and info['partitioned'] is True
    assert checks['fused_cpu_seconds'] == {'plain': 1.0, 'partitioned': 0.5,
                                           'partitioned_relu_apart': 0.5}
    assert checks['fused_timing']['margin'] == fused_format.MARGIN
    assert '_sg_mkldnn_conv' in _ops(info['files']['symbol'])
    with open(info['files']['deploy']) as f:
        assert json.load(f)['partitioned'] is True
    x = _x()
    out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
    assert symbols.relative_error(out, _logits(net, x)) <= fused_format.TOLERANCE


def test_fused_keeps_the_relu_apart_partition_when_it_is_the_fastest(tmp_path, monkeypatch):
    # MENet-228's case: the conv+ReLU fusion makes the partitioned graph slower than
    # plain, the partition with the ReLUs left apart is faster than both
    _inject(monkeypatch, plain=1.0, partitioned=2.4, relu_apart=0.9)
    net = _net()
    info = symbols.export(net, str(tmp_path), 'small', format='fused', input_size=SIZE)
    assert info['checks']['fused_kept'] == 'partitioned_relu_apart' and info['partitioned']
    # the convolutions fused (with BN / sum), every ReLU left as its own operator
    ops = _ops(info['files']['symbol'])
    assert '_sg_mkldnn_conv' in ops and ops.count('Activation') == 3
    assert info['checks']['fused_ops'].get('_sg_mkldnn_conv', 0) >= 2
    with open(info['files']['symbol']) as f:
        attrs = [n.get('attrs', {}) for n in json.load(f)['nodes']]
    assert not any('true' in (a.get('with_act'), a.get('with_postsum_act')) for a in attrs)
    x = _x()
    out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
    assert symbols.relative_error(out, _logits(net, x)) <= fused_format.TOLERANCE


@pytest.mark.parametrize('partitioned', [1.2, 0.99])   # slower, and faster within the margin
def test_fused_falls_back_to_the_plain_graph_when_partitioning_does_not_win(
        tmp_path, monkeypatch, partitioned):
    _inject(monkeypatch, plain=1.0, partitioned=partitioned)
    net = _net()
    info = symbols.export(net, str(tmp_path), 'small', format='fused', input_size=SIZE)
    symbols.export(net, str(tmp_path), 'small', format='symbol', input_size=SIZE)
    checks = info['checks']
    assert checks['fused_kept'] == 'plain' and info['partitioned'] is False
    assert checks['fused_cpu_seconds'] == {'plain': 1.0, 'partitioned': partitioned,
                                           'partitioned_relu_apart': partitioned}
    # what the partitioner made is still recorded, but the file is the plain export
    assert checks['fused_ops'].get('_sg_mkldnn_conv', 0) >= 2
    ops = _ops(info['files']['symbol'])
    assert not any(op.startswith('_sg_') for op in ops)
    assert ops == _ops(str(tmp_path / 'small-symbol.json'))
    with open(info['files']['deploy']) as f:
        deploy = json.load(f)
    assert deploy['format'] == 'fused' and deploy['partitioned'] is False
    block = symbols.load(str(tmp_path / 'small-fused'))
    assert block.deploy_info['checks']['fused_kept'] == 'plain'
    x = _x()
    for _ in range(2):
        assert np.array_equal(block(mx.nd.array(x)).asnumpy(), _logits(net, x))


def test_fused_always_partitions_without_timing(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError('partition=always must not time the graphs')
    monkeypatch.setattr(fused_format, 'time_graphs', never)
    info = symbols.export(_net(), str(tmp_path), 'small', format='fused', input_size=SIZE,
                          partition='always')
    assert info['checks']['fused_kept'] == 'partitioned' and info['partitioned'] is True
    assert 'fused_cpu_seconds' not in info['checks']
    assert '_sg_mkldnn_conv' in _ops(info['files']['symbol'])
    with pytest.raises(ValueError, match='partition'):
        symbols.export(_net(), str(tmp_path), 'other', format='fused', input_size=SIZE,
                       partition='sometimes')


def test_fused_keeps_the_plain_graph_when_the_partitioner_fails(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ExportError('the oneDNN partitioner (optimize_for MKLDNN) fails on this graph: x')
    monkeypatch.setattr(fused_format, '_partitioned', broken)
    net = _net()
    info = symbols.export(net, str(tmp_path), 'small', format='fused', input_size=SIZE)
    assert info['checks']['fused_kept'] == 'plain' and info['partitioned'] is False
    assert 'fails on this graph' in info['checks']['fused_partition_failed']
    assert info['checks']['fused_max_rel_err'] == 0.0     # the plain graph kept
    x = _x()
    out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
    assert np.array_equal(out, _logits(net, x))
    with pytest.raises(ExportError, match='fails on this graph'):
        symbols.export(net, str(tmp_path), 'other', format='fused', input_size=SIZE,
                       partition='always')


def test_time_graphs_measures_every_block():
    calls = {'a': 0, 'b': 0}

    def block(name):
        def run(x):
            calls[name] += 1
            return x
        return run
    seconds = fused_format.time_graphs({'a': block('a'), 'b': block('b')}, mx.nd.ones((1,)),
                                       runs=3)
    assert set(seconds) == {'a', 'b'} and all(0 <= s < 1 for s in seconds.values())
    assert calls['a'] == calls['b'] >= 4           # warm-up + 3 samples each, interleaved


# ----------------------------------------------------------------------------- int8

def _quantized(symbol_file):
    """{node name: op} of the convolutions of an int8 graph, and the set of those
    quantized (name prefix 'quantized_')."""
    with open(symbol_file) as f:
        nodes = json.load(f)['nodes']
    convs = [n for n in nodes if n['op'] == '_sg_mkldnn_conv']
    return convs, {n['name'] for n in convs if n['name'].startswith('quantized_')}


def test_int8_excluded_layers_stay_float(tmp_path):
    net = _net()
    calib = _x(32, seed=7)
    common = dict(format='int8', input_size=SIZE, calib_data=calib, num_calib_examples=32)
    info = symbols.export(net, str(tmp_path), 'all', exclude_layers=[], **common)
    convs, quantized = _quantized(info['files']['symbol'])
    assert len(convs) == 3 and len(quantized) == 3 and info['checks']['int8_excluded_layers'] == {}
    info = symbols.export(net, str(tmp_path), 'first', exclude_layers=['first-conv'], **common)
    convs, quantized = _quantized(info['files']['symbol'])
    # the first convolution (reading the image) is a float32 oneDNN conv; the others int8
    assert len(convs) == 3 and len(quantized) == 2
    [first] = info['checks']['int8_excluded_layers']['first-conv']
    assert first in {n['name'] for n in convs} and first not in quantized
    info = symbols.export(net, str(tmp_path), 'two', exclude_layers=['first-convs=2'], **common)
    assert len(info['checks']['int8_excluded_layers']['first-convs=2']) == 2
    assert len(_quantized(info['files']['symbol'])[1]) == 1
    # the default keeps the first two convolutions float32 (int8.DEFAULT_EXCLUDE)
    info = symbols.export(net, str(tmp_path), 'default', **common)
    assert list(info['checks']['int8_excluded_layers']) == list(int8_format.DEFAULT_EXCLUDE)
    assert len(_quantized(info['files']['symbol'])[1]) == 1
    info = symbols.export(net, str(tmp_path), 'both',
                          exclude_layers=['last-conv', 'first-conv'], **common)
    assert len(_quantized(info['files']['symbol'])[1]) == 1
    x = _x(4, seed=9)
    out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
    assert symbols.relative_error(out, _logits(net, x)) < 0.2
    with pytest.raises(ValueError, match='no_such_layer'):
        symbols.export(net, str(tmp_path), 'bad', exclude_layers=['no_such_layer'], **common)


def test_int8_exclude_by_plain_graph_name(tmp_path):
    net = _net()
    plain = symbols.export(net, str(tmp_path), 'plain', input_size=SIZE)
    with open(plain['files']['symbol']) as f:
        conv_names = [n['name'] for n in json.load(f)['nodes'] if n['op'] == 'Convolution']
    mapping = int8_format.resolve_excluded(plain['files']['symbol'], [conv_names[1]])
    layers = int8_format.quantizable_layers(plain['files']['symbol'])
    holder = [name for name, op, inner in layers if conv_names[1] in [n['name'] for n in inner]]
    assert mapping == {conv_names[1]: holder[:1]} and holder[0].startswith('sg_mkldnn_conv')
    with pytest.raises(ValueError, match='first-convs=N'):
        int8_format.resolve_excluded(plain['files']['symbol'], ['first-convs=x'])


def test_percentile_collector_thresholds_match_numpy():
    import ctypes
    from mxnet.base import _LIB, NDArrayHandle, check_call
    collector = int8_format._PercentileCollector(percentile=99.0, cap=1000)
    rng = np.random.RandomState(0)
    batches = [rng.normal(0, 1, (4, 50)).astype(np.float32) for _ in range(3)]
    sources = [mx.nd.array(arr) for arr in batches]   # alive while the collector reads
    for src in sources:
        # as MXNet's monitor calls it: a new handle the collector takes over
        handle = NDArrayHandle()
        check_call(_LIB.MXShallowCopyNDArray(src.handle, ctypes.byref(handle)))
        collector.collect(b'layer', handle)
    values = np.concatenate([b.ravel() for b in batches])     # 600 values, 6 beyond 99%
    low, high = collector.min_max_dict['layer']
    assert high == pytest.approx(np.sort(values)[::-1][6])
    assert low == pytest.approx(np.sort(values)[6])
    assert high < values.max() and low > values.min()


def test_int8_rejects_unknown_options(tmp_path):
    common = dict(format='int8', input_size=SIZE, calib_data=_x(8), num_calib_examples=8)
    with pytest.raises(ValueError, match='calib_mode'):
        symbols.export(_net(), str(tmp_path), 'a', calib_mode='median', **common)
    with pytest.raises(ValueError, match='quantized_dtype'):
        symbols.export(_net(), str(tmp_path), 'b', quantized_dtype='int4', **common)


@pytest.mark.parametrize('argv, flag', [
    (['--partition', 'always'], '--partition'),
    (['--int8-exclude', 'first-conv'], '--int8-exclude'),
    (['--quantized-dtype', 'int8'], '--quantized-dtype'),
])
def test_cli_refuses_options_of_another_format(tmp_path, capsys, argv, flag):
    import importlib
    export_cli = importlib.import_module('symbols.export')
    rc = export_cli.main(['--model', 'mobilenet_0.25x', '--out', str(tmp_path)] + argv)
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error:') and flag in err[0]
