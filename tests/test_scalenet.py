"""ScaleNet beyond the shared goldens (tests/test_golden.py runs those):

- ScaleNet-101/-152 golden-format files made here by running the reference PyTorch code
  (tests/data/scalenet/scalenet1*.json; -152 is marked slow: ~11 GMACs);
- other input sizes (221, 256, 299, 320, 448, non-square) and the Python-2 kernel
  variant, reference logits for 10 classes in tests/data/scalenet/sizes.json;
- one hybridized net re-planning between sizes; clear errors for sizes, structures and
  checkpoints the models cannot take; torch checkpoints with and without
  ``num_batches_tracked``.
"""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from conftest import DATA, SHARED
from golden import golden_input, golden_weights, load, relative_error
from gluon_nets import get_model
from gluon_nets.convert import ConversionError, convert_state_dict, load_checkpoint
from gluon_nets.model_zoo import ModelConstructionError, get_model_info
from gluon_nets.models import scalenet as sn
from gluon_nets.nn import RESNET_STAGE_BLOCKS
from gluon_nets.profile import count_macs, count_params

HERE = os.path.join(DATA, 'scalenet')
GOLDEN = os.path.join(DATA, 'golden', 'scalenet')
with open(os.path.join(HERE, 'sizes.json')) as _f:
    CASES = json.load(_f)['cases']


def _params(model, classes=None, one_by_one=()):
    """Reference params list of ``model``; fc resized to ``classes``; listed convs 1x1."""
    path = os.path.join(GOLDEN if model.startswith('scalenet50') else HERE, model + '.json')
    with open(path) as f:
        params = json.load(f)['params']
    out = []
    for name, shape, role in params:
        shape = list(shape)
        if classes is not None and name.startswith('fc.'):
            shape[0] = classes
        if name in one_by_one:
            shape[2:] = [1, 1]
        out.append([name, shape, role])
    return out


def _logits(net, shape, seed):
    return net(mx.nd.array(golden_input(shape, seed))).asnumpy()


@pytest.mark.parametrize('model', ['scalenet101', pytest.param('scalenet152',
                                                               marks=pytest.mark.slow)])
def test_deep_models_match_reference(model):
    golden = load(os.path.join(HERE, model + '.json'))
    net = convert_state_dict(model, golden_weights(golden['params']))
    net.hybridize(static_alloc=True, static_shape=True)
    shape = golden['input']['shape']
    err = relative_error(_logits(net, shape, golden['input']['seed']), golden['logits'])
    assert err < 1e-4, 'rel err %.3g' % err
    assert count_params(net) == golden['num_params']
    assert count_macs(net, (1, 3, 224, 224)) == golden['macs']


def _size_cases(kernel=None):
    return [pytest.param(c, id='%s-%dx%d' % ((c['model'],) + tuple(c['input']['shape'][2:])))
            for c in CASES if c.get('kernel') == kernel]


@pytest.mark.parametrize('case', _size_cases())
def test_other_input_sizes_match_reference(case):
    net = convert_state_dict(case['model'], golden_weights(_params(case['model'], 10)))
    net.hybridize(static_alloc=True, static_shape=True)
    out = _logits(net, case['input']['shape'], case['input']['seed'])
    err = relative_error(out, case['logits'])
    assert err < 1e-4, 'rel err %.3g' % err


def test_one_hybridized_net_replans_between_sizes():
    """A static graph is planned for one size; the net re-plans when the size changes."""
    cases = [c for c in CASES if c['model'] == 'scalenet50' and 'kernel' not in c
             and c['input']['shape'][2] <= 320]
    assert len(cases) >= 4
    net = convert_state_dict('scalenet50', golden_weights(_params('scalenet50', 10)))
    net.hybridize(static_alloc=True, static_shape=True)
    for case in cases + cases[:1]:
        out = _logits(net, case['input']['shape'], case['input']['seed'])
        assert relative_error(out, case['logits']) < 1e-4, case['input']['shape']
        assert net.input_size == tuple(case['input']['shape'][2:])


