"""Transfer learning and backbones: pretrained weights into a net with another class
count, get_classifier / reset_classifier, features_only with feature_info, GluonCV
names, canonical cache names and MXNET_HOME."""
import logging
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_nets import get_model, get_model_info, list_families, list_models
from gluon_nets.model_zoo import (ModelConstructionError, canonical_kwargs, cheapest_per_family,
                                  get_model_list, pretrained_path)
from gluon_nets.utils.atomic import save_params_atomic


def _size(name):
    info = get_model_info(name)
    return 224 if info.min_input_size > 64 else 64


def _sized(name):
    """kwargs building ``name`` for the test input size (graphs of ED-Net and ScaleNet
    are planned for one size)."""
    import inspect
    takes = 'input_size' in inspect.signature(get_model_info(name).fn).parameters
    return {'input_size': _size(name)} if takes else {}


def _build(name, classes=1000, **kwargs):
    net = get_model(name, classes=classes, **_sized(name), **kwargs)
    net.initialize(mx.init.Xavier())
    size = _size(name)
    net(mx.nd.zeros((1, 3, size, size)))
    return net


def test_pretrained_with_other_class_count_loads_all_but_the_classifier(tmp_path, caplog):
    name = 'mobilenet_0.25x'
    source = _build(name)
    path = pretrained_path(name, root=str(tmp_path))
    save_params_atomic(source, path)
    with caplog.at_level(logging.INFO, logger='gluon_nets'):
        net = get_model(name, classes=10, pretrained=True, root=str(tmp_path))
    assert any('re-initialised for 10 classes' in r.getMessage() for r in caplog.records)
    theirs = source._collect_params_with_prefix()
    for key, param in net._collect_params_with_prefix().items():
        if key.startswith('classifier.'):
            assert param.shape[0] == 10
        else:
            np.testing.assert_array_equal(param.data().asnumpy(), theirs[key].data().asnumpy())
    assert net(mx.nd.zeros((2, 3, 32, 32))).shape == (2, 10)
    same = get_model(name, pretrained=True, root=str(tmp_path))          # 1000 classes: all
    np.testing.assert_array_equal(same.get_classifier().weight.data().asnumpy(),
                                  source.get_classifier().weight.data().asnumpy())


@pytest.mark.parametrize('family', list_families())
def test_get_and_reset_classifier(family):
    name = [n for n in cheapest_per_family() if get_model_info(n).family == family][0]
    net = _build(name, classes=7)
    head = net.get_classifier()
    assert head is getattr(net, get_model_info(name).classifier)
    net.hybridize()
    size = _size(name)
    x = mx.nd.random.uniform(shape=(2, 3, size, size))
    assert net(x).shape[-1] == 7
    new = net.reset_classifier(3)
    assert net.get_classifier() is new and new is not head
    out = net(x)
    assert out.reshape((2, -1)).shape == (2, 3)


@pytest.mark.parametrize('family', list_families())
def test_features_only_shapes_match_feature_info(family):
    name = [n for n in cheapest_per_family() if get_model_info(n).family == family][0]
    size = _size(name)
    feats = get_model(name, features_only=True, **_sized(name))
    feats.initialize(mx.init.Xavier())
    feats.hybridize(static_alloc=True, static_shape=True)
    outs = feats(mx.nd.random.uniform(shape=(2, 3, size, size)))
    info = feats.feature_info
    assert len(outs) == len(info) >= 4
    reductions = [i['reduction'] for i in info]
    assert reductions == sorted(reductions) and reductions[-1] == 32
    for out, fi in zip(outs, info):
        assert out.shape == (2, fi['num_chs'], size // fi['reduction'], size // fi['reduction'])


def test_features_share_the_classifier_models_weights(tmp_path):
    name = 'oct_resnet26_v1b'
    net = _build(name)
    path = str(tmp_path / 'full.params')
    save_params_atomic(net, path)
    feats = get_model(name, features_only=True, out_indices=(1, 2, 3, 4))
    feats.load_parameters(path, ignore_extra=True)          # a converted checkpoint loads
    assert [i['reduction'] for i in feats.feature_info] == [4, 8, 16, 32]
    theirs = net._collect_params_with_prefix()
    ours = feats._collect_params_with_prefix()
    assert set(ours) == set(theirs) - {k for k in theirs if k.startswith('classifer.')}
    for key in ours:
        np.testing.assert_array_equal(ours[key].data().asnumpy(), theirs[key].data().asnumpy())
    # the deepest map is what the classifier pools
    x = mx.nd.random.uniform(shape=(1, 3, 64, 64))
    deepest = feats(x)[-1]
    assert deepest.shape == (1, 2048, 2, 2)
    prefix = str(tmp_path / 'backbone')
    feats.export(prefix)
    loaded = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    np.testing.assert_allclose(loaded(x)[3].asnumpy(), deepest.asnumpy(), rtol=1e-5, atol=1e-6)


def test_out_indices_out_of_range_names_the_stages():
    with pytest.raises(ModelConstructionError, match='stage outputs'):
        get_model('mobilenet_0.25x', features_only=True, out_indices=(7,))


def test_gluoncv_names_build_gluoncv_models(caplog):
    assert 'resnet18_v1b' not in list_models()
    with caplog.at_level(logging.INFO, logger='gluon_nets'):
        net = get_model('resnet18_v1b', classes=10)
    assert any("GluonCV" in r.getMessage() for r in caplog.records)
    net.initialize()
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 10)
    assert net.get_classifier() is net.fc
    with pytest.raises(ValueError, match='unknown model'):
        get_model('no_such_net_anywhere')
    assert get_model_list() == list_models()


