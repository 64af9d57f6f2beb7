"""MENet family (MENet, ShuffleNet v1, MobileNet v1 of clavichord93/MENet): the official
checkpoints on real photos, the README's MFLOPs, input sizes, builders, converter errors.

The golden logits of all 17 configurations run in test_golden.py. Tests that need the
unlicensed official checkpoints read them from SHARED and skip when it is absent.
"""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from conftest import DATA, ROOT, SHARED
from golden import golden_weights, load, relative_error
from gluon_nets import get_model, list_models
from gluon_nets.convert import ConversionError, convert_state_dict, main as convert_main
from gluon_nets.model_zoo import ModelConstructionError, get_model_info
from gluon_nets.models.menet import menet, shufflenet_widths
from gluon_nets.profile import count_macs, count_params
from gluon_nets.resources import imagenet_class_names, imagenet_synsets

GOLDEN = os.path.join(DATA, 'golden', 'menet')
WEIGHTS = os.path.join(SHARED, 'reference', 'menet', 'weights')
CHECKPOINTS = {'menet108_8x1_g3': '108-MENet-8x1-group-3.pth.tar',
               'menet128_8x1_g4': '128-MENet-8x1-group-4.pth.tar'}
ALL_CONFIGS = ['menet108_8x1_g3', 'menet128_8x1_g4', 'menet228_12x1_g3', 'menet256_12x1_g4',
               'menet348_12x1_g3', 'menet352_12x1_g8', 'menet456_24x1_g3',
               'shufflenet_0.5x_g3', 'shufflenet_1x_g3', 'shufflenet_1.5x_g3', 'shufflenet_2x_g3',
               'shufflenet_1x_g4', 'shufflenet_1x_g8',
               'mobilenet_0.25x', 'mobilenet_0.5x', 'mobilenet_0.75x', 'mobilenet_1x']


def _weights_or_skip(name):
    path = os.path.join(WEIGHTS, CHECKPOINTS[name])
    if not os.path.isfile(path):
        pytest.skip('the official MENet checkpoints are unlicensed and not in the repository; '
                    'they are read from %s, which is absent here' % WEIGHTS)
    pytest.importorskip('torch', reason='reading .pth.tar checkpoints needs the torch extra')
    return path


def _golden_net(name):
    golden = load(os.path.join(GOLDEN, name + '.json'))
    return golden, convert_state_dict(name, golden_weights(golden['params']))


# ----------------------------------------------------------------- registry and goldens

def test_every_reference_config_is_registered_with_a_golden():
    assert set(ALL_CONFIGS) <= set(list_models('menet'))
    for name in ALL_CONFIGS:
        golden = load(os.path.join(GOLDEN, name + '.json'))
        assert golden['registry']['name'] == name
        info = get_model_info(name)
        # registry metadata = the reference's own counts
        assert (info.params, info.macs) == (golden['num_params'], golden['macs']), name


def test_registry_entry_records_the_reference_pipeline_classifier_and_weights():
    """data_config is the validation pipeline the pretrained goldens were preprocessed with
    (resize 256 -> centre crop 224, PIL bilinear, ImageNet mean/std); ``classifier`` names
    the final Dense; ``weights`` tells the licence (MENet) or that there are none."""
    with open(os.path.join(GOLDEN, 'pretrained_menet108_8x1_g3.json')) as f:
        pipeline = json.load(f)['preprocessing']
    for name in ALL_CONFIGS:
        info = get_model_info(name)
        config = info.data_config
        assert config['input_size'] == (3, pipeline['crop'], pipeline['crop'])
        assert config['crop_ratio'] == pipeline['crop'] / pipeline['resize_short']
        assert config['mean'] == tuple(pipeline['mean'])
        assert config['std'] == tuple(pipeline['std'])
        assert config['interpolation'] in pipeline['interpolation'].lower()
        head = getattr(get_model(name, classes=7), info.classifier)
        assert isinstance(head, mx.gluon.nn.Dense) and head.weight.shape[0] == 7, name
        assert info.min_input_size == 32 and not info.slow
    assert 'no licence' in get_model_info('menet108_8x1_g3').weights
    assert get_model_info('shufflenet_1x_g3').weights.startswith('none')
    assert get_model_info('mobilenet_1x').reference.endswith('MobileNet.py')