def test_resize_plan_matches_reference_rules():
    """Nearest for integer ratios (also when the ratio is not the pooling factor),
    bilinear otherwise, as in the notes' table for 224 px."""
    plan = sn._BranchPlan((7, 7), 4)          # 7 // 4 = 1: nearest x7
    assert plan.pooled == (1, 1) and plan.nearest == (7, 7)
    plan = sn._BranchPlan((14, 14), 4)        # 3 -> 14: bilinear
    assert plan.pooled == (3, 3) and plan.nearest is None and plan.rows == plan.cols
    plan = sn._BranchPlan((56, 56), 7)
    assert plan.nearest == (7, 7)
    plan = sn._BranchPlan((14, 18), 2)        # non-square, integer ratios
    assert plan.nearest == (2, 2)


@pytest.mark.parametrize('src,dst', [(3, 7), (3, 14), (37, 75), (5, 16), (1, 7), (4, 9)])
def test_linear_resize_is_half_pixel_bilinear(src, dst):
    """repeat + edge pad + avg-pool == numpy half-pixel linear interpolation."""
    length, pad, stride = sn._linear_resize_plan(src, dst)
    x = np.random.RandomState(src * dst).uniform(-1, 1, (1, 1, src, 1)).astype(np.float32)
    y = mx.nd.repeat(mx.nd.array(x), repeats=length, axis=2)
    if pad:
        y = mx.nd.pad(y, mode='edge', pad_width=(0, 0, 0, 0, pad, pad, 0, 0))
    y = mx.nd.Pooling(y, kernel=(length, 1), stride=(stride, 1), pool_type='avg')
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, None)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    expected = x[0, 0, lo, 0] * (1 - (pos - lo)) + x[0, 0, hi, 0] * (pos - lo)
    np.testing.assert_allclose(y.asnumpy()[0, 0, :, 0], expected, rtol=1e-5, atol=1e-6)


def _torch_checkpoint(tmp_path, params, counters):
    torch = pytest.importorskip('torch')
    state = {k: torch.from_numpy(v) for k, v in golden_weights(params).items()
             if counters or not k.endswith('num_batches_tracked')}
    path = str(tmp_path / 'ckpt.pth')
    torch.save(state, path)
    return path, len(state)


@pytest.mark.parametrize('counters', [True, False], ids=['with_counters', 'no_counters'])
@pytest.mark.parametrize('case', _size_cases('py2'))
def test_python2_kernel_checkpoint(case, counters, tmp_path):
    """A checkpoint whose affected branch convs are 1x1 (Python 2 rule) builds the
    matching net from the checkpoint's shapes and gives the reference's logits."""
    params = _params(case['model'], 10, case['one_by_one'])
    path, count = _torch_checkpoint(tmp_path, params, counters)
    state = load_checkpoint(path)
    assert len(state) == count
    net = convert_state_dict(case['model'], state)          # classes from fc.weight
    expected = sn.kernel_sizes_for(sn.load_structure(case['model']), 'py2')
    assert net.kernel_sizes == expected != sn.kernel_sizes_for(net.structure, 'py3')
    net.hybridize(static_alloc=True, static_shape=True)
    out = _logits(net, case['input']['shape'], case['input']['seed'])
    assert out.shape == (1, 10)
    assert relative_error(out, case['logits']) < 1e-4
    # the registry's 'py2' rule builds the same net
    assert get_model(case['model'], kernel_rule='py2').kernel_sizes == expected


@pytest.mark.parametrize('counters', [True, False], ids=['with_counters', 'no_counters'])
def test_python3_torch_checkpoint(counters, tmp_path):
    golden = load(os.path.join(GOLDEN, 'scalenet50_light.json'))
    path, _ = _torch_checkpoint(tmp_path, golden['params'], counters)
    net = convert_state_dict('scalenet50_light', load_checkpoint(path))
    net.hybridize(static_alloc=True, static_shape=True)
    x = golden_input(golden['input']['shape'], golden['input']['seed'])
    assert relative_error(net(mx.nd.array(x)).asnumpy(), golden['logits']) < 1e-4


