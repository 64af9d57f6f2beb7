"""gluon_nets.inference.grouped: a Deconvolution's bias moved out of it and few-channel
groups merged (block-diagonal weights), as optimize applies them: the rewrites fire,
and the numbers stay those of the net (tiny shapes; speed is in bench/inference.py)."""
import json

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from gluon_nets import get_model
from gluon_nets.inference import TOLERANCE, optimize, relative_error
from gluon_nets.inference.grouped import (_merge_weight, deconvolution_bias_into_sum,
                                          merge_groups, merged_group_count)


def _randomise(net, seed=1):
    """Random weights and non-trivial BN statistics (folded into biases by optimize)."""
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        if name.endswith(('running_var', 'gamma')):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif name.endswith(('running_mean', 'beta', 'bias')):
            param.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, param.shape)))
        else:
            param.set_data(mx.nd.array(rng.normal(0, 0.3, param.shape)))


class _EDLike(HybridBlock):
    """x -> proj (1x1) -> encoder (3x3/2, ``groups``, channels -> width) -> ReLU ->
    decoder (3x3/2 Deconvolution, ``groups``, width -> channels, ``adj``) -> BN; output
    ReLU(conv3(x) + proj + decoded), the ED-Net block's shape, at any size."""

    def __init__(self, channels=64, width=16, groups=8, adj=(1, 1), sum_partner=True, **kw):
        super().__init__(**kw)
        self._sum = sum_partner
        with self.name_scope():
            self.proj = nn.Conv2D(channels, 1, in_channels=3)
            self.conv3 = nn.Conv2D(channels, 1, in_channels=3)
            self.enc = nn.Conv2D(width, 3, strides=2, padding=1, groups=groups,
                                 in_channels=channels, use_bias=False)
            self.enc_bn = nn.BatchNorm(in_channels=width)
            self.dec = nn.Conv2DTranspose(channels, 3, strides=2, padding=1,
                                          output_padding=adj, groups=groups,
                                          in_channels=width, use_bias=False)
            self.dec_bn = nn.BatchNorm(in_channels=channels)

    def hybrid_forward(self, F, x):
        proj = self.proj(x)
        decoded = self.dec_bn(self.dec(F.relu(self.enc_bn(self.enc(proj)))))
        if not self._sum:
            return F.relu(decoded)
        return F.relu(self.conv3(x) + (proj + decoded))


def _net(**kwargs):
    net = _EDLike(**kwargs)
    net.initialize()
    _randomise(net)
    return net


def _graph_ops(block):
    graph = json.loads(block._cached_graph[1].tojson())
    return [n for n in graph['nodes'] if n['op'] != 'null']


@pytest.mark.parametrize('size,adj', [((16, 16), (1, 1)), ((15, 15), (0, 0)),
                                      ((16, 15), (1, 0)), ((9, 10), (0, 1))],
                         ids=['even-adj1', 'odd-adj0', 'mixed', 'small-mixed'])
def test_ed_like_block_gets_bias_moved_and_groups_merged_exactly(size, adj):
    net = _net(adj=adj)
    shape = (1, 3) + size
    fast = optimize(net, shape, backend=None)
    report = fast.optimize_report
    assert report['deconv_bias_moved'] == 1 and report['deconv_bias_as_conv'] == 0
    assert report['groups_merged'] == 2        # encoder 8 -> 2 per group, decoder 2 -> 8
    ops = _graph_ops(fast)
    deconv = [n for n in ops if n['op'] == 'Deconvolution']
    assert len(deconv) == 1 and deconv[0]['attrs']['no_bias'] == 'True'
    assert len(deconv[0]['inputs']) == 2
    # 8 groups of 2 -> 8 channels: merged 8x (to 16 -> 64 in one group)
    assert deconv[0]['attrs']['num_group'] == '1'
    enc = [n for n in ops if n['op'] == 'Convolution' and n['attrs'].get('stride') == '(2, 2)']
    assert [n['attrs']['num_group'] for n in enc] == ['1']
    x = mx.nd.array(np.random.RandomState(3).uniform(-1, 1, (2,) + shape[1:]))
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE


def test_deconv_bias_without_a_sum_partner_becomes_a_ones_depthwise_conv():
    net = _net(sum_partner=False, groups=4, width=64)      # 16 -> 16 per group: no merge
    fast = optimize(net, (1, 3, 12, 12), backend=None)
    report = fast.optimize_report
    assert report['deconv_bias_moved'] == 0 and report['deconv_bias_as_conv'] == 1
    ops = _graph_ops(fast)
    deconv = [n for n in ops if n['op'] == 'Deconvolution']
    assert deconv[0]['attrs']['no_bias'] == 'True'
    bias_conv = [n for n in ops if n['name'].endswith('_bias')]
    assert len(bias_conv) == 1 and bias_conv[0]['attrs']['num_group'] == '64'
    x = mx.nd.array(np.random.RandomState(4).uniform(-1, 1, (2, 3, 12, 12)))
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE


