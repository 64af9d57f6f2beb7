"""ED-Net family (gluon_nets/models/ednet.py): counts against the reference figures,
the ed=False baselines, other input sizes, the reference initialisation, the converter
(checkpoint layout of the reference training script, through the CLI) and the 152-layer
goldens (slow).

The shared goldens (50 layers, batch 2) and the 101-layer goldens made from the reference
code (batch 1) live in tests/data/golden/ednet/ and run in test_golden.py; the 152-layer
ones (tests/data/ednet/golden/) run here under --runslow (about 40 s on 2 cores).
"""
import glob
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import DATA, ROOT
from golden import golden_weights, input_of, load, relative_error
from gluon_nets import get_model, list_models
from gluon_nets.convert import ConversionError, convert_state_dict
from gluon_nets.model_zoo import ModelConstructionError, get_model_info
from gluon_nets.models.ednet import (EDDecoder, EDNetInit, ed_output_paddings, ed_resnet,
                                     ed_resnext, reference_state_dict_name)
from gluon_nets.nn import RESNET_STAGE_BLOCKS
from gluon_nets.profile import count_macs, count_params

GOLDEN = os.path.join(DATA, 'golden', 'ednet')
GOLDEN_152 = sorted(glob.glob(os.path.join(DATA, 'ednet', 'golden', '*.json')))

# Reference figures (shared/notes/ednet.md): parameters exactly, MACs in G to 3 decimals
# (conv: output pixels * Cin/groups * k^2, transposed conv: input pixels * Cout/groups * k^2,
# FC in*out, SE FCs included).
REFERENCE_COUNTS = {
    'ed_resnet50': (28424104, 4.211), 'ed_resnet101': (49966504, 8.046),
    'ed_resnet152': (67712936, 11.882),
    'ed_resnext50_32x4d': (30732840, 4.475), 'ed_resnext101_32x4d': (54947368, 8.460),
    'ed_se_resnet50': (30955096, 4.214), 'ed_se_resnet101': (54744216, 8.051),
    'ed_se_resnet152': (74341976, 11.888),
    'ed_se_resnext50_32x4d': (33263832, 4.477), 'ed_se_resnext101_32x4d': (59725080, 8.465),
    'ed_se_resnext152_32x4d': (81524952, 12.452),
}
# "-B" approximations: the notes' width/2 (ResNet) and 16x4d (ResNeXt) rows; params in M
# to 2 decimals where the notes give them.
APPROX_COUNTS = {
    'ed_resnet50_b': (15.25, 1.944), 'ed_resnet101_b': (24.81, 3.432),
    'ed_resnet152_b': (32.68, 4.920),
    'ed_resnext50_16x4d_b': (None, 2.600), 'ed_resnext101_16x4d_b': (None, 4.715),
}
# ed=False: the plain torchvision-layout ResNet / ResNeXt 32x4d.
BASELINE_COUNTS = {
    'ed_resnet50': (25557032, 4.089), 'ed_resnet101': (44549160, 7.801),
    'ed_resnet152': (60192808, 11.514),
    'ed_resnext50_32x4d': (25028904, 4.230), 'ed_resnext101_32x4d': (44177704, 7.970),
}


def _counts(name, size=224, **kwargs):
    net = get_model(name, input_size=size, **kwargs)
    return count_params(net), count_macs(net, (1, 3, size, size))


def test_registry_lists_every_model():
    assert set(list_models('ednet')) == set(REFERENCE_COUNTS) | set(APPROX_COUNTS)
    for name in APPROX_COUNTS:
        assert 'APPROXIMATION' in get_model_info(name).fn.__doc__


def test_registry_entry_and_depths():
    """One entry per name with the reference's validation recipe (Resize 256, CenterCrop
    224, ImageNet mean/std), ``fc`` as the classifier, no weights; depths come from the
    shared ResNet table and only the reference's 50/101/152 are accepted."""
    for name in list_models('ednet'):
        info = get_model_info(name)
        assert info.classifier == 'fc' and info.weights.startswith('none')
        config = info.data_config
        assert (config['input_size'], config['crop_ratio'], config['interpolation']) == \
            ((3, 224, 224), 224 / 256, 'bilinear')
        assert config['mean'] == (0.485, 0.456, 0.406)
        assert config['std'] == (0.229, 0.224, 0.225)
        assert info.slow == ('152' in name)
    head = get_model('ed_resnet50', classes=3).fc
    assert isinstance(head, mx.gluon.nn.Dense) and head.weight.shape == (3, 2048)
    net = ed_resnet(101)
    assert [len(getattr(net, 'layer%d' % s)) for s in range(1, 5)] == \
        list(RESNET_STAGE_BLOCKS[101])
    with pytest.raises(ValueError, match=r'depth must be one of \[50, 101, 152\], got 34'):
        ed_resnext(34)


