"""The foundation itself: registry, converter, profile counters, golden generator."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn

from conftest import ROOT, SHARED
import golden
from gluon_nets import model_zoo
from gluon_nets.convert import (ConversionError, ConversionPlan, convert_state_dict,
                                normalise_state_dict, register_converter)
from gluon_nets.model_zoo import _CONVERTERS
from gluon_nets.model_zoo import (ModelConstructionError, get_model, get_model_info,
                                  list_models, register_model)
from gluon_nets.nn import ChannelShuffle, SqueezeExcite
from gluon_nets.profile import count_macs, count_params


class TinyNet(nn.HybridBlock):
    """conv3x3(3->8) -> BN -> relu -> global pool -> dense(classes)."""

    def __init__(self, classes=1000, width=8, **kwargs):
        super().__init__(**kwargs)
        if width <= 0:
            raise ValueError('width must be positive, got %d' % width)
        with self.name_scope():
            self.conv = nn.Conv2D(width, 3, padding=1, use_bias=False, in_channels=3)
            self.bn = nn.BatchNorm(in_channels=width)
            self.pool = nn.GlobalAvgPool2D()
            self.fc = nn.Dense(classes, in_units=width)

    def hybrid_forward(self, F, x):
        return self.fc(self.pool(F.relu(self.bn(self.conv(x)))))


@pytest.fixture
def tiny_family():
    """Registers family 'tinytest' (model tinytest_net) and its converter, then removes them."""
    model_zoo.register_family('tinytest', classifier='fc')
    register_model('tinytest', name='tinytest_net')(TinyNet)

    @register_converter('tinytest')
    def _convert(name, state_dict, **kwargs):
        net = get_model(name, **kwargs)
        mapping = {'conv.weight': 'features.conv.weight', 'bn.gamma': 'features.bn.weight',
                   'bn.beta': 'features.bn.bias', 'bn.running_mean': 'features.bn.running_mean',
                   'bn.running_var': 'features.bn.running_var',
                   'fc.weight': 'head.weight', 'fc.bias': 'head.bias'}
        return ConversionPlan(net, mapping)
    yield 'tinytest_net'
    del model_zoo._REGISTRY['tinytest_net']
    del model_zoo._FAMILIES['tinytest']
    del _CONVERTERS['tinytest']


def _reference_weights(width=8, classes=10):
    rng = np.random.RandomState(0)
    return {'features.conv.weight': rng.randn(width, 3, 3, 3).astype('f'),
            'features.bn.weight': rng.rand(width).astype('f'),
            'features.bn.bias': rng.randn(width).astype('f'),
            'features.bn.running_mean': rng.randn(width).astype('f'),
            'features.bn.running_var': rng.rand(width).astype('f') + 0.5,
            'features.bn.num_batches_tracked': np.zeros((), 'int64'),
            'head.weight': rng.randn(classes, width).astype('f'),
            'head.bias': rng.randn(classes).astype('f')}


# ---------------------------------------------------------------- registry

def test_unknown_model_names_close_matches(tiny_family):
    with pytest.raises(ValueError, match=r"unknown model 'tinytest_nte'.*tinytest_net"):
        get_model('tinytest_nte')


def test_bad_kwargs_name_model_and_constraint(tiny_family):
    with pytest.raises(ModelConstructionError, match=r'tinytest_net.*width must be positive'):
        get_model('tinytest_net', width=-1)
    with pytest.raises(ModelConstructionError, match=r'tinytest_net.*bad arguments.*alpha'):
        get_model('tinytest_net', alpha=0.5)


def test_registry_lists_and_describes(tiny_family):
    assert 'tinytest_net' in list_models()
    assert list_models('tinytest') == ['tinytest_net']
    info = get_model_info('TinyTest_Net')
    assert info.family == 'tinytest' and info.description.startswith('conv3x3')
    with pytest.raises(ValueError, match='registered twice'):
        register_model('tinytest', name='tinytest_net')(TinyNet)


def test_pretrained_missing_says_how_to_convert(tiny_family, tmp_path):
    with pytest.raises(FileNotFoundError, match=r'python -m gluon_nets.convert --model tinytest_net'):
        get_model('tinytest_net', pretrained=True, root=str(tmp_path))


def test_pretrained_loads_converted_weights(tiny_family, tmp_path):
    net = convert_state_dict('tinytest_net', _reference_weights(), classes=10)
    path = model_zoo.pretrained_path('tinytest_net', root=str(tmp_path))
    net.save_parameters(path)
    loaded = get_model('tinytest_net', classes=10, pretrained=True, root=str(tmp_path))
    x = mx.nd.random.uniform(shape=(2, 3, 8, 8))
    np.testing.assert_array_equal(loaded(x).asnumpy(), net(x).asnumpy())


# ---------------------------------------------------------------- converter

def test_convert_reproduces_reference_computation(tiny_family):
    ref = _reference_weights()
    net = convert_state_dict('tinytest_net', ref, classes=10)
    x = np.random.RandomState(1).randn(2, 3, 8, 8).astype('f')
    conv = mx.nd.Convolution(mx.nd.array(x), mx.nd.array(ref['features.conv.weight']),
                             kernel=(3, 3), pad=(1, 1), num_filter=8, no_bias=True).asnumpy()
    mean, var = ref['features.bn.running_mean'], ref['features.bn.running_var']
    bn = ((conv - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
          * ref['features.bn.weight'][:, None, None] + ref['features.bn.bias'][:, None, None])
    expected = np.maximum(bn, 0).mean(axis=(2, 3)) @ ref['head.weight'].T + ref['head.bias']
    np.testing.assert_allclose(net(mx.nd.array(x)).asnumpy(), expected, rtol=1e-4, atol=1e-4)


def test_convert_inference_only_allocates_no_gradients(tiny_family):
    net = convert_state_dict('tinytest_net', _reference_weights(), classes=10, grad_req='null')
    assert {p.grad_req for p in net.collect_params().values()} == {'null'}
    trainable = convert_state_dict('tinytest_net', _reference_weights(), classes=10)
    assert trainable.conv.weight.grad_req == 'write'


def test_convert_reports_all_problems_together(tiny_family):
    ref = _reference_weights()
    del ref['features.bn.weight']                       # missing
    ref['features.extra.weight'] = np.zeros(3, 'f')     # unexpected
    ref['head.weight'] = np.zeros((10, 9), 'f')         # wrong shape
    with pytest.raises(ConversionError) as err:
        convert_state_dict('tinytest_net', ref, classes=10)
    text = str(err.value)
    assert '3 problem(s)' in text
    assert 'missing: checkpoint key features.bn.weight (for bn.gamma)' in text
    assert 'unexpected: checkpoint key features.extra.weight' in text
    assert 'shape mismatch: head.weight is (10, 9)' in text and '(10, 8)' in text


def test_convert_accepts_dataparallel_wrapper(tiny_family):
    import torch
    wrapped = {'state_dict': {'module.' + k: torch.from_numpy(v)
                              for k, v in _reference_weights().items()}, 'epoch': 3}
    net = convert_state_dict('tinytest_net', wrapped, classes=10)
    np.testing.assert_array_equal(net.fc.bias.data().asnumpy(),
                                  _reference_weights()['head.bias'])


def test_normalise_rejects_duplicate_after_prefix_strip():
    with pytest.raises(ConversionError, match='twice'):
        normalise_state_dict({'a': np.zeros(1), 'module.a': np.zeros(1)})


def test_convert_cli_writes_atomically_and_fails_cleanly(tiny_family, tmp_path):
    from gluon_nets.convert import main
    import torch
    ckpt = tmp_path / 'ref.pth'
    torch.save({k: torch.from_numpy(v) for k, v in _reference_weights().items()}, str(ckpt))
    out = tmp_path / 'ours.params'
    assert main(['--model', 'tinytest_net', '--classes', '10', '--checkpoint', str(ckpt),
                 '--out', str(out)]) == 0
    assert sorted(os.listdir(tmp_path)) == ['ours.params', 'ref.pth']
    bad = {k: torch.from_numpy(v) for k, v in _reference_weights().items()}
    bad['head.weight'] = torch.zeros(10, 9)
    torch.save(bad, str(ckpt))
    before = out.read_bytes()
    assert main(['--model', 'tinytest_net', '--classes', '10', '--checkpoint', str(ckpt),
                 '--out', str(out)]) == 2
    assert out.read_bytes() == before          # the old output is untouched
    assert sorted(os.listdir(tmp_path)) == ['ours.params', 'ref.pth']   # no temp file left
    assert main(['--model', 'nosuchmodel', '--checkpoint', str(ckpt), '--out', str(out)]) == 2
    assert main(['--model', 'tinytest_net', '--checkpoint', str(tmp_path / 'absent.pth'),
                 '--out', str(out)]) == 2


def test_convert_cli_corrupt_checkpoint(tiny_family, tmp_path, capsys):
    from gluon_nets.convert import main
    ckpt = tmp_path / 'broken.pth'
    ckpt.write_bytes(b'not a checkpoint')
    assert main(['--model', 'tinytest_net', '--checkpoint', str(ckpt),
                 '--out', str(tmp_path / 'o.params')]) == 2
    assert 'cannot read' in capsys.readouterr().err


# ---------------------------------------------------------------- profile

class _Wrap(nn.HybridBlock):
    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.layer = layer

    def hybrid_forward(self, F, x):
        return self.layer(x)


@pytest.mark.parametrize('layer, shape, macs', [
    # 3x3 conv 4->6 on 10x10, pad 1: 6*10*10 outputs x 4*9 MACs
    (nn.Conv2D(6, 3, padding=1, in_channels=4), (1, 4, 10, 10), 6 * 100 * 4 * 9),
    # grouped: 8->8, groups 4, 1x1, stride 2 on 8x8 -> 4x4: 8*16 outputs x (8/4) MACs
    (nn.Conv2D(8, 1, strides=2, groups=4, in_channels=8), (1, 8, 8, 8), 8 * 16 * 2),
    # transposed 4x4/2, 6->4 channels, groups 2, 5x5 input: every input scatters (4/2)*16 MACs
    (nn.Conv2DTranspose(4, 4, strides=2, padding=1, groups=2, in_channels=6), (1, 6, 5, 5),
     6 * 25 * 2 * 16),
    # dense 12 -> 5 on flattened (3, 2, 2)
    (nn.Dense(5, in_units=12), (1, 3, 2, 2), 60),
    # dense applied per position (flatten=False) on (N, 2, 3, 7): 6 rows x 7x4
    (nn.Dense(4, flatten=False, in_units=7), (1, 2, 3, 7), 6 * 28),
])
def test_count_macs_hand_checked(layer, shape, macs):
    net = _Wrap(layer)
    net.initialize()
    assert count_macs(net, shape) == macs
    # per image: a batch of 3 gives the same count
    assert count_macs(net, (3,) + shape[1:]) == macs


def test_count_params_excludes_running_stats_and_counts_shared_once():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, in_channels=3, use_bias=False))
        net.add(nn.BatchNorm(in_channels=4))
        shared = nn.Dense(4, in_units=4, flatten=False)
        net.add(shared)
        net.add(nn.Dense(4, in_units=4, flatten=False, params=shared.collect_params()))
    assert count_params(net) == 4 * 27 + 2 * 4 + (16 + 4)


def test_count_params_infers_deferred_shapes():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3), nn.Dense(10))
    net.initialize()
    # conv 4x3x3x3 + 4 bias; dense input 4*30*30 at 32x32
    assert count_params(net, (1, 3, 32, 32)) == 4 * 27 + 4 + 10 * 4 * 30 * 30 + 10


def test_concat_channels_trains_at_unaligned_offsets():
    """A plain 4-D concat of 5 + 3 channels fails in oneDNN's backward on CPU; ours must not."""
    from gluon_nets.nn import concat_channels
    a = mx.nd.random.uniform(shape=(2, 5, 4, 4))
    b = mx.nd.random.uniform(shape=(2, 3, 4, 4))
    conv = nn.Conv2D(8, 1, in_channels=8)
    conv.initialize()
    a.attach_grad()
    b.attach_grad()
    with autograd.record():
        out = conv(concat_channels(mx.nd, a, b))
    out.backward()
    np.testing.assert_array_equal(concat_channels(mx.nd, a, b).asnumpy(),
                                  np.concatenate([a.asnumpy(), b.asnumpy()], axis=1))
    assert a.grad.shape == a.shape and np.isfinite(b.grad.asnumpy()).all()


