"""LW-DNA / Heterogeneity Hypothesis: what test_golden does not cover.

- every golden file with a ``shrink`` entry: our shrink() on the same golden weights
  gives the reference's threshold, kept channels, config, logits, params and MACs;
- shrink with nothing pruned reproduces the search-stage network's logits;
- search(): warm-up iterations on a quarter batch, then shrink;
- config errors, hybridization of the hh nets;
- converters: torchvision names, the released checkpoint's positional layout (with and
  without leftover latent vectors, also through a real .pt file), reference hh names with
  shared-vector aliases (equal: accepted; different: rejected);
- the registry entry: data config, classifier attribute, training plugin, explicit
  options, the shared depth table; ``norm_kwargs`` reaching every BatchNorm of the hh nets
  and the nets that shrink and pad_widths build from them.

The ResNet-50 wide golden shrink test builds a 553 M-parameter net (about 2.3 GB without
gradient buffers, ~1 min on 2 cores); the other tests use small nets.
"""
import glob
import inspect
import json
import os
from collections import OrderedDict

import mxnet as mx
import numpy as np
import pytest

from conftest import DATA
from golden import golden_array, input_of, load, relative_error
from gluon_nets import get_model, get_model_info, list_models
from gluon_nets.model_zoo import get_family
from gluon_nets.convert import ConversionError, convert_state_dict, load_checkpoint
from gluon_nets.models import lwdna
from gluon_nets.models.lwdna import (config_from_state_dict, config_macs, hh_reference_names,
                                     search, shrink, validate_config)
from gluon_nets.models.lwdna.training import LWDNATraining
from gluon_nets.nn import RESNET_STAGE_BLOCKS
from gluon_nets.profile import count_macs, count_params

GOLDEN_DIR = os.path.join(DATA, 'golden', 'lwdna')
SHRINK_FILES = sorted(p for p in glob.glob(os.path.join(GOLDEN_DIR, '*.json'))
                      if 'shrink' in load(p))


def _hh_from_golden(golden):
    """The golden's hh net with golden weights, loaded one array at a time (the wide
    nets hold 0.5-1 G parameters: no second copy in a state_dict)."""
    registry = golden['registry']
    params = {name: (shape, role) for name, shape, role in golden['params']}
    classes = params['classifier.weight'][0][0]
    net = get_model(registry['name'], classes=classes, **registry.get('kwargs', {}))
    net.collect_params().setattr('grad_req', 'null')     # no gradient buffers: half the memory
    names = hh_reference_names(net)
    for ours, param in net._collect_params_with_prefix().items():
        shape, role = params[names[ours]]
        assert tuple(shape) == param.shape, (ours, shape, param.shape)
        param._load_init(mx.nd.array(golden_array(names[ours], shape, role)), mx.cpu())
    return net


@pytest.mark.parametrize('path', SHRINK_FILES, ids=[os.path.basename(p)[:-5] for p in SHRINK_FILES])
def test_shrink_reproduces_golden(path):
    golden = load(path)
    expected = golden['shrink']
    hh = _hh_from_golden(golden)
    net, report = shrink(hh, expected['target_flops_ratio'], expected['remain_percentage'],
                         expected['linear_percentage'], input_size=expected.get('input_size', 224))
    del hh
    assert abs(report['prune_threshold'] - expected['prune_threshold']) < 1e-12
    assert report['kept_per_latent_vector'] == expected['kept_per_latent_vector']
    assert report['config'] == expected['config']
    assert abs(report['flops_ratio'] - expected['flops_ratio']) < 1e-12
    net.hybridize(static_alloc=True, static_shape=True)
    logits = net(mx.nd.array(input_of(golden))).asnumpy()
    err = relative_error(logits, np.asarray(expected['logits']))
    assert err < 1e-4, 'shrunk logits differ from the reference: rel err %.3g' % err
    assert count_params(net) == expected['num_params']
    size = tuple(golden['input']['shape'][1:])
    assert count_macs(net, (1,) + size) == expected['macs']
    # the trainer rebuilds the net from the saved config (resume)
    rebuilt = get_model(report['model'], classes=logits.shape[1], config=json.loads(
        json.dumps(report['config'])))
    assert count_params(rebuilt) == expected['num_params']