# ----------------------------------------------------------------- official weights

@pytest.mark.parametrize('name', sorted(CHECKPOINTS))
def test_official_checkpoint_classifies_photos_like_the_reference(name, tmp_path):
    """The authors' .pth.tar through our CLI (python -m gluon_nets.convert) reproduces their logits and top-5 on four
    real photos (preprocessed by the reference's pipeline into pretrained_input.npy)."""
    checkpoint = _weights_or_skip(name)
    with open(os.path.join(GOLDEN, 'pretrained_%s.json' % name)) as f:
        reference = json.load(f)
    out = str(tmp_path / (name + '.params'))
    cli = subprocess.run([sys.executable, '-m', 'gluon_nets.convert', '--model', name,
                          '--checkpoint', checkpoint, '--out', out], cwd=ROOT,
                         capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert cli.returncode == 0, cli.stderr
    net = get_model(name)
    net.load_parameters(out)
    net.hybridize(static_alloc=True, static_shape=True)
    photos = np.load(os.path.join(WEIGHTS, 'pretrained_input.npy'))
    logits = net(mx.nd.array(photos)).asnumpy()
    ref = np.asarray(reference['logits'], dtype=np.float32)
    assert relative_error(logits, ref) < 1e-4
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert top5.tolist() == reference['top5']
    names = imagenet_class_names()
    assert [[names[i] for i in row] for row in top5] == reference['top5_names']
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(probs.max(1), reference['top1_prob'], atol=1e-4)


def test_training_checkpoint_with_module_prefix(tmp_path):
    """main.py's training checkpoints (DataParallel 'module.' names + optimizer state)
    convert like the released form."""
    torch = pytest.importorskip('torch', reason='writing .pth.tar files needs torch')
    golden, expected = _golden_net('menet108_8x1_g3')
    state = {'module.' + k: torch.from_numpy(v) for k, v in golden_weights(golden['params']).items()}
    path = str(tmp_path / 'checkpoint.pth.tar')
    torch.save({'model_name': 'menet', 'state_dict': state, 'optimizer': {'state': {}},
                'last_epoch': 3, 'best_prec1': 12.5}, path)
    out = str(tmp_path / 'out.params')
    assert convert_main(['--model', 'menet108_8x1_g3', '--checkpoint', path, '--out', out]) == 0
    net = get_model('menet108_8x1_g3')
    net.load_parameters(out)
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, 64, 64)).astype('float32'))
    np.testing.assert_array_equal(net(x).asnumpy(), expected(x).asnumpy())


def test_classify_example_names_the_cat(tmp_path):
    """examples/classify.py: official checkpoint + an image file -> top-5 with names."""
    checkpoint = _weights_or_skip('menet108_8x1_g3')
    from PIL import Image
    photo = np.load(os.path.join(WEIGHTS, 'pretrained_input.npy'))[0]   # the chelsea cat
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pixels = ((photo.transpose(1, 2, 0) * std + mean) * 255).round().clip(0, 255)
    image = str(tmp_path / 'cat.png')
    Image.fromarray(pixels.astype(np.uint8)).save(image)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'examples', 'classify.py'), '--model',
         'menet108_8x1_g3', '--checkpoint', checkpoint, '--image', image],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:2] in ('1.', '2.', '3.')]
    assert len(lines) == 3 and 'Egyptian cat' in lines[0], result.stdout
    assert {'tabby', 'tiger cat'} <= {line.split('class')[0][3:].strip() for line in lines[1:]}


def test_imagenet_class_names():
    names, synsets = imagenet_class_names(), imagenet_synsets()
    assert len(names) == len(synsets) == 1000
    assert synsets == sorted(set(synsets))            # the standard (sorted wnid) order
    assert (names[0], names[285], names[967], names[665]) == (
        'tench', 'Egyptian cat', 'espresso', 'moped')


# ----------------------------------------------------------------- sizes and cost