def test_merge_rule():
    conv, deconv = 'Convolution', 'Deconvolution'
    assert merged_group_count(conv, 32, 8, 2) == 4          # ED layer1 encoder: GEMM -> 16 out
    assert merged_group_count(conv, 32, 16, 4) == 32        # 4 per group: kept
    assert merged_group_count(conv, 32, 4, 4) == 32         # ResNeXt 32x4d: kept
    assert merged_group_count(conv, 64, 1, 1) == 64         # depthwise: never
    assert merged_group_count(deconv, 32, 2, 8) == 4        # ED layer1 decoder
    assert merged_group_count(deconv, 32, 4, 16) == 8       # layer2
    assert merged_group_count(deconv, 32, 8, 32) == 16      # layer3
    assert merged_group_count(deconv, 32, 16, 64) == 32     # layer4: kept
    assert merged_group_count(deconv, 12, 2, 2) == 2        # 12 groups: by 6 (<= 8, divides)
    assert merged_group_count(conv, 7, 1, 2) == 1           # a prime count: all or nothing
    assert merged_group_count(conv, 1, 2, 2) == 1


@pytest.mark.parametrize('op,groups,new_groups', [('Convolution', 12, 4), ('Convolution', 6, 1),
                                                  ('Deconvolution', 12, 3),
                                                  ('Deconvolution', 8, 1)])
def test_merged_weights_compute_the_same_layer(op, groups, new_groups):
    rng = np.random.RandomState(5)
    cin, cout = groups * 2, groups * 3
    x = mx.nd.array(rng.uniform(-1, 1, (2, cin, 7, 9)))
    if op == 'Convolution':
        weight = rng.normal(size=(cout, cin // groups, 3, 3)).astype(np.float32)
    else:
        weight = rng.normal(size=(cin, cout // groups, 3, 3)).astype(np.float32)
    merged = _merge_weight(weight, groups, new_groups)
    layer = getattr(mx.nd, op)
    kwargs = dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=cout, no_bias=True)
    if op == 'Deconvolution':
        kwargs['adj'] = (1, 0)
    ref = layer(x, mx.nd.array(weight), num_group=groups, **kwargs).asnumpy()
    out = layer(x, mx.nd.array(merged), num_group=new_groups, **kwargs).asnumpy()
    assert relative_error(out, ref) <= 1e-6
    assert merged.shape[1] == weight.shape[1] * groups // new_groups


def test_graph_rewrites_leave_unrelated_graphs_alone():
    # a depthwise deconvolution without bias and an ungrouped conv: nothing to do
    data = mx.sym.var('data')
    y = mx.sym.Deconvolution(data, mx.sym.var('w'), kernel=(2, 2), stride=(2, 2), num_filter=8,
                             num_group=8, no_bias=True)
    y = mx.sym.Convolution(y, mx.sym.var('w2'), mx.sym.var('b2'), kernel=(1, 1), num_filter=4)
    graph = json.loads(y.tojson())
    params = {'w': np.ones((8, 1, 2, 2), np.float32), 'w2': np.ones((4, 8, 1, 1), np.float32),
              'b2': np.zeros(4, np.float32)}
    assert deconvolution_bias_into_sum(graph, params)[2:] == (0, 0)
    assert merge_groups(graph, params)[2] == 0


def test_ed_resnet_optimized_has_no_deconv_bias_and_is_exact():
    mx.random.seed(0)
    net = get_model('ed_resnet50_b')
    net.initialize(mx.init.Xavier(magnitude=2.0))
    _randomise(net)
    fast = optimize(net, (1, 3, 32, 32), backend=None)
    report = fast.optimize_report
    assert report['deconv_bias_moved'] == 16 and report['deconv_bias_as_conv'] == 0
    assert report['groups_merged'] > 0
    assert all(n['attrs']['no_bias'] == 'True' for n in _graph_ops(fast)
               if n['op'] == 'Deconvolution')
    x = mx.nd.array(np.random.RandomState(6).uniform(-1, 1, (2, 3, 32, 32)))
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE


def test_optimized_ed_block_exports_to_onnx_exactly_and_to_int8(tmp_path):
    # the rewritten graph (grouped Deconvolution without bias, fewer groups, a 1x1
    # depthwise bias conv) must still be what the ONNX writer and onnxruntime take
    pytest.importorskip('onnxruntime')
    import symbols
    for label, kwargs in (('sum', {}), ('alone', {'sum_partner': False, 'groups': 4,
                                                   'width': 64})):
        net = _net(**kwargs)
        x = np.random.RandomState(7).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
        net.hybridize()
        expected = net(mx.nd.array(x)).asnumpy()
        info = symbols.export(net, str(tmp_path), 'ed-' + label, format='onnx', input_size=16,
                              in_channels=3, optimize=True)
        model = symbols.load_onnx(info['files']['onnx'], threads=1)
        assert relative_error(model(x), expected) <= 1e-5
    # and the int8 export (MXNet's quantization pass) of the same rewritten graph
    calib = np.random.RandomState(8).uniform(-1, 1, (4, 3, 16, 16)).astype(np.float32)
    info = symbols.export(_net(), str(tmp_path), 'ed-int8', format='int8', input_size=16,
                          in_channels=3, optimize=True, calib_data=calib)
    assert info['checks']['int8_top1_agreement_on_calibration'] >= 0.5
