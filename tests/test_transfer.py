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