def test_golden_aliases_are_the_stage_vectors():
    """The wide golden's alias list is exactly the set of convs our net treats as sharing
    a stage vector (the converter accepts those keys when equal to the canonical one)."""
    golden = load(os.path.join(GOLDEN_DIR, 'resnet50_hh_wide2.json'))
    net = get_model('hh_resnet50', width_mult=2, embedding_dim=2)
    shared = {}
    for conv, _, dst, _, _ in net.conv_plan():
        if not conv.own_latent:
            prefix = next(p for p, c in net._hyper_convs() if c is conv)
            shared[prefix + '.latent_vector'] = 'latent_vector_stage%d' % dst
    assert shared == golden['aliases']
    assert set(hh_reference_names(net).values()) == {
        n for n, _, role in golden['params'] if role != 'count'}


# -- helpers ------------------------------------------------------------------------------

def _small_reference_sd(net, shapes_only=False):
    """A reference-named state_dict (aliases included) for an initialised or shape-only
    HHResNet: random numbers, or zeros of the right shapes when ``shapes_only``."""
    sd = OrderedDict()
    for ours, ref in hh_reference_names(net).items():
        param = net._collect_params_with_prefix()[ours]
        if shapes_only:
            sd[ref] = np.zeros(param.shape, np.float32)
        else:
            sd[ref] = param.data().asnumpy()
    for conv, _, dst, _, _ in net.conv_plan():
        if not conv.own_latent:
            prefix = next(p for p, c in net._hyper_convs() if c is conv)
            sd[prefix + '.latent_vector'] = sd['latent_vector_stage%d' % dst].copy()
    return sd


def _small_hh(depth=18, width_mult=0.25, classes=10, seed=0, norm_kwargs=None):
    mx.random.seed(seed)
    net = get_model('hh_resnet%d' % depth, classes=classes, width_mult=width_mult,
                    norm_kwargs=norm_kwargs)
    net.initialize()
    # give BN non-trivial statistics so that slicing mistakes change the logits
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        if name.endswith(('running_mean', 'beta')):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
        elif name.endswith(('running_var', 'gamma')):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif name.endswith(('bias0', 'bias1', 'bias2')):
            param.set_data(mx.nd.array(rng.normal(0, 0.01, param.shape)))
    return net


# -- shrink / search on small nets ----------------------------------------------------------

@pytest.mark.parametrize('depth', [18, 50])
def test_shrink_keeping_everything_equals_search_net(depth):
    hh = _small_hh(depth)
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (2, 3, 64, 64)))
    expected = hh(x).asnumpy()
    net, report = shrink(hh, target_flops_ratio=1.0, remain_percentage=1.0, linear_percentage=1.0)
    assert report['config'] == hh.wide_config and report['flops_ratio'] == 1.0
    assert relative_error(net(x).asnumpy(), expected) < 1e-5


@pytest.mark.parametrize('depth', [18, 50])
def test_shrink_small_net_hits_budget_and_floors(depth):
    hh = _small_hh(depth, width_mult=0.5)
    net, report = shrink(hh, target_flops_ratio=0.3)
    assert report['target_reached'] and abs(report['flops_ratio'] - 0.3) <= 0.001 + 1e-12
    assert report['macs'] == count_macs(net, (1, 3, 224, 224))
    kept = report['kept_per_latent_vector']
    vectors = [p.data().asnumpy() for _, p in hh.latent_parameters()]
    assert kept[0] == 3
    for i, (v, k) in enumerate(zip(vectors, kept)):
        floor = int(len(v) * 0.45) if i == 4 else max(int(len(v) * 0.4), 1)
        assert floor <= k <= len(v)
        # the kept channels are the largest |v|: the count above the threshold or the floor
        assert k == max(int(np.sum(np.abs(v) >= np.float32(report['prune_threshold']))), floor) \
            or i == 0
    net.hybridize(static_alloc=True, static_shape=True)
    assert np.all(np.isfinite(net(mx.nd.ones((1, 3, 64, 64))).asnumpy()))


def test_shrink_rejects_bad_input():
    with pytest.raises(TypeError, match='HHResNet'):
        shrink(get_model('lwdna_resnet18'))
    net = get_model('hh_resnet18', width_mult=0.25, kernel_size=5, classes=10)
    net.initialize()
    with pytest.raises(ValueError, match='3x3'):
        shrink(net)
    with pytest.raises(ValueError, match='target_flops_ratio'):
        shrink(_small_hh(), target_flops_ratio=0)


