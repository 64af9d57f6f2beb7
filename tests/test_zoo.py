"""Checks every registered model gets by registering (one parametrised test each):

- its registry numbers (params, MACs at 224, from model_numbers.json) equal what the
  profile functions measure;
- the registry's ``classifier`` attribute exists on the net;
- hybridized (static) output equals the imperative output;
- one backward pass gives finite gradients for every trainable parameter;
- export + ``SymbolBlock.imports`` reproduces the output.

The behaviour tests run at classes=10 on the model's smallest accepted input. Models
registered ``slow=True`` (depth >= 152 and similar) run only with ``--runslow``.
"""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.test_utils import assert_almost_equal

from gluon_nets import get_model, list_models
from gluon_nets.model_zoo import get_model_info
from gluon_nets.profile import count_macs, count_params

MODELS = list_models(include_aliases=False)   # aliases: tests/test_registry.py


def _param(name):
    marks = [pytest.mark.slow] if get_model_info(name).slow else []
    return pytest.param(name, marks=marks, id=name)


def test_registry_not_empty():
    assert MODELS, 'no model is registered'


@pytest.mark.parametrize('name', [_param(n) for n in MODELS])
def test_metadata_matches_profile(name):
    info = get_model_info(name)
    assert info.params is not None and info.macs is not None, \
        '%s: no row in gluon_nets/model_numbers.json (python -m gluon_nets.summary --regenerate)' % name
    net = get_model(name)
    size = info.input_size
    assert count_params(net, (1, 3, size, size)) == info.params
    assert count_macs(net, (1, 3, size, size)) == info.macs


@pytest.mark.parametrize('name', [_param(n) for n in MODELS])
def test_hybridize_backward_export(name, tmp_path):
    info = get_model_info(name)
    size = info.min_input_size
    mx.random.seed(0)
    net = get_model(name, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, 3, size, size)))

    imperative = net(x).asnumpy()
    assert imperative.shape == (2, 10)
    # the registry names the attribute that holds the classifier
    assert isinstance(getattr(net, info.classifier, None), mx.gluon.Block), \
        '%s: registry classifier %r is not a block of the net' % (name, info.classifier)
    net.hybridize(static_alloc=True, static_shape=True)
    hybrid = net(x).asnumpy()
    assert_almost_equal(hybrid, imperative, rtol=1e-4, atol=1e-5)

    with autograd.record():
        loss = mx.nd.softmax_cross_entropy(net(x), mx.nd.array([1, 2]))
    loss.backward()
    for pname, param in net.collect_params().items():
        if param.grad_req == 'null':
            continue
        assert np.all(np.isfinite(param.grad().asnumpy())), '%s: non-finite gradient' % pname

    prefix = str(tmp_path / name)
    net.export(prefix)
    loaded = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                          prefix + '-0000.params')
    assert_almost_equal(loaded(x).asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-6)
