"""OctConv ablation-table models (the reference's Symbol API, ``oct_*_v2``).

The 64 px golden files in data/golden/octconv_symbol/ run in tests/test_golden.py; the
224 px ones and the remaining alphas (data/golden/octconv_symbol/slow/) run here under
--runslow. This file also pins the README ablation table's MACs per alpha, the alphas
the reference cannot build, and the Symbol-checkpoint loader / converter CLI.
"""
import glob
import json
import os

import mxnet as mx
import numpy as np
import pytest

from conftest import DATA
from golden import golden_weights, input_of, load, relative_error
from gluon_nets import convert as convert_module
from gluon_nets.convert import ConversionError, convert_state_dict
from gluon_nets.model_zoo import ModelConstructionError, get_model, get_model_info, list_models
from gluon_nets.models.octconv_symbol import (SYMBOL_MODELS, load_symbol_checkpoint,
                                              strip_symbol_prefixes)
from gluon_nets.profile import count_macs, count_params

GOLDEN = os.path.join(DATA, 'golden', 'octconv_symbol')
SLOW_GOLDEN = sorted(glob.glob(os.path.join(GOLDEN, 'slow', '*.json')))

# The reference's ablation table as measured with its Symbol builders (shared notes,
# "Symbol ablation models"): params (M) and GMACs at 224 for the baseline (alpha -1) and
# alpha .125 / .25 / .5 / .75; None = the reference cannot build that alpha.
ALPHAS = (-1, 0.125, 0.25, 0.5, 0.75)
TABLE = {
    'oct_resnet26_v2': (15.99, (2.34, 2.09, 1.86, 1.48, 1.21)),
    'oct_resnet50_v2': (25.55, (4.09, 3.57, 3.10, 2.37, 1.88)),
    'oct_resnet101_v2': (44.55, (7.80, 6.62, 5.60, 3.99, 2.98)),
    'oct_resnet152_v2': (60.19, (11.51, 9.68, 8.09, 5.62, 4.08)),
    'oct_resnet200_v2': (64.67, (15.01, 12.56, 10.44, 7.14, 5.12)),
    'oct_se_resnet50_v2': (28.08, (4.09, 3.57, 3.11, 2.37, 1.88)),
    'oct_resnext50_32x4d_v2': (25.03, (4.23, None, 3.17, 2.39, 1.88)),
    'oct_resnext101_32x4d_v2': (44.17, (7.97, None, 5.68, 4.02, 2.99)),
    'oct_densenet121_v2': (7.98, (2.83, 2.40, 2.02, 1.42, 1.04)),
}


@pytest.mark.parametrize('name', sorted(TABLE))
def test_ablation_table_macs_and_params(name):
    """count_macs at 224 (shape inference only) reproduces every cell of the table."""
    params_m, macs_g = TABLE[name]
    for alpha, expected in zip(ALPHAS, macs_g):
        if expected is None:
            with pytest.raises(ValueError, match='groups'):
                get_model(name, alpha=alpha)
            continue
        net = get_model(name, alpha=alpha)
        assert round(count_macs(net, (1, 3, 224, 224)) / 1e9, 2) == expected, (name, alpha)
        assert round(count_params(net) / 1e6, 2) == params_m, (name, alpha)


def test_symbol_api_names_and_aliases():
    """Each Symbol-API model answers to oct_sym_<rest of the name> (the golden files'
    scheme), shares its entry, and says in its description which code base it is."""
    assert sorted(SYMBOL_MODELS) == sorted(TABLE)
    aliases = sorted(n for n in list_models('oct_sym_*'))
    assert aliases == sorted('oct_sym_' + n[len('oct_'):] for n in SYMBOL_MODELS)
    for alias in aliases:
        info = get_model_info(alias)
        target = get_model_info(info.alias_of)
        assert info.fn is target.fn and info.converter is target.converter
        assert 'Symbol API (utils/symbol)' in info.description
        assert info.classifier == 'classifier' and info.data_config['interpolation'] == 'bicubic'
    # the Gluon API's pre-activation ResNets are a different implementation
    assert 'Gluon API' in get_model_info('oct_resnet50_v2b').description
    assert get_model_info('oct_resnet50_v2b').fn is not get_model_info('oct_resnet50_v2').fn


def test_se_flag_and_fixed_structure():
    """use_se is a keyword of the SE model (so the trainer's --use-se applies to it);
    the structure the name fixes cannot be overridden."""
    assert hasattr(get_model('oct_se_resnet50_v2', use_se=True).L2_B01, 'se')
    assert not hasattr(get_model('oct_se_resnet50_v2', use_se=False).L2_B01, 'se')
    assert hasattr(get_model('oct_resnet26_v2', use_se=True).L2_B01, 'se')
    with pytest.raises(ModelConstructionError, match='groups'):
        get_model('oct_resnext50_32x4d_v2', groups=16)