@pytest.mark.parametrize('name', sorted(REFERENCE_COUNTS))
def test_counts_match_reference(name):
    params, gmacs = REFERENCE_COUNTS[name]
    ours_params, ours_macs = _counts(name)
    assert ours_params == params
    assert round(ours_macs / 1e9, 3) == gmacs
    info = get_model_info(name)
    assert (info.params, info.macs) == (ours_params, ours_macs)


@pytest.mark.parametrize('name', sorted(APPROX_COUNTS))
def test_counts_of_b_variants(name):
    mparams, gmacs = APPROX_COUNTS[name]
    params, macs = _counts(name)
    if mparams is not None:
        assert round(params / 1e6, 2) == mparams
    assert round(macs / 1e9, 3) == gmacs


@pytest.mark.parametrize('name', sorted(BASELINE_COUNTS))
def test_ed_false_is_the_plain_baseline(name):
    params, gmacs = BASELINE_COUNTS[name]
    net = get_model(name, ed=False)
    assert count_params(net) == params
    assert round(count_macs(net) / 1e9, 3) == gmacs
    assert not any('encoder' in k or 'decoder' in k for k in net._collect_params_with_prefix())


def test_summary_cli_lists_family(capsys):
    from gluon_nets.summary import main
    assert main(['--family', 'ednet']) == 0
    out = capsys.readouterr().out
    for name in REFERENCE_COUNTS:
        assert name in out
    assert '28.424' in out and '4.211' in out


def test_b_variants_keep_the_ed_path():
    """-B options only shrink the residual branch; ED path and block outputs unchanged."""
    full = get_model('ed_resnet50')._collect_params_with_prefix()
    half = get_model('ed_resnet50_b')._collect_params_with_prefix()
    assert set(full) == set(half)
    for key in full:
        if 'encoder' in key or 'decoder' in key or 'downsample' in key or 'bn3' in key:
            assert full[key].shape == half[key].shape, key
    assert half['layer1.0.conv2.weight'].shape == (32, 32, 3, 3)
    x16 = get_model('ed_resnext50_16x4d_b')._collect_params_with_prefix()
    assert x16['layer1.0.conv2.weight'].shape == (64, 4, 3, 3)          # 16 groups of 4
    assert x16['layer1.0.encoder.conv.weight'].shape == (128, 8, 3, 3)  # 32 groups, width 128
    assert x16['layer4.2.decoder.weight'].shape == (1024, 64, 3, 3)


@pytest.mark.parametrize('kwargs, match', [
    (dict(name='ed_resnet50', depth=34), 'bad arguments'),
    (dict(name='ed_resnet50', bottleneck_ratio=0), 'bottleneck_ratio'),
    (dict(name='ed_resnet50', bottleneck_ratio=0.001), 'bottleneck_ratio'),
    (dict(name='ed_resnext50_32x4d', cardinality=0), 'cardinality'),
    (dict(name='ed_resnext50_32x4d', bottleneck_ratio=0.5), 'bad arguments'),
    (dict(name='ed_resnet50', input_size=0), 'input_size'),
])
def test_bad_options_raise(kwargs, match):
    name = kwargs.pop('name')
    with pytest.raises(ModelConstructionError, match=match):
        get_model(name, **kwargs)


# ---------------------------------------------------------------------------- input sizes

def test_output_paddings_follow_map_parity():
    reference = [(1, 1), (1, 1), (1, 1), (0, 0)]
    for size in (221, 222, 223, 224):
        assert ed_output_paddings(size) == reference
    assert ed_output_paddings((224, 221)) == reference
    assert ed_output_paddings(256) == [(1, 1), (1, 1), (1, 1), (1, 1)]      # 64 32 16 8
    assert ed_output_paddings(288) == [(1, 1), (1, 1), (1, 1), (0, 0)]      # 72 36 18 9
    assert ed_output_paddings(320) == [(1, 1), (1, 1), (1, 1), (1, 1)]      # 80 40 20 10
    assert ed_output_paddings(176) == [(1, 1), (1, 1), (0, 0), (1, 1)]      # 44 22 11 6
    assert ed_output_paddings(64) == [(1, 1), (1, 1), (1, 1), (1, 1)]       # 16 8 4 2
    assert ed_output_paddings((200, 64)) == [(1, 1), (0, 1), (0, 1), (0, 1)]  # 50 25 13 7