def test_shared_blocks_shapes_and_values():
    shuffle = ChannelShuffle(3)
    x = mx.nd.arange(6).reshape((1, 6, 1, 1))
    # (g=3, k=2): channels [0 1 | 2 3 | 4 5] -> [0 2 4 1 3 5]
    assert shuffle(x).reshape((-1,)).asnumpy().tolist() == [0, 2, 4, 1, 3, 5]
    se = SqueezeExcite(32, reduction=16)
    se.initialize()
    y = se(mx.nd.ones((2, 32, 5, 5)))
    assert y.shape == (2, 32, 5, 5) and np.all((y.asnumpy() > 0) & (y.asnumpy() < 1))


# ---------------------------------------------------------------- golden generator

def test_golden_generator_matches_spec_values():
    """Values pinned from the spec: N(0, 1/fan_in) from crc32(name), U(-1, 1) input."""
    w = golden.golden_array('conv1.weight', (2, 3, 1, 1), 'weight')
    rng = np.random.RandomState(golden.name_seed('conv1.weight'))
    np.testing.assert_array_equal(w, rng.normal(0, np.sqrt(1 / 3), (2, 3, 1, 1)).astype('f'))
    assert golden.golden_array('bn.num_batches_tracked', (), 'count').dtype == np.int64
    x = golden.golden_input((1, 3, 2, 2), seed=0, scale=10.0)
    assert np.abs(x).max() <= 10 and x.dtype == np.float32
    with pytest.raises(ValueError, match='unknown role'):
        golden.golden_array('x', (1,), 'nope')


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED, 'reference', 'golden.py')),
                    reason='the shared reference folder (../shared) is not beside this checkout')