@pytest.mark.parametrize('name,alpha', [
    ('oct_resnext50_32x4d_v2', 0.125), ('oct_resnext50_32x4d_v2', 0.0625),
    ('oct_resnext50_32x4d_v2', 0.3), ('oct_resnext101_32x4d_v2', 0.375)])
def test_resnext_alpha_the_reference_cannot_build(name, alpha):
    # the reference's symbol_resnextv2_32x4d fails for these too (checked with mxnet 1.9.1)
    with pytest.raises(ModelConstructionError, match=r'min\(part, 32\)'):
        get_model(name, alpha=alpha)


@pytest.mark.parametrize('alpha', [0, 0.0, 0.02, 1 / 32 - 1e-6])
def test_densenet_alpha_the_reference_cannot_build(alpha):
    # int(32 * alpha) == 0: no low channel is ever grown (the reference raises IndexError)
    with pytest.raises(ModelConstructionError, match=r'int\(32 \* alpha\) >= 1'):
        get_model('oct_densenet121_v2', alpha=alpha)


@pytest.mark.parametrize('alpha', [1.0, 1.5, -0.5, -2, 'half', None, True])
def test_bad_alpha(alpha):
    with pytest.raises(ModelConstructionError, match='alpha'):
        get_model('oct_resnet26_v2', alpha=alpha)


def test_buildable_edges():
    """Alphas the reference builds (mxnet 1.9.1 run): ResNeXt at 0 and 0.25, DenseNet at
    1/32 and 0.9; alpha 0 is octave (stride by pooling) but has no low part."""
    for name, alpha in [('oct_resnext50_32x4d_v2', 0), ('oct_resnext50_32x4d_v2', 0.25),
                        ('oct_densenet121_v2', 1 / 32), ('oct_densenet121_v2', 0.9)]:
        assert count_macs(get_model(name, alpha=alpha), (1, 3, 64, 64)) > 0
    net = get_model('oct_resnet26_v2', alpha=0)
    assert net.octave and not net.L2_B01.conv1.conv.paths['h2l']
    assert get_model('oct_resnet26_v2').alpha == 0.25
    assert not get_model('oct_resnet26_v2', alpha=-1).octave


@pytest.mark.parametrize('name,alpha', [('oct_resnet26_v2', 0.125), ('oct_se_resnet50_v2', 0.3),
                                        ('oct_densenet121_v2', 0.25)])
def test_backward_on_cpu(name, alpha):
    """Channel offsets that are not multiples of oneDNN's block broke the 4-D Concat
    backward of mxnet 1.9.1 ("could not construct a sub-memory"; the reference's Symbol
    DenseNet at 0.25 fails so); these models must still train on CPU."""
    net = get_model(name, classes=10, alpha=alpha)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, 32, 32)))
    with mx.autograd.record():
        loss = mx.nd.softmax_cross_entropy(net(x), mx.nd.array([1, 2]))
    loss.backward()
    for pname, param in net.collect_params().items():
        if param.grad_req != 'null':
            assert np.isfinite(param.grad().asnumpy()).all(), pname


def test_input_size_checked():
    net = get_model('oct_resnet26_v2', alpha=0.25, classes=10)
    net.initialize()
    assert net(mx.nd.zeros((1, 3, 30, 30))).shape == (1, 10)   # ceil(30/4) = 8
    net.hybridize()
    for shape in [(1, 3, 48, 48), (1, 3, 64, 100), (3, 64, 64)]:
        with pytest.raises(ValueError, match='ceil|N, C, H, W'):
            net(mx.nd.zeros(shape))
    plain = get_model('oct_resnet26_v2', alpha=-1, classes=10)   # no low part: any size
    plain.initialize()
    assert plain(mx.nd.zeros((1, 3, 48, 48))).shape == (1, 10)


@pytest.mark.slow
@pytest.mark.parametrize('path', SLOW_GOLDEN, ids=[os.path.basename(p)[:-5] for p in SLOW_GOLDEN])
def test_slow_golden(path):
    """224 px goldens of every architecture and the alphas left out of the default run."""
    golden = load(path)
    registry = golden['registry']
    net = convert_state_dict(registry['name'], golden_weights(golden['params']),
                             **registry['kwargs'])
    net.hybridize(static_alloc=True, static_shape=True)
    logits = net(mx.nd.array(input_of(golden))).asnumpy()
    assert relative_error(logits, golden['logits']) < 1e-4
    assert count_params(net) == golden['num_params']
    macs = count_macs(net, (1,) + tuple(golden['input']['shape'][1:]))
    assert abs(macs - golden['macs']) <= 1e-3 * golden['macs']