def test_search_warms_up_on_a_quarter_batch_then_shrinks():
    hh = get_model('hh_resnet18', classes=10, width_mult=0.25)
    rng = np.random.RandomState(0)
    batches = [(mx.nd.array(rng.uniform(-1, 1, (8, 3, 32, 32))), mx.nd.array(rng.randint(0, 10, 8)))
               for _ in range(5)]
    consumed = []

    def stream():
        for batch in batches:
            consumed.append(batch)
            yield batch

    net, report = search(hh, stream(), mx.cpu(), target_flops_ratio=0.4)
    assert len(consumed) == 2 and report['warmup_iters'] == 2
    assert report['warmup_batch_size'] == 2
    assert all(np.isfinite(report['warmup_losses']))
    # the latent vectors were trained (weight decay and gradients move them)
    assert hh.latent_parameters()[1][1].grad().abs().sum().asscalar() > 0
    again, report2 = shrink(hh, 0.4)
    assert report2['config'] == report['config']
    for (name, a), (_, b) in zip(net._collect_params_with_prefix().items(),
                                 again._collect_params_with_prefix().items()):
        assert np.array_equal(a.data().asnumpy(), b.data().asnumpy()), name
    validate_config(report['config'], 18)
    assert net(batches[0][0]).shape == (8, 10)


def test_search_needs_enough_batches():
    hh = get_model('hh_resnet18', classes=10, width_mult=0.25)
    one = [(mx.nd.zeros((4, 3, 32, 32)), mx.nd.zeros((4,)))]
    with pytest.raises(ValueError, match='ran out'):
        search(hh, one, mx.cpu())


# -- configs, hybridization ----------------------------------------------------------------

@pytest.mark.parametrize('mutate, message', [
    (lambda c: c['blocks'][2].pop(), 'blocks\\[2\\] must hold 6 blocks'),
    (lambda c: c['blocks'].pop(), '4 stages'),
    (lambda c: c['stage_out'].append(5), '4 stage widths'),
    (lambda c: c['blocks'][0][1].__setitem__(0, 0), 'positive width'),
    (lambda c: c['blocks'][3][0].__setitem__(1, -3), 'positive width'),
    (lambda c: c.__setitem__('stem', 12.5), 'integer width'),
    (lambda c: c['blocks'][1][0].append(7), '\\[conv1, conv2\\]'),
    (lambda c: c.pop('stage_out'), 'lacks stage_out'),
    (lambda c: c.__setitem__('widths', 1), 'unknown keys'),
])
def test_bad_configs_fail_clearly(mutate, message):
    config = lwdna.default_config(50)
    mutate(config)
    with pytest.raises(ValueError, match=message):
        get_model('lwdna_resnet50', config=config)


def test_basic_block_config_rules(tmp_path):
    config = lwdna.default_config(18)
    config['stem'] = 48
    with pytest.raises(ValueError, match='stem \\(48\\) must equal stage_out\\[0\\]'):
        get_model('lwdna_resnet18', config=config)
    config = lwdna.default_config(34)
    config['blocks'][1] = [40, 41, 42, 43]          # bare ints are accepted for basic blocks
    path = tmp_path / 'cfg.json'
    path.write_text(json.dumps(config))
    net = get_model('lwdna_resnet34', config=str(path))
    assert net.config['blocks'][1] == [[40], [41], [42], [43]]
    assert count_macs(net) == config_macs(config, 34)


def test_hh_width_mult_the_reference_cannot_build():
    with pytest.raises(ValueError, match='width_mult'):
        get_model('hh_resnet50', width_mult=0.9)
    with pytest.raises(ValueError, match='embedding_dim'):
        get_model('hh_resnet18', embedding_dim=0)


@pytest.mark.parametrize('depth', [18, 50])
def test_hh_hybridizes(depth):
    hh = _small_hh(depth)
    x = mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (2, 3, 32, 32)))
    imperative = hh(x).asnumpy()
    hh.hybridize(static_alloc=True, static_shape=True)
    assert relative_error(hh(x).asnumpy(), imperative) < 1e-5
    with mx.autograd.record():
        loss = mx.nd.softmax_cross_entropy(hh(x), mx.nd.array([1, 2]))
    loss.backward()
    grads = [p.grad().abs().sum().asscalar() for _, p in hh.latent_parameters()]
    assert all(np.isfinite(grads)) and grads[1] > 0
    # the hypernetwork is not counted: MACs are those of the plain ResNet with these widths
    assert count_macs(hh, (1, 3, 224, 224)) == config_macs(hh.wide_config, depth, 10)


# -- converters ---------------------------------------------------------------------------

def _example():
    golden = load(os.path.join(GOLDEN_DIR, 'resnet50_lwdna_example.json'))
    sd = OrderedDict((n, golden_array(n, s, r)) for n, s, r in golden['params'])
    return golden, sd