def test_golden_generator_equals_reference_generator():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'ref_golden', os.path.join(SHARED, 'reference', 'golden.py'))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    params = [['a.weight', [4, 3, 3, 3], 'weight'], ['a.bias', [4], 'bias'],
              ['b.weight', [4], 'gamma'], ['b.bias', [4], 'beta'], ['b.running_mean', [4], 'mean'],
              ['b.running_var', [4], 'var'], ['b.num_batches_tracked', [], 'count']]
    ours, theirs = golden.golden_weights(params), ref.golden_weights(params)
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name])
    np.testing.assert_array_equal(golden.golden_input((2, 3, 5, 5), 3, 7.0),
                                  ref.golden_input((2, 3, 5, 5), 3, 7.0))


# ---------------------------------------------------------------- CLIs

def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_summary_cli_errors():
    res = _run('-m', 'gluon_nets.summary', '--family', 'nosuchfamily')
    assert res.returncode == 2 and 'unknown family' in res.stderr
    res = _run('-m', 'gluon_nets.summary', '--model', 'nosuchmodel')
    assert res.returncode == 2 and 'unknown model' in res.stderr


def test_convert_cli_as_module_sees_family_converters(tmp_path):
    """``python -m gluon_nets.convert`` runs the file as __main__: it must still use the
    converters that the families registered (regression: it once saw an empty table).
    Converts the smallest golden file's weights, saved as an MXNet .params file."""
    import glob
    from conftest import DATA
    path = min(glob.glob(os.path.join(DATA, 'golden', '*', '*.json')), key=os.path.getsize)
    gold = golden.load(path)
    ckpt = str(tmp_path / 'ref.params')
    mx.nd.save(ckpt, {k: mx.nd.array(v) for k, v in golden.golden_weights(gold['params']).items()
                      if v.dtype != np.int64})
    out = tmp_path / 'ours.params'
    res = _run('-m', 'gluon_nets.convert', '--model', gold['registry']['name'],
               '--model-kwargs', json.dumps(gold['registry'].get('kwargs', {})),
               '--checkpoint', ckpt, '--out', str(out))
    assert res.returncode == 0, res.stderr
    assert 'RuntimeWarning' not in res.stderr
    net = get_model(gold['registry']['name'], **gold['registry'].get('kwargs', {}))
    net.load_parameters(str(out))
    logits = net(mx.nd.array(golden.input_of(gold))).asnumpy()
    assert golden.relative_error(logits, gold['logits']) < 1e-4


def test_summary_rows_measure_and_input_size(capsys):
    from gluon_nets import summary
    name = 'menet108_8x1_g3'
    info = get_model_info(name)
    (row,) = summary.summarize([name], measure_graph=True)
    assert (row['params'], row['macs']) == (info.params, info.macs)
    (bigger,) = summary.summarize([name], input_size=448)
    assert bigger['params'] == info.params and bigger['macs'] > 3.5 * info.macs
    assert summary.main(['--model', name]) == 0
    out = capsys.readouterr().out
    assert name in out and '%.3f' % (info.params / 1e6) in out