def test_decoder_without_output_padding_is_the_crop():
    """The parity rule is exact: output_padding 0 gives the output of padding 1 minus its
    last row/column, so every size gets the one decoder value the reference would give."""
    mx.random.seed(1)
    dec = EDDecoder(64, 128, output_padding=(1, 1))
    dec.initialize(EDNetInit())
    x = mx.nd.random.uniform(-1, 1, (2, 64, 5, 4))
    full = dec(x).asnumpy()
    assert full.shape == (2, 128, 10, 8)
    dec.output_padding = (0, 1)
    cropped = dec(x).asnumpy()
    assert cropped.shape == (2, 128, 9, 8)
    np.testing.assert_allclose(cropped, full[:, :, :9, :], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('size', [64, 256, 288, 320, (176, 200)])
def test_other_input_sizes(size):
    """Extension beyond the reference (221-224 px only): any size runs with global pooling
    and parity-chosen decoder paddings; a net built for the size (imperative) agrees with a
    hybridized one built for 224 that adapts at its first forward; MACs scale with area."""
    hw = (size, size) if isinstance(size, int) else size
    mx.random.seed(0)
    built = get_model('ed_se_resnet50', classes=10, input_size=hw)
    built.initialize(built.default_init)
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3) + hw))
    ref = built(x).asnumpy()
    assert ref.shape == (1, 10) and np.all(np.isfinite(ref))

    adaptive = get_model('ed_se_resnet50', classes=10)    # built for 224
    adaptive.initialize()
    for (_, p1), (_, p2) in zip(sorted(adaptive._collect_params_with_prefix().items()),
                                sorted(built._collect_params_with_prefix().items())):
        p1.set_data(p2.data())
    adaptive.hybridize(static_alloc=True, static_shape=True)
    np.testing.assert_allclose(adaptive(x).asnumpy(), ref, rtol=1e-4, atol=1e-5)

    macs = count_macs(get_model('ed_se_resnet50', input_size=hw), (1, 3) + hw)
    scale = hw[0] * hw[1] / 224.0 ** 2
    assert 0.6 * scale * 4.214e9 < macs < 1.4 * scale * 4.214e9


def test_size_change_rebuilds_the_cached_graph():
    """224 -> 256 -> 224 on one hybridized net: the 224 output is unchanged afterwards."""
    net = get_model('ed_resnet50', classes=10)
    net.initialize(net.default_init)
    net.hybridize(static_alloc=True, static_shape=True)
    x224 = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, 224, 224)))
    before = net(x224).asnumpy()
    assert net(mx.nd.zeros((1, 3, 256, 256))).shape == (1, 10)
    assert net.layer4[0].decoder.output_padding == (1, 1)
    np.testing.assert_allclose(net(x224).asnumpy(), before, rtol=1e-5, atol=1e-6)
    assert net.layer4[0].decoder.output_padding == (0, 0)


def test_reference_sizes_share_the_graph():
    """221..224 px (each side) need no re-configuration: the reference paddings hold."""
    net = get_model('ed_resnet50', classes=5)
    net.initialize(net.default_init)
    for hw in ((221, 224), (224, 222), (223, 223)):
        assert net(mx.nd.zeros((1, 3) + hw)).shape == (1, 5)
        assert net.layer4[0].decoder.output_padding == (0, 0)
        assert net.layer3[0].decoder.output_padding == (1, 1)


# ---------------------------------------------------------------------------- init

def _reference_init_rule(ref_name, shape):
    """(kind, value) the reference constructors give a parameter, from its reference name:
    keys with 'conv' -> kaiming_normal_(mode='fan_out'), i.e. std sqrt(2 / (shape[0]*kh*kw));
    'bn' weights 1; every bias 0; nn.Linear weights PyTorch's default U(+-1/sqrt(fan_in))."""
    leaf = ref_name.rsplit('.', 1)[1]
    if leaf == 'running_mean':
        return 'const', 0.0
    if leaf == 'running_var':
        return 'const', 1.0
    if leaf == 'bias':
        return 'const', 0.0
    if 'conv' in ref_name:
        return 'std', np.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
    if 'bn' in ref_name:
        return 'const', 1.0
    return 'uniform', 1.0 / np.sqrt(shape[1])


