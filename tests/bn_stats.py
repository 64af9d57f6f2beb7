"""Non-trivial BatchNorm statistics for tests of graph rewrites: with the defaults
(mean 0, var 1, gamma 1, beta 0) a BN that is folded wrongly, or a channel that is
sliced or padded at the wrong place, would still give the right numbers."""
import mxnet as mx
import numpy as np


def randomise_bn(net, seed=1):
    """Set every initialised ``running_var``/``gamma`` of ``net`` to U(0.5, 1.5) and
    every ``running_mean``/``beta`` to U(-0.2, 0.2), in parameter order, from
    ``np.random.RandomState(seed)``; parameters of unknown or empty shape are left."""
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        if param.shape is None or any(s == 0 for s in param.shape):
            continue
        if name.endswith(('running_var', 'gamma')):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif name.endswith(('running_mean', 'beta')):
            param.set_data(mx.nd.array(rng.uniform(-0.2, 0.2, param.shape)))