def test_config_from_state_dict_by_name_and_by_position():
    golden, sd = _example()
    assert config_from_state_dict(sd) == (50, golden['config'], 1000)
    opaque = OrderedDict(('t%03d' % i, v) for i, v in enumerate(sd.values()))
    assert config_from_state_dict(opaque) == (50, golden['config'], 1000)
    with pytest.raises(ConversionError, match='conv kernels'):
        config_from_state_dict(OrderedDict(list(opaque.items())[6:]))


@pytest.mark.parametrize('leftovers', [False, True])
def test_released_checkpoint_layout_by_position(leftovers, tmp_path):
    """The released resnet50_lwdna.pt: torchvision order, reference post-shrink names
    (features.*), num_batches_tracked, optionally led by the unused latent vectors."""
    torch = pytest.importorskip('torch')
    golden, sd = _example()
    released = OrderedDict()
    if leftovers:
        for s, width in enumerate([3, 512, 1024, 2048, 4096]):
            released['latent_vector_stage%d' % s] = torch.randn(width)
    for i, (name, value) in enumerate(sd.items()):
        released['features.%d.%s' % (i, name.rsplit('.', 1)[-1])] = torch.from_numpy(
            np.array(value))
    path = str(tmp_path / 'resnet50_lwdna.pt')
    torch.save(released, path)
    net = convert_state_dict('lwdna_resnet50', load_checkpoint(path))
    assert net.config == golden['config']
    net.hybridize(static_alloc=True, static_shape=True)
    assert relative_error(net(mx.nd.array(input_of(golden))).asnumpy(), golden['logits']) < 1e-4


def test_lwdna_converter_reports_problems():
    golden, sd = _example()
    broken = OrderedDict(sd)
    del broken['layer2.0.bn1.running_var']
    with pytest.raises(ConversionError, match='not in torchvision names'):
        convert_state_dict('lwdna_resnet50', OrderedDict(('k%d' % i, v) for i, v in
                                                         enumerate(broken.values())))
    wrong = OrderedDict(sd)
    wrong['layer3.1.conv1.weight'] = wrong['layer3.1.conv1.weight'][:, :-1]
    with pytest.raises(ConversionError, match='layer3.1.conv1.weight'):
        convert_state_dict('lwdna_resnet50', wrong)
    with pytest.raises(ConversionError, match='ResNet-101 has 104'):
        convert_state_dict('lwdna_resnet101', OrderedDict(('k%d' % i, v) for i, v in
                                                          enumerate(sd.values())))


@pytest.mark.parametrize('depth', [18, 50])
def test_hh_converter_accepts_equal_aliases(depth):
    hh = _small_hh(depth)
    sd = _small_reference_sd(hh)
    net = convert_state_dict('hh_resnet%d' % depth, sd)      # widths etc. inferred
    assert (net.width_mult, net.embedding_dim, net.kernel_size, net.classes) == (0.25, 2, 3, 10)
    x = mx.nd.array(np.random.RandomState(3).uniform(-1, 1, (1, 3, 32, 32)))
    assert relative_error(net(x).asnumpy(), hh(x).asnumpy()) < 1e-6


def test_hh_converter_rejects_differing_aliases():
    hh = _small_hh(50)
    sd = _small_reference_sd(hh)
    sd['features.5.downsample.latent_vector'] = sd['features.5.downsample.latent_vector'] + 0.5
    with pytest.raises(ConversionError, match='features.5.downsample.latent_vector is an alias of '
                                              'the shared stage vector latent_vector_stage2'):
        convert_state_dict('hh_resnet50', sd)
    sd = _small_reference_sd(_small_hh(18))
    sd['features.0.latent_vector'] = -sd['features.0.latent_vector']    # the stem shares stage 1
    with pytest.raises(ConversionError, match='latent_vector_stage1'):
        convert_state_dict('hh_resnet18', sd)


@pytest.mark.parametrize('depth', [18, 50])
def test_pad_widths_is_exact(depth):
    hh = _small_hh(depth)
    net, _ = shrink(hh, target_flops_ratio=0.3)
    padded = lwdna.pad_widths(net, 8)
    assert all(w % 8 == 0 for w in [padded.config['stem']] + padded.config['stage_out'])
    assert all(w % 8 == 0 for stage in padded.config['blocks'] for b in stage for w in b)
    x = mx.nd.array(np.random.RandomState(4).uniform(-1, 1, (2, 3, 64, 64)))
    padded.hybridize(static_alloc=True, static_shape=True)
    assert relative_error(padded(x).asnumpy(), net(x).asnumpy()) < 1e-5


# -- the registry entry --------------------------------------------------------------------