@pytest.mark.parametrize('name', ['ed_se_resnet50', 'ed_resnext50_32x4d'])
def test_default_init_reproduces_reference_statistics(name):
    mx.random.seed(3)
    net = get_model(name)
    assert isinstance(net.default_init, EDNetInit)
    net.initialize(net.default_init)
    kinds = set()
    for ours, param in net._collect_params_with_prefix().items():
        value = param.data().asnumpy()
        kind, target = _reference_init_rule(reference_state_dict_name(ours), value.shape)
        kinds.add(kind)
        if kind == 'const':
            assert np.all(value == target), ours
        elif kind == 'std':
            assert abs(value.std() / target - 1) < 0.05, (ours, value.std(), target)
            assert abs(value.mean()) < 0.1 * target, ours
        else:
            assert np.abs(value).max() <= target + 1e-7, ours
            assert abs(value.std() / (target / np.sqrt(3)) - 1) < 0.05, ours
    assert kinds == {'const', 'std', 'uniform'}


# ---------------------------------------------------------------------------- converter

def test_reference_names_cover_the_golden_params():
    """Our structural names map one-to-one onto the reference state_dict of each file."""
    for path in sorted(glob.glob(os.path.join(GOLDEN, '*50*.json'))):
        golden = load(path)
        reference = {n for n, _, role in golden['params'] if role != 'count'}
        net = get_model(golden['registry']['name'])
        mapped = [reference_state_dict_name(k) for k in net._collect_params_with_prefix()]
        assert len(mapped) == len(set(mapped))
        assert set(mapped) == reference, path
    assert reference_state_dict_name('layer4.2.se.fc2.weight') == \
        'layer4.layer4_block_2.fc_extention.weight'


def test_converter_reports_every_problem():
    golden = load(os.path.join(GOLDEN, 'ed_resnet50.json'))
    weights = golden_weights(golden['params'])
    del weights['fc.bias']
    key = 'layer4.layer4_block_0.decoder.decoder_conv.weight'
    weights[key] = weights[key][:, :8]
    weights['layer1.layer1_block_0.fc_extention.weight'] = np.zeros((256, 16), np.float32)
    with pytest.raises(ConversionError) as err:
        convert_state_dict('ed_resnet50', weights)
    message = str(err.value)
    assert 'fc.bias' in message and key in message and 'fc_extention' in message


def test_cli_converts_dataparallel_checkpoint_of_the_training_script(tmp_path):
    """The reference's imagenet_train.py saves {'epoch', 'arch', 'state_dict' (DataParallel:
    'module.' keys, num_batches_tracked included), 'best_prec1', 'optimizer'} as
    <arch>.pth.tar; `python -m gluon_nets.convert` turns it into our .params."""
    torch = pytest.importorskip('torch')
    golden = load(os.path.join(GOLDEN, 'ed_resnet50.json'))
    state = {'module.' + k: torch.from_numpy(np.asarray(v))
             for k, v in golden_weights(golden['params']).items()}
    assert any(k.endswith('num_batches_tracked') for k in state)
    checkpoint = tmp_path / 'ED50.pth.tar'
    torch.save({'epoch': 3, 'arch': 'ED50', 'state_dict': state, 'best_prec1': 1.5,
                'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1, 'momentum': 0.9}]}},
               str(checkpoint))
    out = tmp_path / 'ed_resnet50.params'
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-m', 'gluon_nets.convert', '--model', 'ed_resnet50',
                           '--checkpoint', str(checkpoint), '--out', str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _check_converted(out, golden)


def _check_converted(out, golden):
    net = get_model('ed_resnet50')
    net.load_parameters(str(out))
    net.hybridize(static_alloc=True, static_shape=True)
    logits = net(mx.nd.array(input_of(golden))).asnumpy()
    assert relative_error(logits, golden['logits']) < 1e-4


# ---------------------------------------------------------------------------- 152 layers

@pytest.mark.slow
@pytest.mark.parametrize('path', GOLDEN_152, ids=[os.path.basename(p)[:-5] for p in GOLDEN_152])
def test_golden_152(path):
    golden = load(path)
    net = convert_state_dict(golden['registry']['name'], golden_weights(golden['params']))
    net.hybridize(static_alloc=True, static_shape=True)
    logits = net(mx.nd.array(input_of(golden))).asnumpy()
    assert relative_error(logits, golden['logits']) < 1e-4
    assert count_params(net) == golden['num_params']
    assert count_macs(net, (1, 3, 224, 224)) == golden['macs']


def test_golden_152_files_present():
    assert len(GOLDEN_152) == 3