def test_cache_names_are_canonical_and_honour_mxnet_home(monkeypatch, tmp_path):
    assert pretrained_path('oct_resnet152') == pretrained_path('oct_resnet152_v1f', alpha=0.125)
    assert pretrained_path('oct_resnet152', alpha=0.25) != pretrained_path('oct_resnet152')
    assert pretrained_path('oct_resnet152', classes=10) == pretrained_path('oct_resnet152')
    assert canonical_kwargs('oct_resnet50_v1b', alpha=0.25, use_se=True) == {'use_se': True}
    monkeypatch.setenv('MXNET_HOME', str(tmp_path))
    assert pretrained_path('menet108_8x1_g3') == os.path.join(str(tmp_path), 'models',
                                                              'menet108_8x1_g3.params')


def test_backbone_under_a_gluoncv_segmentation_head(tmp_path):
    """examples/backbone_segmentation.py: a converted classifier checkpoint loads into the
    backbone, GluonCV's FCN head scores every pixel."""
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location(
        'backbone_segmentation', os.path.join(ROOT, 'examples', 'backbone_segmentation.py'))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    classifier = _build('oct_resnet26_v1b')
    path = str(tmp_path / 'converted.params')
    save_params_atomic(classifier, path)
    net, info = example.build('oct_resnet26_v1b', num_classes=5, size=64, params=path)
    assert info[-1] == dict(num_chs=2048, reduction=32, module=info[-1]['module'])
    stem = net.backbone._collect_params_with_prefix()['conv1.0.weight']
    np.testing.assert_array_equal(
        stem.data().asnumpy(),
        classifier._collect_params_with_prefix()['conv1.0.weight'].data().asnumpy())
    net.hybridize()
    assert net(mx.nd.zeros((2, 3, 64, 64))).shape == (2, 5, 64, 64)
    assert example.main(['--params', str(tmp_path / 'missing.params')]) == 2


# ----------------------------------------------------------------- fine-tuning (train_imagenet.py)
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'train_imagenet.py')

FT_NET = '''
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock
from gluon_nets.model_zoo import list_families, list_models, register_family, register_model


class FtNet(HybridBlock):
    """Three conv-BN-ReLU stages (``features``) and a Dense ``output``."""

    def __init__(self, classes=1000, width=16, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential()
            for i, channels in enumerate((width, 2 * width, 4 * width)):
                self.features.add(nn.Conv2D(channels, 3, strides=1 if i == 0 else 2, padding=1),
                                  nn.BatchNorm(), nn.Activation('relu'))
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


if 'fttest' not in list_families():
    register_family('fttest', paper='none: a fine-tuning test net', classifier='output')
if 'ft_cnn' not in list_models():
    register_model('fttest', name='ft_cnn')(FtNet)
'''


