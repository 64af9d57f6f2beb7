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