def test_converter_reports_mismatched_checkpoints():
    weights = golden_weights(_params('scalenet50', 10))
    # scalenet50 weights are not scalenet50_light's: channel counts differ
    with pytest.raises(ConversionError, match='shape mismatch'):
        convert_state_dict('scalenet50_light', weights)
    # a branch the structure does not have (layer1.2 has no conv2.2)
    extra = dict(weights)
    extra['layer1.2.conv2.2.weight'] = np.zeros((4, 64, 3, 3), np.float32)
    with pytest.raises(ConversionError, match='layer1.2.conv2.2.weight'):
        convert_state_dict('scalenet50', extra)
    bad = dict(weights)
    bad['layer1.0.conv2.0.weight'] = np.zeros((62, 64, 5, 5), np.float32)
    with pytest.raises(ConversionError, match='1x1 or 3x3'):
        convert_state_dict('scalenet50', bad)
    missing = dict(weights)
    del missing['layer2.0.bn2.1.running_var']
    with pytest.raises(ConversionError, match='layer2.0.bn2.1.running_var'):
        convert_state_dict('scalenet50', missing)


def test_unsupported_sizes_fail_clearly():
    net = get_model('scalenet50_light', classes=10)
    net.initialize()
    net.hybridize(static_alloc=True, static_shape=True)
    # the reference fails here too: its last stage is 6x6 < the 7x7 pool
    with pytest.raises(ValueError, match='at least 221 px'):
        net(mx.nd.zeros((1, 3, 220, 220)))
    with pytest.raises(ValueError, match='at least 221 px'):
        net(mx.nd.zeros((1, 3, 224, 200)))
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        net(mx.nd.zeros((1, 1, 224, 224)))
    assert net(mx.nd.zeros((1, 3, 221, 230))).shape == (1, 10)
    with pytest.raises(ModelConstructionError, match='at least 221 px'):
        get_model('scalenet50', input_size=64)
    assert sn.min_input_size() == 221


def test_any_structure_builder(tmp_path):
    rows = [[8, 4, 2, 2, 56]] * 2 + [[8, 8, 0, 0, 28]] * 2 + [[16, 0, 8, 8, 14]] * 3 \
        + [[4, 4, 0, 4, 7]]
    path = tmp_path / 'tiny.json'
    path.write_text(json.dumps(rows))
    for structure in (rows, str(path)):
        net = sn.scalenet(structure, classes=5)
        assert net.layers == [2, 2, 3, 1]
        net.initialize()
        net.hybridize(static_alloc=True, static_shape=True)
        assert net(mx.nd.ones((2, 3, 224, 224))).shape == (2, 5)
    # absent branch index is skipped in the names, like the reference
    names = get_model('scalenet50')._collect_params_with_prefix()
    assert 'layer1.2.conv2.3.weight' in names and 'layer1.2.conv2.2.weight' not in names
    assert get_model('scalenet50', structure=str(path)).layers == [2, 2, 3, 1]


@pytest.mark.parametrize('structure,match', [
    ([[1, 2, 3]], 'row 0'),
    ([[0, 0, 0, 0, 56]], 'row 0'),
    ([[1, 1, 1, 1, 56]] * 3, 'layers'),
    ('no_such_structure', 'neither a shipped structure'),
])
def test_bad_structures_fail_clearly(structure, match):
    with pytest.raises(ValueError, match=match):
        sn.scalenet(structure)


def test_bad_layers_and_kernels_fail_clearly():
    with pytest.raises(ModelConstructionError, match='layers'):
        get_model('scalenet50', layers=[3, 4, 6, 4])
    with pytest.raises(ModelConstructionError, match="'py3' or 'py2'"):
        get_model('scalenet50', kernel_rule='py4')