def test_slow_goldens_present():
    assert len(SLOW_GOLDEN) >= 9, 'expected a 224 px golden per architecture'


# --------------------------------------------------------------------- Symbol checkpoints

def _write_symbol_checkpoint(golden, prefix, epoch, extra_nodes=()):
    """What ``mx.model.save_checkpoint(prefix, epoch, sym, arg, aux)`` writes for the
    reference's net: ``arg:``/``aux:`` keys in one mx.nd.save file (byte-identical to the
    reference's output for the same dicts, checked once with its code) and a symbol file
    whose parameter nodes are ``op: null``."""
    weights = golden_weights(golden['params'])
    arrays = {('aux:' if role in ('mean', 'var') else 'arg:') + name: mx.nd.array(weights[name])
              for name, _, role in golden['params']}
    mx.nd.save('%s-%04d.params' % (prefix, epoch), arrays)
    names = ['data'] + [n for n, _, _ in golden['params']] + list(extra_nodes)
    nodes = [{'op': 'null', 'name': n, 'inputs': []} for n in names]
    with open('%s-symbol.json' % prefix, 'w') as f:
        json.dump({'nodes': nodes, 'arg_nodes': list(range(len(nodes))), 'heads': [[0, 0, 0]]}, f)


@pytest.mark.parametrize('stem,alpha', [('oct_sym_resnet26_v2_a0250', 0.25),
                                        ('oct_sym_resnet26_v2_plain', -1)])
def test_symbol_checkpoint_loader_and_cli(tmp_path, stem, alpha):
    golden = load(os.path.join(GOLDEN, stem + '.json'))
    name = golden['registry']['name']
    prefix = str(tmp_path / 'ablation')
    _write_symbol_checkpoint(golden, prefix, 7)
    x = mx.nd.array(input_of(golden))

    state_dict = load_symbol_checkpoint(prefix, 7)
    assert not any(k.startswith(('arg:', 'aux:')) for k in state_dict)
    net = convert_state_dict(name, state_dict, alpha=alpha)
    assert relative_error(net(x).asnumpy(), golden['logits']) < 1e-4

    # the CLI hands the raw arg:/aux: dict to the converter
    out = str(tmp_path / 'converted.params')
    rc = convert_module.main(['--model', name, '--alpha', str(alpha),
                              '--checkpoint', '%s-0007.params' % prefix, '--out', out])
    assert rc == 0
    net = get_model(name, alpha=alpha)
    net.load_parameters(out)
    assert relative_error(net(x).asnumpy(), golden['logits']) < 1e-4


def test_symbol_checkpoint_errors(tmp_path):
    golden = load(os.path.join(GOLDEN, 'oct_sym_resnet26_v2_plain.json'))
    prefix = str(tmp_path / 'plain')
    _write_symbol_checkpoint(golden, prefix, 0, extra_nodes=['L9_B01_conv1_conv_weight'])
    with pytest.raises(ConversionError, match='L9_B01_conv1_conv_weight'):
        load_symbol_checkpoint(prefix, 0)
    with pytest.raises(FileNotFoundError):
        load_symbol_checkpoint(prefix, 1)
    os.remove(prefix + '-symbol.json')
    state_dict = load_symbol_checkpoint(prefix, 0)   # the graph file is optional
    # a baseline checkpoint given an octave alpha: say which alpha to use
    with pytest.raises(ConversionError, match='alpha=-1'):
        convert_state_dict('oct_resnet26_v2', state_dict, alpha=0.25)
    # wrong depth: every problem listed, nothing loaded
    with pytest.raises(ConversionError, match='missing'):
        convert_state_dict('oct_resnet50_v2', state_dict, alpha=-1)
    with pytest.raises(ConversionError, match='twice'):
        strip_symbol_prefixes({'arg:a': np.zeros(1), 'aux:a': np.zeros(1)})
    plain = str(tmp_path / 'noprefix-0000.params')
    mx.nd.save(plain, {'conv1_conv_weight': mx.nd.zeros((64, 3, 7, 7))})
    with pytest.raises(ConversionError, match='not a Symbol checkpoint'):
        load_symbol_checkpoint(str(tmp_path / 'noprefix'), 0)
    with open(str(tmp_path / 'garbage-0000.params'), 'wb') as f:
        f.write(b'not an mxnet file')
    with pytest.raises(ConversionError, match='cannot read .* as an MXNet .params file'):
        load_symbol_checkpoint(str(tmp_path / 'garbage'), 0)