def test_family_entry_data_config_classifier_and_options():
    assert isinstance(get_family('lwdna').training, LWDNATraining)
    names = list_models(family='lwdna')
    assert names == sorted(['%s_resnet%d' % (kind, depth) for kind in ('hh', 'lwdna')
                            for depth in (18, 34, 50, 101, 152)])
    for name in names:
        info = get_model_info(name)
        # the reference's evaluation: Resize(256), CenterCrop(224), bilinear, ImageNet mean/std
        assert info.data_config == dict(input_size=(3, 224, 224), crop_ratio=0.875,
                                        interpolation='bilinear', num_classes=1000,
                                        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
        hh = name.startswith('hh_')
        options = ('width_mult', 'embedding_dim', 'kernel_size') if hh else ('config',)
        assert set(options + ('norm_kwargs',)) <= set(inspect.signature(info.fn).parameters)
        net = get_model(name, classes=7, **({'width_mult': 0.25} if hh else {}))
        head = getattr(net, info.classifier)
        assert isinstance(head, mx.gluon.nn.Dense) and head._units == 7, name


def test_depth_table_is_the_shared_one():
    assert lwdna.STAGE_BLOCKS == {d: RESNET_STAGE_BLOCKS[d] for d in (18, 34, 50, 101, 152)}
    # 26 is in the shared table (OctConv) but not a depth the reference builds
    with pytest.raises(ValueError, match=r'depth must be one of \[18, 34, 50, 101, 152\], got 26'):
        lwdna.default_config(26)
    with pytest.raises(ValueError, match='depth must be one of'):
        lwdna.HHResNet(26)


def _batch_norms(block):
    found = [block] if isinstance(block, mx.gluon.nn.BatchNorm) else []
    for child in block._children.values():
        found += _batch_norms(child)
    return found


def test_norm_kwargs_reach_every_batchnorm_and_the_nets_built_from_hh():
    """HHResNet once accepted ``norm_kwargs`` and dropped them."""
    eps = 0.5          # large enough that any BatchNorm left at 1e-5 moves the logits
    hh = _small_hh(18, norm_kwargs={'epsilon': eps})
    norms = _batch_norms(hh)
    assert len(norms) == len(hh._hyper_convs()) and all(b._kwargs['eps'] == eps for b in norms)
    x = mx.nd.array(np.random.RandomState(5).uniform(-1, 1, (2, 3, 64, 64)))
    plain = get_model('hh_resnet18', classes=10, width_mult=0.25)       # eps 1e-5, same weights
    for name, param in plain._collect_params_with_prefix().items():
        param._load_init(hh._collect_params_with_prefix()[name].data(), mx.cpu())
    assert relative_error(plain(x).asnumpy(), hh(x).asnumpy()) > 1e-3

    whole, _ = shrink(hh, target_flops_ratio=1.0, remain_percentage=1.0, linear_percentage=1.0)
    assert all(b._kwargs['eps'] == eps for b in _batch_norms(whole))
    assert relative_error(whole(x).asnumpy(), hh(x).asnumpy()) < 1e-5
    small, _ = shrink(hh, target_flops_ratio=0.3)
    padded = lwdna.pad_widths(small, 8)
    assert padded.config != small.config and padded.norm_kwargs == {'epsilon': eps}
    assert relative_error(padded(x).asnumpy(), small(x).asnumpy()) < 1e-5


@pytest.mark.parametrize('content, message', [
    ('[1, 2]', 'does not fit lwdna_resnet18: config must be a dict'),
    ('{"stem": 64}', 'does not fit lwdna_resnet18: config lacks blocks, stage_out'),
    ('nope', 'is not valid JSON'),
    (None, 'is a directory, not a JSON file'),
])
def test_a_bad_lwdna_config_file_is_refused_up_front_naming_the_file(tmp_path, content, message):
    """--lwdna-config is read and checked against the model's depth in the plugin's
    check, before any work, and the one-line error names the file."""
    from types import SimpleNamespace
    from gluon_nets.models.lwdna import default_config
    from gluon_nets.models.lwdna.training import LWDNATraining
    path = tmp_path / 'config.json'
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    args = SimpleNamespace(lwdna_ratio=None, lwdna_config=str(path), resume=None, horovod=False)
    with pytest.raises(ValueError) as err:
        LWDNATraining().check(args, get_model_info('lwdna_resnet18'))
    assert str(err.value).startswith('--lwdna-config %s ' % path) and message in str(err.value)
    path = tmp_path / 'good.json'
    path.write_text(json.dumps(default_config(18, 0.25)))
    LWDNATraining().check(SimpleNamespace(**dict(vars(args), lwdna_config=str(path))),
                          get_model_info('lwdna_resnet18'))     # a config that fits passes