# README column "MFLOPs" (really mult-adds) and what our graph counts, per image at 224.
README_MFLOPS = {'menet108_8x1_g3': (38, 38287440), 'menet228_12x1_g3': (144, 144092352),
                 'menet256_12x1_g4': (140, 140842560), 'menet348_12x1_g3': (299, 299616192),
                 'menet352_12x1_g8': (144, 144281024), 'menet456_24x1_g3': (551, 551048928)}


@pytest.mark.parametrize('name', sorted(README_MFLOPS))
def test_macs_match_the_readme(name):
    readme, pinned = README_MFLOPS[name]
    from gluon_nets.summary import summarize
    (row,) = summarize([name], measure_graph=True)
    assert row['macs'] == pinned
    assert int(row['macs'] / 1e6) == readme     # the README truncates to whole MFLOPs


def test_global_pooling_any_input_size():
    """The head pools globally: at 224 that is the reference's AvgPool2d(7); at other
    sizes the logits are the classifier applied to the mean of the last feature map."""
    golden, net = _golden_net('menet108_8x1_g3')
    rng = np.random.RandomState(0)
    for shape in [(1, 3, 224, 224), (2, 3, 160, 160), (1, 3, 256, 320), (1, 3, 33, 47)]:
        x = mx.nd.array(rng.uniform(-1, 1, shape).astype('float32'))
        features = net.features(x)
        expected = net.classifier(features.mean(axis=(2, 3)))
        if shape[2:] == (224, 224):
            assert features.shape[2:] == (7, 7)
            expected = net.classifier(mx.nd.Pooling(features, kernel=(7, 7), pool_type='avg'))
        logits = net(x)
        assert logits.shape == (shape[0], 1000)
        np.testing.assert_allclose(logits.asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)
    net.hybridize(static_alloc=True, static_shape=True)   # hybridized too, and tiny inputs
    assert net(mx.nd.zeros((1, 3, 1, 1))).shape == (1, 1000)


def test_wrong_channel_count_is_an_error():
    _, net = _golden_net('shufflenet_1x_g3')
    with pytest.raises(mx.base.MXNetError, match='(?i)shape'):
        net(mx.nd.zeros((1, 1, 64, 64))).wait_to_read()


# ----------------------------------------------------------------- builders

def test_generic_builder_reproduces_a_config():
    custom = menet(stage_channels=(228, 456, 912), side_channels=12, groups=3, stem_channels=24)
    assert count_params(custom) == get_model_info('menet228_12x1_g3').params
    custom.initialize()
    x = mx.nd.zeros((1, 3, 64, 64))
    assert custom(x).shape == (1, 1000)
    # a new configuration: per-stage side widths, 10 classes
    net = get_model('menet108_8x1_g3', classes=10, stage_channels=(120, 240, 480),
                    side_channels=(4, 8, 16), stem_channels=24)
    net.initialize()
    assert net(x).shape == (1, 10)
    assert net.features.stage_3_2.s_merge.conv.weight.shape == (16, 120, 1, 1)


def test_shufflenet_widths_follow_the_reference_rounding():
    # shufflenet_group_<g>: int(base * mul) rounded up to a multiple of g
    assert shufflenet_widths(3, 0.5, 0.5) == (12, (120, 240, 480))
    assert shufflenet_widths(3, 1.5, 1.0) == (24, (360, 720, 1440))
    assert shufflenet_widths(8, 1.0, 1.0) == (24, (384, 768, 1536))
    assert shufflenet_widths(2, 0.5, 0.5) == (12, (100, 200, 400))
    assert shufflenet_widths(1, 1.0, 1.0) == (24, (144, 288, 576))
    net = get_model('shufflenet_1x_g3', groups=1)        # a reference width without a config
    net.initialize()
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 1000)


