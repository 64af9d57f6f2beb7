"""Every golden file in tests/data/golden/<family>/ reproduced by our port:
logits (max|d|/max|ref| < 1e-4), parameter count (exact), MACs (within 0.1%)."""
import glob
import os

import mxnet as mx
import pytest

from conftest import DATA
from golden import golden_weights, input_of, load, relative_error
from gluon_nets.convert import convert_state_dict
from gluon_nets.profile import count_macs, count_params

GOLDEN_FILES = sorted(
    p for p in glob.glob(os.path.join(DATA, 'golden', '*', '*.json'))
    if not os.path.basename(p).startswith('pretrained_'))


def _id(path):
    return '%s/%s' % (os.path.basename(os.path.dirname(path)), os.path.basename(path)[:-5])


@pytest.mark.parametrize('path', GOLDEN_FILES, ids=[_id(p) for p in GOLDEN_FILES])
def test_golden(path):
    golden = load(path)
    registry = golden['registry']
    # grad_req='null': inference only, no gradient buffers (the wide LW-DNA search
    # nets would otherwise need twice the memory)
    net = convert_state_dict(registry['name'], golden_weights(golden['params']),
                             grad_req='null', **registry.get('kwargs', {}))
    net.hybridize(static_alloc=True, static_shape=True)
    x = input_of(golden)
    logits = net(mx.nd.array(x)).asnumpy()
    assert logits.shape == golden['logits'].shape
    err = relative_error(logits, golden['logits'])
    assert err < 1e-4, 'logits differ from the reference: rel err %.3g' % err
    assert count_params(net) == golden['num_params']
    macs = count_macs(net, (1,) + tuple(golden['input']['shape'][1:]))
    assert abs(macs - golden['macs']) <= 1e-3 * golden['macs'], (macs, golden['macs'])


def test_golden_files_present():
    """The copied goldens are the test's input: an empty folder would pass silently."""
    assert GOLDEN_FILES, 'no golden files under tests/data/golden'
