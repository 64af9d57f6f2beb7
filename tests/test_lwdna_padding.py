"""LW-DNA width padding for speed (issue 17): ``lwdna.cpu_widths`` (the widths optimize pads
the learned widths to) and ``pad_widths(config=...)``. Speed itself is measured in
bench/ (docs/lwdna.md "Speed"), never asserted here."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from conftest import DATA
from gluon_nets import get_model, inference
from gluon_nets.inference import TOLERANCE, optimize, relative_error
from gluon_nets.models import lwdna
from gluon_nets.models.lwdna.padding import map_widths

GOLDEN_CONFIG = os.path.join(DATA, 'golden', 'lwdna', 'resnet50_hh_wide2.json')


def _golden_config():
    with open(GOLDEN_CONFIG) as f:
        return json.load(f)['shrink']['config']


def _widths(config):
    return [config['stem']] + list(config['stage_out']) + \
        [w for stage in config['blocks'] for block in stage for w in block]


def test_cpu_widths_give_3x3_convs_brgconv_widths():
    config = _golden_config()
    fast = lwdna.cpu_widths(config, 50, 16)
    assert all(new >= old for new, old in zip(_widths(fast), _widths(config)))
    assert fast['stem'] == 80 and fast['stage_out'] == [240, 496, 992, 1936]
    conv1 = [b[0] for stage in fast['blocks'] for b in stage]
    conv2 = [b[1] for stage in fast['blocks'] for b in stage]
    assert all(w % 16 == 0 for w in conv1)
    # the 3x3 widths: the smallest multiple of 32 or 48 (239 -> 240, 257 -> 288, 489 -> 512)
    assert all(w % 32 == 0 or w % 48 == 0 for w in conv2), conv2
    assert fast['blocks'][2][3][1] == 240 and fast['blocks'][2][2][1] == 288
    assert fast['blocks'][3][1][1] == 512
    # rounding to 16 alone leaves 3x3 widths oneDNN runs on its slower kernel (272, 496)
    assert any(w % 32 and w % 48 for stage in map_widths(config, lambda w: -(-w // 16) * 16)
               ['blocks'] for b in stage for w in b[1:])
    # plain widths stay; AVX2 (8) and basic blocks get plain rounding
    assert lwdna.cpu_widths(None, 50, 16) == lwdna.default_config(50)
    assert lwdna.cpu_widths(config, 50, 8) == map_widths(config, lambda w: -(-w // 8) * 8)
    small18 = {'stem': 40, 'stage_out': [40, 72, 136, 264], 'blocks': [
        [[40]] * 2, [[72]] * 2, [[136]] * 2, [[264]] * 2]}
    assert lwdna.cpu_widths(small18, 18, 16)['blocks'][2][0] == [144]


def test_pad_widths_to_a_given_config_is_exact_and_never_narrower():
    config = {'stem': 24, 'stage_out': [40, 72, 136, 264],
              'blocks': [[[10, 11]] * 3, [[20, 21]] * 4, [[33, 35]] * 6, [[65, 66]] * 3]}
    net = get_model('lwdna_resnet50', config=config, classes=10)
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, 32, 32)))
    target = lwdna.cpu_widths(config, 50, 16)
    padded = lwdna.pad_widths(net, config=target)
    assert padded.config == target and padded.config['blocks'][3][0] == [80, 96]
    assert relative_error(padded(x).asnumpy(), net(x).asnumpy()) < 1e-5
    narrower = json.loads(json.dumps(target))
    narrower['blocks'][1][2][0] = 16
    with pytest.raises(ValueError, match='narrower than the net'):
        lwdna.pad_widths(net, config=narrower)


def test_optimize_pads_lwdna_3x3_convs_for_brgconv(monkeypatch):
    """On AVX-512 (forced here, whatever this CPU has) optimize pads the golden shrink
    config with cpu_widths: every 3x3 conv of the graph 32- or 48-wide, exact."""
    monkeypatch.setattr(inference, '_simd_channels', lambda: 16)
    net = get_model('lwdna_resnet50', config=_golden_config(), classes=10)
    net.initialize(mx.init.Xavier())
    fast = optimize(net, (1, 3, 32, 32), backend=None)
    assert fast.optimize_report['rewrites'] == ['lwdna.pad_widths(cpu_widths(16))']
    shapes = [p.data().shape for n, p in fast.collect_params().items() if p.data().ndim == 4]
    three = [s[0] for s in shapes if s[2:] == (3, 3)]
    assert len(three) == 16 and all(w % 32 == 0 or w % 48 == 0 for w in three), three
    assert all(s[0] % 16 == 0 and s[1] % 16 in (0, 3) for s in shapes), shapes
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (2, 3, 32, 32)))
    assert relative_error(fast(x).asnumpy(), net(x).asnumpy()) <= TOLERANCE


# -- training padded (train_imagenet.py --lwdna-pad N) ------------------------------------

ODD_CONFIG = {'stem': 24, 'stage_out': [40, 72, 136, 264],
              'blocks': [[[10, 11]] * 3, [[20, 21]] * 4, [[33, 35]] * 6, [[65, 66]] * 3]}


def test_padded_training_step_keeps_padding_zero_and_files_unpadded(tmp_path):
    """One SGD step (momentum, weight decay) on the padded net: every padded entry of a
    trainable parameter gets an exactly zero gradient and stays 0; the loss is the
    unpadded net's; the saved file has the unpadded layout (an unpadded net loads it and
    computes what the padded one does) and loads back into a padded net (resume)."""
    from mxnet import autograd, gluon
    net = get_model('lwdna_resnet50', config=ODD_CONFIG, classes=10)
    net.initialize(mx.init.Xavier())
    padded = lwdna.pad_widths(net, 16, unpadded_files=True)
    assert isinstance(padded, lwdna.PaddedLWDNAResNet) and padded.config['stem'] == 32
    rng = np.random.RandomState(2)
    # float64: train-mode BN on a few pixels makes float32 gradients of a fresh net
    # sensitive to summation order (1e-6 input noise moves them by 20%), which would hide
    # a real difference
    x = mx.nd.array(rng.uniform(-1, 1, (8, 3, 64, 64)), dtype='float64')
    y = mx.nd.array(rng.randint(0, 10, 8), dtype='float64')
    losses = []
    for model in (net, padded):
        model.cast('float64')
        trainer = gluon.Trainer(model.collect_params(), 'sgd',
                                {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-4})
        for _ in range(2):
            with autograd.record():
                loss = gluon.loss.SoftmaxCrossEntropyLoss()(model(x), y)
            loss.backward()
            trainer.step(8)
        losses.append(loss.asnumpy())
    assert np.allclose(losses[0], losses[1], rtol=1e-9, atol=0), losses
    real = net._collect_params_with_prefix()
    for name, param in padded._collect_params_with_prefix().items():
        value, inside = param.data().asnumpy(), tuple(slice(0, n) for n in real[name].shape)
        assert np.allclose(value[inside], real[name].data().asnumpy(), rtol=1e-9, atol=1e-12)
        if param.grad_req == 'null':
            continue
        mask = np.ones(param.shape, bool)
        mask[inside] = False
        assert not np.any(value[mask]), name
        assert not np.any(param.grad().asnumpy()[mask]), name
    for model in (net, padded):
        model.cast('float32')

    path = str(tmp_path / 'padded.params')
    padded.save_parameters(path)
    saved = mx.nd.load(path)
    assert {k: v.shape for k, v in saved.items()} == \
        {k: p.shape for k, p in real.items()}
    plain = get_model('lwdna_resnet50', config=ODD_CONFIG, classes=10)
    plain.load_parameters(path)
    again = lwdna.pad_widths(plain, 16, unpadded_files=True)
    again.load_parameters(path)            # unpadded file into the padded layout
    test = mx.nd.array(rng.uniform(-1, 1, (2, 3, 64, 64)))
    padded.hybridize(False)
    want = padded(test).asnumpy()
    assert relative_error(plain(test).asnumpy(), want) < 1e-5
    assert relative_error(again(test).asnumpy(), want) < 1e-5
    other = str(tmp_path / 'other.params')
    mx.nd.save(other, dict(saved, **{'fc.weight': mx.nd.zeros((10, 100))}))
    with pytest.raises(ValueError, match="'fc.weight' of shape \\(10, 100\\)"):
        again.load_parameters(other)


def test_lwdna_pad_flag_is_checked_up_front():
    from types import SimpleNamespace
    from gluon_nets import get_model_info
    from gluon_nets.models.lwdna.training import LWDNATraining
    args = SimpleNamespace(lwdna_ratio=None, lwdna_config=None, resume=None, horovod=False,
                           lwdna_pad=16)
    LWDNATraining().check(args, get_model_info('lwdna_resnet18'))
    with pytest.raises(ValueError, match='--lwdna-pad pads an LW-DNA net'):
        LWDNATraining().check(args, get_model_info('hh_resnet18'))
    with pytest.raises(ValueError, match='--lwdna-pad cannot start from --pretrained-params'):
        LWDNATraining().check(SimpleNamespace(**dict(vars(args), pretrained_params='w.params')),
                              get_model_info('lwdna_resnet18'))
    with pytest.raises(ValueError, match=r'--lwdna-pad must be .* got 0'):
        LWDNATraining().check(SimpleNamespace(**dict(vars(args), lwdna_pad=0)),
                              get_model_info('lwdna_resnet18'))


def test_train_imagenet_lwdna_pad_trains_resumes_and_saves_unpadded(tmp_path):
    """``--lwdna-pad 16`` end to end: the run's checkpoints have the unpadded layout
    (eval's ``get_model(model.json)`` loads them), and ``--resume`` continues."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = {'stem': 24, 'stage_out': [24, 40, 72, 136],
              'blocks': [[[10]] * 2, [[20]] * 2, [[33]] * 2, [[65]] * 2]}
    path = tmp_path / 'config.json'
    path.write_text(json.dumps(config))
    run = tmp_path / 'run'

    def train(*args):
        return subprocess.run(
            [sys.executable, os.path.join(root, 'train_imagenet.py'), '--threads', '1'] +
            list(args), capture_output=True, text=True, timeout=300, cwd=root,
            env=dict(os.environ, OMP_NUM_THREADS='1'))
    result = train('--model', 'lwdna_resnet18', '--lwdna-config', str(path), '--lwdna-pad', '16',
                   '--num-epochs', '1', '--max-iters', '2', '--batch-size', '16',
                   '--save-dir', str(run), '--no-progress', '-j', '1')
    assert result.returncode == 0, result.stderr
    assert 'widths padded to multiples of 16' in result.stdout + result.stderr
    model = json.loads((run / 'model.json').read_text())
    assert model['model'] == 'lwdna_resnet18' and model['kwargs'] == {'config': config}
    result = train('--resume', str(run), '--num-epochs', '2')
    assert result.returncode == 0, result.stderr
    assert 'widths padded to multiples of 16' in result.stdout + result.stderr
    net = get_model('lwdna_resnet18', classes=model['data_config']['num_classes'], config=config)
    net.load_parameters(str(run / 'last.params'))     # the unpadded layout
    assert net.stem.conv1.weight.shape[0] == 24
