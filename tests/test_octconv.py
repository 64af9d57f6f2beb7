"""OctConv family: octave blocks, construction limits, conversion from both reference
naming schemes, and the README's params / MACs columns.

The logits of every model against the reference are checked by tests/test_golden.py
on tests/data/golden/octconv/*.json (the shared goldens plus ones made by running the
reference Gluon code on more variants; files ending in ``_attr`` use the attribute-path
names of the reference's published ``.params`` files).
"""
import inspect
import os

import mxnet as mx
import numpy as np
import pytest

from conftest import DATA
from golden import golden_weights, input_of, load, relative_error
from gluon_nets import get_model
from gluon_nets.convert import ConversionError, convert_state_dict
from gluon_nets.model_zoo import (IMAGENET_DATA_CONFIG, ModelConstructionError, get_family,
                                  get_model_info, list_models)
from gluon_nets.nn.octave import OctConv2D, reference_mapping, split_channels
from gluon_nets.profile import count_macs, count_params

GOLDEN = os.path.join(DATA, 'golden', 'octconv')


# ------------------------------------------------------------------------ octave blocks
def test_split_channels_truncates_and_marks_absent():
    assert split_channels(48, 0.375) == (30, 18)      # int(18.0)
    assert split_channels(24, 0.375) == (15, 9)       # int(9.0)
    assert split_channels(100, 0.125) == (88, 12)     # int(12.5) = 12
    assert split_channels(64, 0.0) == (64, -1)


class _Wrap(mx.gluon.HybridBlock):
    """Runs a pair block hybridized on present inputs only."""

    def __init__(self, block, has_low):
        super().__init__()
        self.block, self.has_low = block, has_low

    def hybrid_forward(self, F, x, *low):
        return tuple(y for y in self.block(x, low[0] if self.has_low else None) if y is not None)


def _run(block, xh, xl):
    w = _Wrap(block, xl is not None)
    w.hybridize(static_alloc=True, static_shape=True)
    out = w(xh, *([xl] if xl is not None else []))
    return [out] if isinstance(out, mx.nd.NDArray) else list(out)


def _copy_reference_weights(dst, src):
    """Load the four-path weights of ``src`` (merge=False) into ``dst`` through the
    mapping the converters use."""
    ref = {n: p.data().asnumpy() for n, p in src.collect_params().items()}
    for name, param in dst._collect_params_with_prefix().items():
        source = reference_mapping(dst, 'params')[name]
        value = (source[1](*[ref[k] for k in source[0]]) if isinstance(source, tuple)
                 else ref[source])
        param.set_data(mx.nd.array(value))


@pytest.mark.parametrize('cin,cout,k,s,groups', [
    ((16, 8), (12, 4), 3, 1, 1), ((16, 8), (12, 4), 3, 2, 1), ((16, 8), (12, 4), 1, 2, 1),
    ((16, -1), (12, 4), 3, 2, 1), ((16, 8), (24, -1), 1, 2, 1), ((16, 8), (24, -1), 3, 1, 1),
    ((64, 64), (64, 64), 3, 2, 32), ((12, 4), (12, 4), 3, 2, 16)])
def test_merged_paths_equal_four_paths(cin, cout, k, s, groups):
    """merge=True / upsample='add' compute exactly what the four separate convs do."""
    rng = np.random.RandomState(0)
    xh = mx.nd.array(rng.randn(2, cin[0], 16, 16))
    xl = mx.nd.array(rng.randn(2, cin[1], 8, 8)) if cin[1] > 0 else None
    plain = OctConv2D(cout, k, strides=s, padding=k // 2, groups=groups, in_channels=cin,
                      use_bias=True, merge=False, prefix='c')
    plain.initialize(mx.init.Normal(1.0))
    expected = _run(plain, xh, xl)
    for kwargs in (dict(merge=True), dict(merge=True, upsample='add')):
        fast = OctConv2D(cout, k, strides=s, padding=k // 2, groups=groups, in_channels=cin,
                         use_bias=True, prefix='c', **kwargs)
        fast.initialize()
        _copy_reference_weights(fast, plain)
        for a, b in zip(expected, _run(fast, xh, xl)):
            assert relative_error(b.asnumpy(), a.asnumpy()) < 1e-5