@pytest.fixture(scope='module')
def ft_plugin(tmp_path_factory):
    """The plugin file; the in-process runs register its family, which is taken out of
    the registry again when the module is done (later modules count the registry)."""
    from collections import OrderedDict
    from gluon_nets import model_zoo
    from gluon_nets.training import options
    path = tmp_path_factory.mktemp('ftplugin') / 'ft_models.py'
    path.write_text(FT_NET)
    saved = (OrderedDict(model_zoo._REGISTRY), OrderedDict(model_zoo._FAMILIES))
    yield str(path)
    for live, kept in zip((model_zoo._REGISTRY, model_zoo._FAMILIES), saved):
        live.clear()
        live.update(kept)
    options._IMPORTED_FILES.pop(os.path.abspath(str(path)), None)


def _train(argv, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, TRAIN, '--threads', '1', '--no-progress',
                           '--log-interval', '0'] + list(argv),
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _five_class_tree(root, per_class=160, val_per_class=40):
    """Classes 0-4 of the embedded set as an image-folder tree (the raw encoded images)."""
    from gluon_nets.data import dataset_info
    info = dataset_info('fashion-mnist-mini')
    counts = {}
    for split, rec, limit in (('train', info['train_rec'], per_class),
                              ('val', info['val_rec'], val_per_class)):
        rec = rec.split(',')[0] if isinstance(rec, str) else rec[0]
        reader = mx.recordio.MXIndexedRecordIO(rec[:-4] + '.idx', rec, 'r')
        for key in reader.keys:
            header, raw = mx.recordio.unpack(reader.read_idx(key))
            label = int(np.asarray(header.label).reshape(-1)[0])
            if label >= 5 or counts.get((split, label), 0) >= limit:
                continue
            counts[(split, label)] = counts.get((split, label), 0) + 1
            folder = root / split / ('c%d' % label)
            folder.mkdir(parents=True, exist_ok=True)
            ext = '.png' if raw[:4] == b'\x89PNG' else '.jpg'
            (folder / ('%d%s' % (key, ext))).write_bytes(raw)
        reader.close()
    return str(root)


def _val_top1(run_dir):
    with open(os.path.join(run_dir, 'checkpoint.json')) as f:
        return json.load(f)['metrics'][-1]['val_top1']


_EMBEDDED_STATS = ['--rgb-mean', '55.92,55.92,55.92', '--rgb-std', '84.74,84.74,84.74']
_FT_COMMON = ['--model', 'ft_cnn', '--input-size', '32', '--batch-size', '32', '-j', '1',
              '--deterministic', '--seed', '1']