@pytest.mark.parametrize('name, kwargs, message', [
    ('menet228_12x1_g3', {'groups': 5}, 'multiple of groups=5'),
    ('menet228_12x1_g3', {'side_channels': 0}, 'side_channels must be >= 1'),
    ('menet228_12x1_g3', {'side_channels': (8, 8)}, 'one width per stage'),
    ('menet228_12x1_g3', {'stage_channels': (228, 456)}, 'same length'),
    ('shufflenet_1x_g3', {'groups': 5}, 'groups must be one of'),
    ('mobilenet_1x', {'width_mul': 0.0}, 'width_mul must be'),
    ('menet108_8x1_g3', {'bogus': 1}, 'bad arguments'),
])
def test_unbuildable_kwargs_raise_clear_errors(name, kwargs, message):
    with pytest.raises(ModelConstructionError, match=message):
        get_model(name, **kwargs)


# ----------------------------------------------------------------- converter errors

def test_converter_reports_missing_unexpected_and_shape_problems():
    golden = load(os.path.join(GOLDEN, 'menet108_8x1_g3.json'))
    weights = golden_weights(golden['params'])
    broken = dict(weights)
    del broken['features.stage_2_3.s_evolve.weight']
    broken['features.stage_9_1.extra.weight'] = np.zeros(3, np.float32)
    broken['classifier.weight'] = np.zeros((10, 432), np.float32)
    with pytest.raises(ConversionError) as err:
        convert_state_dict('menet108_8x1_g3', broken)
    text = str(err.value)
    assert 'features.stage_2_3.s_evolve.weight' in text
    assert 'features.stage_9_1.extra.weight' in text
    assert 'classifier.weight' in text and 'shape mismatch' in text
    # weights of another architecture
    with pytest.raises(ConversionError, match='missing'):
        convert_state_dict('shufflenet_1x_g3', weights)
    # weights of another MENet width
    with pytest.raises(ConversionError, match='shape mismatch'):
        convert_state_dict('menet128_8x1_g4', weights)


def test_cli_errors(tmp_path, capsys):
    missing = str(tmp_path / 'nope.pth.tar')
    assert convert_main(['--model', 'menet108_8x1_g3', '--checkpoint', missing,
                         '--out', str(tmp_path / 'x.params')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    corrupt = tmp_path / 'corrupt.pth.tar'
    corrupt.write_bytes(b'not a checkpoint')
    out = tmp_path / 'y.params'
    assert convert_main(['--model', 'menet108_8x1_g3', '--checkpoint', str(corrupt),
                         '--out', str(out)]) == 2
    assert 'cannot read' in capsys.readouterr().err
    assert not out.exists()
    assert convert_main(['--model', 'menet_nonexistent', '--checkpoint', str(corrupt)]) == 2
    assert 'unknown model' in capsys.readouterr().err


# ----------------------------------------------------------------- inference speed-ups

@pytest.mark.parametrize('name', ['menet228_12x1_g3', 'shufflenet_1x_g8', 'mobilenet_0.25x'])
def test_fold_batchnorm_keeps_the_logits(name):
    from gluon_nets.models.menet import fold_batchnorm
    golden, net = _golden_net(name)
    x = mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (2, 3, 96, 96)).astype('float32'))
    if name.startswith('mobilenet'):
        x = x * 1e6       # the golden weights fade the signal of this plain stack (note in golden)
    before = net(x).asnumpy()
    params_before = count_params(net)
    fold_batchnorm(net)
    net.hybridize(static_alloc=True, static_shape=True)
    after = net(x).asnumpy()
    assert relative_error(after, before) < 1e-5
    # no BatchNorm is left; the graph still counts the same MACs
    assert not [p for p in net.collect_params() if 'running' in p]
    assert count_params(net) < params_before
    assert count_macs(net) == golden['macs']


def test_stage3_pointwise_convs_run_per_group():
    """228-g3 stage 3 (304 -> 76 per group) runs as dense convs per group; stage 2 (152 -> 38)
    stays one grouped conv; both are golden-exact (test_golden)."""
    from gluon_nets.models.menet import _PerGroupConv2D
    net = get_model('menet228_12x1_g3')
    assert isinstance(net.features.stage_3_2.compress.conv, _PerGroupConv2D)
    assert isinstance(net.features.stage_3_2.expand.conv, _PerGroupConv2D)
    assert not isinstance(net.features.stage_2_2.compress.conv, _PerGroupConv2D)