def test_shipped_structures_are_the_reference_files():
    ref = os.path.join(SHARED, 'reference', 'scalenet', 'structures')
    assert os.path.isfile(os.path.join(sn.STRUCTURE_DIR, 'NOTICE'))
    if not os.path.isdir(ref):
        pytest.skip('shared reference data not available')
    for name in sn.STRUCTURES:
        with open(os.path.join(ref, name + '.json')) as f:
            assert sn.load_structure(name) == json.load(f)


def test_shipped_structures_fill_their_resnet_depth():
    """The registered models lay their structure on the shared ResNet table's stages,
    which is also what the structure's side column gives; ``structure=`` swaps both."""
    for name, depth in sn.STRUCTURE_DEPTHS.items():
        layout = list(RESNET_STAGE_BLOCKS[depth])
        assert sn._layers_from_sides(sn.load_structure(name)) == layout
        assert get_model(name).layers == layout
    swapped = get_model('scalenet50', structure='scalenet101')
    assert swapped.layers == [3, 4, 23, 3]
    assert swapped.structure == sn.load_structure('scalenet101')


def test_registry_entry():
    info = get_model_info('scalenet50')
    assert info.classifier == 'fc'
    head = getattr(get_model('scalenet50', classes=3), info.classifier)
    assert isinstance(head, mx.gluon.nn.Dense) and head.weight.shape == (3, 2048)
    assert info.data_config['input_size'] == (3, 224, 224)
    assert info.data_config['crop_ratio'] == 0.875
    assert info.min_input_size == sn.min_input_size()
    assert [get_model_info(n).slow for n in sn.STRUCTURES] == [False, False, False, True]
    assert 'BaiduYun' in info.weights and 'no licence' in info.weights


def _light_net():
    golden = load(os.path.join(GOLDEN, 'scalenet50_light.json'))
    net = convert_state_dict('scalenet50_light', golden_weights(golden['params']))
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.array(golden_input(golden['input']['shape'], golden['input']['seed']))
    return net, x, golden['logits']


def test_training_and_inference_graphs_agree():
    """Inference runs the padded graph, autograd the reference-layout one (oneDNN's
    concat backward needs it); both give the reference's numbers and switching back and
    forth rebuilds the right graph."""
    from mxnet import autograd
    net, x, ref = _light_net()
    assert relative_error(net(x).asnumpy(), ref) < 1e-4
    x.attach_grad()
    with autograd.record(train_mode=False):    # running statistics, recorded graph
        out = net(x)
    out.backward()
    assert relative_error(out.asnumpy(), ref) < 1e-4
    assert np.all(np.isfinite(x.grad.asnumpy())) and np.abs(x.grad.asnumpy()).max() > 0
    assert relative_error(net(x).asnumpy(), ref) < 1e-4
    exact = get_model('scalenet50_light', fast_inference=False)
    params = {k: v.data() for k, v in net._collect_params_with_prefix().items()}
    for k, v in exact._collect_params_with_prefix().items():
        v._load_init(params[k], mx.cpu())
    exact.hybridize(static_alloc=True, static_shape=True)
    assert relative_error(exact(x).asnumpy(), ref) < 1e-4


def test_exported_inference_graph(tmp_path):
    net, x, ref = _light_net()
    net(x)
    prefix = str(tmp_path / 'light')
    net.export(prefix)
    loaded = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                          prefix + '-0000.params')
    assert relative_error(loaded(x).asnumpy(), ref) < 1e-4
    onnx = pytest.importorskip('onnx')
    ort = pytest.importorskip('onnxruntime')
    # the resizes are UpSampling / repeat + edge pad + avg pool: exported with the
    # right semantics (BilinearResize2D would be written with the align_corners mode)
    path = mx.onnx.export_model(prefix + '-symbol.json', prefix + '-0000.params',
                                [tuple(x.shape)], [np.float32], str(tmp_path / 'light.onnx'))
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(path)
    out = session.run(None, {session.get_inputs()[0].name: x.asnumpy()})[0]
    assert relative_error(out, ref) < 1e-4