@pytest.fixture(scope='module')
def five_class_run(ft_plugin, tmp_path_factory):
    """ft_cnn trained on classes 0-4 of the embedded set (an image folder of 600 images
    per class, 4 epochs: ~77% val top-1 on those 5 classes); returns its run directory."""
    tmp = tmp_path_factory.mktemp('five')
    tree = _five_class_tree(tmp / 'tree', per_class=600)
    run = str(tmp / 'pre')
    result = _train(_FT_COMMON + ['--import-module', ft_plugin, '--data-dir', tree,
                                  '--num-epochs', '4', '--lr', '0.1', '--lr-mode', 'cosine',
                                  '--min-random-area', '0.8', '--no-jitter', '--no-lighting',
                                  '--save-dir', run] + _EMBEDDED_STATS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.load(open(os.path.join(run, 'model.json')))['data_config']['num_classes'] == 5
    return run


def test_fine_tuning_a_five_class_model_to_ten_beats_training_from_scratch(ft_plugin,
                                                                           five_class_run,
                                                                           tmp_path):
    """--pretrained-params of the 5-class run (its 5-way classifier re-initialised for 10,
    logged) with --lr-mult-backbone 0.1, against the same 10 iterations from scratch. Seed
    1 gives 0.347 vs 0.201 (seeds 2-4: 0.281/0.235, 0.378/0.165, 0.437/0.257)."""
    short = _FT_COMMON + ['--import-module', ft_plugin, '--dataset', 'fashion-mnist-mini',
                          '--num-epochs', '1', '--max-iters', '10', '--lr', '0.1',
                          '--lr-mode', 'constant']
    tuned, scratch = str(tmp_path / 'tuned'), str(tmp_path / 'scratch')
    result = _train(short + ['--save-dir', tuned, '--lr-mult-backbone', '0.1',
                             '--pretrained-params', os.path.join(five_class_run, 'best.params')])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "classifier 'output' re-initialised for 10 classes (the checkpoint has 5)" in result.stdout
    assert 'backbone parameters at lr x 0.1' in result.stdout
    result = _train(short + ['--save-dir', scratch])
    assert result.returncode == 0, result.stderr[-2000:]
    top1_tuned, top1_scratch = _val_top1(tuned), _val_top1(scratch)
    assert top1_tuned >= top1_scratch + 0.05, (top1_tuned, top1_scratch)


def test_use_pretrained_num_classes_and_freeze_backbone(ft_plugin, five_class_run, tmp_path):
    """--use-pretrained reads $MXNET_HOME/models/<name>.params; --num-classes 10 against a
    5-class checkpoint re-initialises the classifier; --freeze-backbone leaves every
    backbone weight as loaded (BN running statistics may follow the data)."""
    home = tmp_path / 'home'
    (home / 'models').mkdir(parents=True)
    source = os.path.join(five_class_run, 'best.params')
    (home / 'models' / 'ft_cnn.params').write_bytes(open(source, 'rb').read())
    run = str(tmp_path / 'frozen')
    env_home = dict(os.environ, MXNET_HOME=str(home))
    result = subprocess.run(
        [sys.executable, TRAIN, '--threads', '1', '--no-progress', '--log-interval', '0'] +
        _FT_COMMON + ['--import-module', ft_plugin, '--dataset', 'fashion-mnist-mini',
                      '--num-classes', '10', '--use-pretrained', '--freeze-backbone',
                      '--num-epochs', '1', '--max-iters', '3', '--save-dir', run],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(env_home, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 're-initialised for 10 classes (the checkpoint has 5)' in result.stdout
    assert 'backbone parameters frozen' in result.stdout
    before, after = mx.nd.load(source), mx.nd.load(os.path.join(run, 'last.params'))
    assert after['output.weight'].shape == (10, 64)
    for key, value in before.items():
        if key.startswith('output.') or 'running_' in key:
            continue
        np.testing.assert_array_equal(after[key].asnumpy(), value.asnumpy(), err_msg=key)


@pytest.mark.parametrize('extra, message', [
    (['--pretrained-params', '/nonexistent.params'], '--pretrained-params /nonexistent.params: no such file'),
    (['--lr-mult-backbone', '-1'], '--lr-mult-backbone must be a number >= 0'),
    (['--lr-mult-backbone', 'nan'], '--lr-mult-backbone must be a'),
    (['--lr-mult-backbone', '0.1', '--freeze-backbone'], 'contradict'),
    (['--jitter', '-0.1'], '--jitter must be a number >= 0'),
    (['--lighting', '0.1', '--no-lighting'], 'contradict'),
    (['--optimizer', 'rmsprop', '--rmsprop-decay', '1.5'], '--rmsprop-decay must be in [0, 1)'),
    (['--init', 'bogus'], "--init: invalid choice"),
    (['--init', 'reference'], '--init reference: family fttest states no reference'),
    (['--teacher', 'no_such_teacher_net'], '--teacher'),
])
def test_fine_tuning_flags_are_checked(ft_plugin, tmp_path, capsys, extra, message):
    from gluon_nets.training.trainer import main
    try:
        status = main(['--model', 'ft_cnn', '--import-module', ft_plugin, '--save-dir',
                       str(tmp_path / 'r'), '--max-iters', '1', '--num-epochs', '1',
                       '--no-progress', '--input-size', '16', '-j', '0'] + extra)
    except SystemExit as stop:     # argparse's own errors (bad choice) exit from the parser
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2, err
    lines = [l for l in err.splitlines() if 'error:' in l]
    assert len(lines) == 1 and message in lines[0], err
    assert 'Traceback' not in err
    assert not os.path.exists(tmp_path / 'r' / 'last.params')


def test_rmsprop_init_and_augmentation_switches_train(ft_plugin, tmp_path, capsys):
    """RMSprop, --init xavier, --jitter/--lighting values and the warning of an
    ImageNet-looking run (--input-size 160) without a data flag."""
    from gluon_nets.training.trainer import main
    run = tmp_path / 'r'
    status = main(['--model', 'ft_cnn', '--import-module', ft_plugin, '--save-dir', str(run),
                   '--max-iters', '2', '--num-epochs', '1', '--no-progress', '--input-size', '160',
                   '--batch-size', '8', '-j', '1', '--optimizer', 'rmsprop', '--lr', '0.001',
                   '--init', 'xavier', '--jitter', '0.2', '--pca-noise', '0.05'])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert 'no data flag' in out.out and 'look like an ImageNet run' in out.out
    saved = json.load(open(run / 'args.json'))
    assert (saved['optimizer'], saved['init'], saved['jitter'], saved['lighting']) == \
        ('rmsprop', 'xavier', 0.2, 0.05)
    states = open(run / 'epoch-0000.states', 'rb').read()
    assert len(states) > 0


def test_reference_initialisation_per_family():
    from gluon_nets.models.ednet import EDNetInit
    from gluon_nets.nn.init import KaimingInit
    assert isinstance(get_model_info('ed_resnet50').reference_init, EDNetInit)
    menet = get_model_info('menet108_8x1_g3').reference_init
    mobilenet = get_model_info('mobilenet_0.25x').reference_init
    assert isinstance(menet, KaimingInit) and menet.conv_mode == 'out'
    assert mobilenet.conv_mode == 'in'
    assert isinstance(get_model_info('oct_resnet26_v1b').reference_init, mx.init.MSRAPrelu)
    # the families whose authors' initialisation is not known to us
    for name in ('scalenet50', 'lwdna_resnet50', 'hh_resnet50'):
        assert get_model_info(name).reference_init is None, name
    # kaiming-uniform dense and kaiming-normal fan_out conv statistics
    conv, dense = mx.nd.zeros((64, 32, 3, 3)), mx.nd.zeros((1000, 400))
    init = KaimingInit('out')
    init._init_weight('conv_weight', conv)
    init._init_weight('dense_weight', dense)
    assert abs(conv.asnumpy().std() - (2.0 / (64 * 9)) ** 0.5) < 0.005
    assert abs(np.abs(dense.asnumpy()).max() - (6.0 / 400) ** 0.5) < 0.002


def test_gluoncv_names_in_model_and_teacher(tmp_path, capsys, monkeypatch):
    """--model with a GluonCV name trains GluonCV's net (logged); --teacher with one asks
    GluonCV for its weights, and a failure there is one error line naming --teacher."""
    from gluon_nets.training.trainer import main
    run = tmp_path / 'g'
    status = main(['--model', 'resnet18_v1b', '--save-dir', str(run), '--max-iters', '1',
                   '--num-epochs', '1', '--no-progress', '--batch-size', '8', '-j', '1'])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "--model resnet18_v1b is not a gluon_nets model: training GluonCV's resnet18_v1b" in out.out
    assert json.load(open(run / 'model.json'))['model'] == 'resnet18_v1b'
    import gluoncv.model_zoo.model_store as store

    def offline(name, *args, **kwargs):
        raise OSError('no network (test)')
    monkeypatch.setattr(store, 'get_model_file', offline)
    status = main(['--model', 'resnet18_v1b', '--teacher', 'resnet34_v1b', '--save-dir',
                   str(tmp_path / 't'), '--max-iters', '1', '--num-epochs', '1', '--no-progress',
                   '--batch-size', '8', '-j', '1'])
    out = capsys.readouterr()
    assert status in (1, 2), out.err     # the runs helper maps run failures to 2
    lines = [l for l in out.err.splitlines() if 'error:' in l]
    assert len(lines) == 1 and '--teacher resnet34_v1b: cannot load its pretrained weights' in lines[0]
    assert "building GluonCV's resnet34_v1b" in out.out


# ------------------------------------------------------------ OctConv ablation .tar archives
def _ablation_tar(tmp_path, stem='oct_sym_resnet26_v2_a0250', members=None, extra_nodes=()):
    """A .tar as OctConv's ablation links serve (assumed: the pair score.py loads,
    <prefix>-symbol.json and <prefix>-NNNN.params, under a folder), built from a golden."""
    import tarfile
    from golden import load
    from test_octconv_symbol import GOLDEN, _write_symbol_checkpoint
    golden = load(os.path.join(GOLDEN, stem + '.json'))
    work = tmp_path / 'pack'
    work.mkdir()
    _write_symbol_checkpoint(golden, str(work / 'resnet-26'), 0, extra_nodes)
    path = str(tmp_path / 'a02_resnet-26_alpha-0.250.tar')
    with tarfile.open(path, 'w') as tar:
        for name in ('resnet-26-symbol.json', 'resnet-26-0000.params'):
            tar.add(str(work / name), arcname='a02_resnet-26_alpha-0.250/' + name)
        for arcname, data in (members or {}).items():
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            import io
            tar.addfile(info, io.BytesIO(data))
    return path, golden


def test_octconv_ablation_tar_converts_bit_exact_without_extracting(tmp_path):
    from gluon_nets import convert
    from golden import input_of, relative_error
    # a hostile member name: read in memory only, never written anywhere
    path, golden = _ablation_tar(tmp_path, members={'../../escaped.txt': b'x',
                                                    '/tmp/abs-escape.txt': b'y'})
    before = set(os.listdir(str(tmp_path)))
    state_dict = convert.load_checkpoint(path)
    assert set(os.listdir(str(tmp_path))) == before
    assert not os.path.exists('/tmp/abs-escape.txt')
    assert all(k.startswith(('arg:', 'aux:')) for k in state_dict)
    out = str(tmp_path / 'converted.params')
    name = golden['registry']['name']
    assert convert.main(['--model', name, '--alpha', '0.25', '--checkpoint', path,
                         '--out', out]) == 0
    net = get_model(name, alpha=0.25)
    net.load_parameters(out)
    logits = net(mx.nd.array(input_of(golden))).asnumpy()
    assert relative_error(logits, golden['logits']) < 1e-4
    # the same numbers as the unpacked .params given directly
    direct = str(tmp_path / 'direct.params')
    assert convert.main(['--model', name, '--alpha', '0.25', '--checkpoint',
                         str(tmp_path / 'pack' / 'resnet-26-0000.params'), '--out', direct]) == 0
    a, b = mx.nd.load(out), mx.nd.load(direct)
    assert set(a) == set(b) and all((a[k] == b[k]).asnumpy().all() for k in a)


def test_octconv_ablation_tar_errors_are_one_line(tmp_path, capsys):
    import tarfile
    from gluon_nets import convert
    path, golden = _ablation_tar(tmp_path, extra_nodes=['L9_B01_conv1_conv_weight'])
    name = golden['registry']['name']
    assert convert.main(['--model', name, '--alpha', '0.25', '--checkpoint', path,
                         '--out', str(tmp_path / 'o.params')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'L9_B01_conv1_conv_weight' in err and '.tar' in err
    assert not os.path.exists(tmp_path / 'o.params')
    bad = str(tmp_path / 'bad.tar')
    with tarfile.open(bad, 'w') as tar:
        import io
        info = tarfile.TarInfo('m/resnet-26-0000.params')
        info.size = 20
        tar.addfile(info, io.BytesIO(b'not an mxnet file...'))
    assert convert.main(['--model', name, '--checkpoint', bad, '--out',
                         str(tmp_path / 'o.params')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'is not an MXNet .params file' in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------ one classifier attribute name
@pytest.mark.parametrize('family', list_families())
def test_every_model_has_a_classifier_attribute_and_checkpoints_keep_their_names(family,
                                                                                  tmp_path):
    """``net.classifier`` is the final layer on every family; the parameters keep their
    structural names (``fc.weight``, ``classifer.weight``), so a .params saved by the
    plain class (an old checkpoint) loads strictly, and nothing is saved twice."""
    name = [n for n in cheapest_per_family() if get_model_info(n).family == family][0]
    info = get_model_info(name)
    net = _build(name, classes=7)
    assert net.classifier is net.get_classifier()
    assert net.classifier is getattr(net, info.classifier.split('.')[0]) or '.' in info.classifier
    keys = set(net._collect_params_with_prefix())
    head = info.classifier + '.'
    assert {k for k in keys if k.startswith(head)} == {head + 'weight', head + 'bias'}
    if info.classifier != 'classifier':
        assert not any(k.startswith('classifier.') for k in keys)
    old = info.fn(classes=7, **dict(info.default_kwargs, **_sized(name)))   # no alias
    assert not hasattr(old, 'classifier') or info.classifier == 'classifier'
    old.initialize(mx.init.Xavier())
    size = _size(name)
    old(mx.nd.zeros((1, 3, size, size)))
    path = str(tmp_path / 'old.params')
    old.save_parameters(path)
    net.load_parameters(path)                                   # strict: same names
    x = mx.nd.random.uniform(shape=(1, 3, size, size))
    np.testing.assert_array_equal(net(x).asnumpy(), old(x).asnumpy())
    dense = isinstance(net.classifier, mx.gluon.nn.Dense)      # OctConv's is a 1x1 Conv2D
    net.classifier = mx.gluon.nn.Dense(3) if dense else mx.gluon.nn.Conv2D(3, 1)  # the real one
    assert net.get_classifier() is net.classifier
    assert set(net._collect_params_with_prefix()) == keys