def test_octconv_paths_and_bias_placement():
    first = OctConv2D((6, 2), 3, in_channels=8, use_bias=True, merge=False, prefix='c')
    assert {p for p, on in first.paths.items() if on} == {'h2h', 'h2l'}
    last = OctConv2D(8, 3, in_channels=(6, 2), use_bias=True, merge=False, prefix='c')
    assert {p for p, on in last.paths.items() if on} == {'h2h', 'l2h'}
    assert set(last.param_sources()) == {'conv_h2h.weight', 'conv_h2h.bias', 'conv_l2h.weight'}
    # depthwise: groups == the spec summed as written (-1 counts), only h2h / l2l
    dw = OctConv2D((24, -1), 3, groups=23, in_channels=(24, -1), merge=False, prefix='c')
    assert dw.depthwise and dw.conv_h2h._kwargs['num_group'] == 24
    sym = OctConv2D((6, 2), 3, in_channels=(6, 2), use_bias=True, bias_mode='symbol',
                    merge=False, prefix='c')
    assert {n for n in sym.param_sources() if n.endswith('bias')} == \
        {'conv_h2h.bias', 'conv_h2l.bias'}
    clipped = OctConv2D((64, 16), 3, groups=32, in_channels=(64, 32), clip_groups=True,
                        merge=False, prefix='c')
    assert clipped.conv_h2l._kwargs['num_group'] == 16
    assert clipped.conv_l2l._kwargs['num_group'] == 16


def test_octconv_symbol_pooling_semantics():
    """pool_mode='valid' floors, h2l_pool='double' pools the pooled map again."""
    x = mx.nd.array(np.random.RandomState(1).randn(1, 1, 10, 10))
    conv = OctConv2D((1, 1), 1, strides=2, in_channels=1, pool_mode='valid',
                     h2l_pool='double', merge=False, prefix='c')
    conv.initialize(mx.init.One())
    high, low = _run(conv, x, None)
    p2 = x.asnumpy()[:, :, :10, :10].reshape(1, 1, 5, 2, 5, 2).mean(axis=(3, 5))
    p4 = p2[:, :, :4, :4].reshape(1, 1, 2, 2, 2, 2).mean(axis=(3, 5))   # floor: 5 -> 2
    assert np.allclose(high.asnumpy(), p2, atol=1e-6)
    assert np.allclose(low.asnumpy(), p4, atol=1e-6)


def test_octconv_rejects_bad_specs():
    with pytest.raises(ValueError, match='absent'):
        OctConv2D((8, 0), 3, in_channels=8)
    with pytest.raises(ValueError, match='in_channels'):
        OctConv2D(8, 3)
    with pytest.raises(ValueError, match='strides'):
        OctConv2D(8, 3, strides=3, in_channels=8)
    with pytest.raises(ValueError, match='groups'):
        OctConv2D((112, 16), 3, groups=32, in_channels=(112, 16))


# ------------------------------------------------------------------ construction limits
@pytest.mark.parametrize('name,kwargs,match', [
    ('oct_resnet50_v1b', dict(alpha=1.0), r'alpha must be in \[0, 1\)'),
    ('oct_resnet50_v1b', dict(alpha=-0.1), r'alpha must be in \[0, 1\)'),
    ('oct_resnext50_32x4d_v1b', dict(alpha=0.125), 'groups=32'),
    ('oct_resnext101_32x4d_v2b', dict(alpha=0.125), 'groups=32'),
    ('oct_densenet121', dict(alpha=0.1), 'alpha \\* growth rate'),
    ('oct_resnet50_v2b', dict(last_gamma=True), 'last_gamma'),
    ('oct_mobilenet_v1_075', dict(alpha=1.5), 'alpha must be'),
])
def test_unbuildable_kwargs_fail_at_construction(name, kwargs, match):
    with pytest.raises(ModelConstructionError, match=match):
        get_model(name, **kwargs)


def _default_alpha(name):
    return inspect.signature(get_model_info(name).fn).parameters['alpha'].default


def test_alias_and_defaults():
    """Defaults are keywords of each model's function (the trainer reads the signature)."""
    assert get_model_info('oct_resnet152').alias_of == 'oct_resnet152_v1f'
    assert get_model_info('oct_resnet152').fn is get_model_info('oct_resnet152_v1f').fn
    assert _default_alpha('oct_resnet152') == 0.125
    assert _default_alpha('oct_resnet152_v1e') == 0.125
    assert _default_alpha('oct_mobilenet_v1_075') == 0.375
    assert _default_alpha('oct_mobilenet_v2_1125') == 0.5
    gluon_api = [n for n in list_models(family='octconv', include_aliases=False)
                 if not n.endswith('_v2')]
    assert len(gluon_api) == 30
    for name in gluon_api:
        info = get_model_info(name)
        assert info.default_kwargs == {} and _default_alpha(name) in (0.125, 0.25, 0.375, 0.5)
        assert info.description.startswith('Oct-')
        assert 'Gluon API (utils/gluon)' in info.description
    assert get_model('oct_mobilenet_v1_075')._block_names   # builds with its own defaults


@pytest.mark.parametrize('name,kwargs', [
    ('oct_resnext50_32x4d_v1b', dict(width_per_group=4)),   # was accepted and ignored
    ('oct_resnet50_v1b', dict(depth=101)),                  # the name fixes the depth
    ('oct_resnext50_32x4d_v2b', dict(groups=16)),
    ('oct_mobilenet_v1_075', dict(multiplier=1.0)),
])
def test_options_the_name_fixes_or_nobody_reads_are_refused(name, kwargs):
    with pytest.raises(ModelConstructionError, match=name):
        get_model(name, **kwargs)


def test_family_declaration():
    """Declared once for both code bases: the Gluon API's recipe and classifier by default,
    the Symbol-API models override both; the trainer's --alpha comes from the family."""
    family = get_family('octconv')
    assert family.module == 'gluon_nets.models.octconv'
    gluon, symbol = get_model_info('oct_resnet50_v2b'), get_model_info('oct_resnet50_v2')
    assert gluon.data_config == dict(IMAGENET_DATA_CONFIG, interpolation='bilinear')
    assert symbol.data_config['interpolation'] == 'bicubic'
    assert symbol.data_config['crop_ratio'] == 0.875
    assert np.allclose(np.array(symbol.data_config['mean']) * 255, (124, 117, 104))
    assert np.allclose(np.array(symbol.data_config['std']) * 255 * 0.0167, 1)
    (option,) = gluon.training.options
    assert option.flags == ('--alpha',) and option.kwarg == 'alpha' and option.dest == 'alpha'
    assert 'MIT' in gluon.weights and gluon.weights == symbol.weights
    for info, classes in ((gluon, 7), (symbol, 7)):
        net = get_model(info.name, classes=classes)
        assert getattr(net, info.classifier).weight.shape[0] == classes


def test_extra_bn_follows_use_se_on_v1e():
    names = set(get_model('oct_resnet26_v1e', use_se=True)._collect_params_with_prefix())
    assert 'L1_B0.bn1a.bn_h.running_mean' in names and 'L2_B0.bn4a.bn_h.running_var' in names
    assert 'L1_B0.bn1a.bn_h.gamma' not in names      # frozen in the reference: not ours
    names = set(get_model('oct_resnet26_v1b', use_se=True)._collect_params_with_prefix())
    assert 'L1_B0.bn1a.bn_h.running_mean' not in names and 'L1_B0.se_block.conv1.weight' in names


def test_final_drop_is_identity_in_inference():
    net = get_model('oct_mobilenet_v2_100', alpha=0.25, final_drop=0.5, classes=5)
    net.initialize(mx.init.Xavier())
    x = mx.nd.random.uniform(shape=(1, 3, 32, 32))
    assert np.allclose(net(x).asnumpy(), net(x).asnumpy())
    assert 'drop' in net._children


# ----------------------------------------------------------------------------- names
def _unmerged_listing(golden):
    reg = golden['registry']
    net = get_model(reg['name'], oct_kwargs=dict(merge=False), **reg['kwargs'])
    return net


@pytest.mark.parametrize('fname', ['oct_resnet50_v1b_a0250.json',
                                   'oct_mobilenet_v2_100_a0375.json'])
def test_parameter_names_and_order_equal_the_reference(fname):
    """With merge=False our ParameterDict is the reference's, name for name and in the
    same order (so an attribute-path listing zips onto it)."""
    golden = load(os.path.join(GOLDEN, fname))
    net = _unmerged_listing(golden)
    assert list(net.collect_params().keys()) == [p[0] for p in golden['params']]


def test_convert_from_attribute_path_names():
    """Published .params use attribute paths; rename a golden's weights that way
    (the notes' examples pin the scheme) and reproduce its logits."""
    golden = load(os.path.join(GOLDEN, 'oct_resnet50_v1b_a0250.json'))
    net = _unmerged_listing(golden)
    attr_of = {p.name: s for s, p in net._collect_params_with_prefix().items()}
    assert attr_of['R50_conv1_weight'] == 'conv1.0.weight'
    assert attr_of['R50_bn1_gamma'] == 'conv1.1.gamma'
    assert attr_of['R50_L1_B0_conv1-h2h_weight'] == 'L1_B0.conv1.conv_h2h.weight'
    assert attr_of['R50_L1_B0_bn1-h_gamma'] == 'L1_B0.bn1.bn_h.gamma'
    assert attr_of['R50_classifier_weight'] == 'classifer.weight'
    weights = {attr_of[k]: v for k, v in golden_weights(golden['params']).items()}
    ours = convert_state_dict(golden['registry']['name'], weights, **golden['registry']['kwargs'])
    ours.hybridize(static_alloc=True, static_shape=True)
    logits = ours(mx.nd.array(input_of(golden))).asnumpy()
    assert relative_error(logits, golden['logits']) < 1e-4


def test_convert_accepts_another_model_prefix_and_reports_shape_errors():
    golden = load(os.path.join(GOLDEN, 'oct_mobilenet_v1_075_a0375.json'))
    weights = {'X_' + k[len('M075_'):]: v for k, v in golden_weights(golden['params']).items()}
    net = convert_state_dict('oct_mobilenet_v1_075', weights, alpha=0.375)
    net.hybridize()
    assert relative_error(net(mx.nd.array(input_of(golden))).asnumpy(), golden['logits']) < 1e-4
    with pytest.raises(ConversionError, match='shape mismatch'):
        convert_state_dict('oct_mobilenet_v1_075', weights, alpha=0.25)


# ------------------------------------------------------------------ README numbers
# (model, alpha, measured params, measured MACs (notes section 4), README params (M),
#  README FLOPs range)
README = [
    ('oct_mobilenet_v1_075', dict(alpha=0.375), 2585560, 211379016, 2.6, (211e6, 213e6)),
    ('oct_mobilenet_v1_100', dict(alpha=0.5), 4231976, 318167680, 4.2, (318e6, 321e6)),
    ('oct_mobilenet_v2_100', dict(alpha=0.375), 3505960, 254031408, 3.5, (254e6, 256e6)),
    ('oct_mobilenet_v2_1125', dict(alpha=0.5), 4243006, 292764600, 4.2, (292e6, 295e6)),
    ('oct_resnet152', dict(alpha=0.125), 60222224, 10819341312, 60.2, (10.8e9, 10.9e9)),
    ('oct_resnet152_v1e', dict(alpha=0.125, use_se=True), 66841080, None, 66.8, (10.8e9, 10.9e9)),
]


@pytest.mark.parametrize('name,kwargs,params,macs,readme_params,readme_macs', README,
                         ids=['%s-%s' % (r[0], r[1]) for r in README])
def test_readme_params_and_macs(name, kwargs, params, macs, readme_params, readme_macs):
    net = get_model(name, **kwargs)
    p, m = count_params(net), count_macs(net, (1, 3, 224, 224))
    if params is not None:
        assert p == params
    if macs is not None:
        assert m == macs
    assert round(p / 1e6, 1) == readme_params
    assert readme_macs[0] <= m <= readme_macs[1] * 1.001


@pytest.mark.parametrize('name,macs', [('oct_mobilenet_v1_075', 325.4e6),
                                       ('oct_mobilenet_v2_100', 313.6e6),
                                       ('oct_resnet152', 12.78e9)])
def test_alpha_zero_macs(name, macs):
    """alpha 0 reference points (notes section 4); params do not depend on alpha."""
    net0, net = get_model(name, alpha=0.0), get_model(name)
    assert abs(count_macs(net0, (1, 3, 224, 224)) - macs) < 0.0005 * macs
    assert count_params(net0) == count_params(net)


@pytest.mark.parametrize('name,kwargs', [
    ('oct_densenet121', dict(alpha=0.25, norm_kwargs=dict(use_global_stats=True))),
    ('oct_mobilenet_v1_075', dict(alpha=0.375, norm_kwargs=dict(use_global_stats=True))),
    ('oct_resnet50_v2b', dict(alpha=0.5, use_global_stats=True)),
])
def test_training_graph_equals_inference_graph(name, kwargs):
    """Inference runs fused BN+ReLU and 4-D concats, training a plain graph (the fused
    op's and oneDNN concat's backward fail in MXNet 1.9.1); with global BN statistics
    both graphs give the same output, and the training one back-propagates."""
    net = get_model(name, classes=7, **kwargs)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, 64, 64)))
    infer = net(x).asnumpy()
    with mx.autograd.record():
        train = net(x)
    train.backward()
    assert relative_error(train.asnumpy(), infer) < 1e-5
    assert relative_error(net(x).asnumpy(), infer) < 1e-6      # back to the inference graph
