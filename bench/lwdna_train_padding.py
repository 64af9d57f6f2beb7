"""Training-step speed of LW-DNA-50 (the golden shrink config) with its learned widths
as they are vs padded with zero channels (``lwdna.pad_widths``), in one interleaved run.

    python bench/lwdna_train_padding.py --threads 1 --batch 16 --size 224 --rounds 5

One step = forward + backward + SGD update (momentum 0.9, wd 1e-4), the net hybridized
with static alloc/shape as ``train_imagenet.py`` runs it. The padded net starts from the
unpadded net's weights (zero kernel rows and columns, BN gamma = beta = 0 at the padded
channels), so every padded entry gets an exactly zero gradient and stays zero: after the
timed steps the script prints the largest padded entry of a trainable parameter (0).
At 1 thread the process CPU time per step is reported (other jobs disturb it little),
at more threads the wall time; medians over ``--rounds`` interleaved rounds.
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ROOT, format_table, interleaved_wall_cpu, mxnet_training_step,  # noqa: E402
                    set_threads)

LWDNA_GOLDEN = os.path.join(ROOT, 'tests', 'data', 'golden', 'lwdna', 'resnet50_hh_wide2.json')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--batch', '--batch-size', dest='batch', type=int, default=16)
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--multiples', default='16,cpu',
                        help="comma-separated pad multiples; 'cpu': lwdna.cpu_widths(16), "
                             "what optimize pads to on AVX-512")
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    import mxnet as mx
    import numpy as np
    from mxnet import gluon
    from gluon_nets import get_model
    from gluon_nets.models.lwdna import cpu_widths, pad_widths
    from gluon_nets.profile import count_macs

    with open(LWDNA_GOLDEN) as f:
        config = json.load(f)['shrink']['config']
    mx.random.seed(0)
    base = get_model('lwdna_resnet50', config=config)
    base.initialize(mx.init.Xavier())
    base(mx.nd.zeros((1, 3, 32, 32)))
    nets = {'unpadded': base}
    for multiple in args.multiples.split(','):
        if multiple == 'cpu':      # what optimize pads to on AVX-512
            nets['padded: cpu_widths(16)'] = pad_widths(
                base, config=cpu_widths(base.config, base.depth, 16))
        else:
            nets['padded to %s' % multiple] = pad_widths(base, multiple=int(multiple))
    x = mx.nd.random.uniform(-1, 1, (args.batch, 3, args.size, args.size))
    y = mx.nd.array(np.random.RandomState(0).randint(0, 1000, args.batch))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    steps = {}
    for name, net in nets.items():
        net.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), 'sgd',
                                {'learning_rate': 0.01, 'momentum': 0.9, 'wd': 1e-4})
        steps[name] = mxnet_training_step(net, trainer, x, y, loss_fn)
    times = interleaved_wall_cpu(steps, args.rounds, warmup=2)
    pick = 1 if threads == 1 else 0

    # exactness: the padded nets ran the same steps; the padded entries of every trainable
    # parameter got zero gradients and are still exactly 0 (BN running variances decay
    # towards the padded channels' batch variance, 0: harmless, gamma = beta = 0 there, and
    # not saved). The real entries are not compared: a fresh net's float32 train-mode
    # gradients move by ~20% under 1e-6 input noise (tests/test_lwdna_padding.py compares
    # them in float64: equal to 1e-9).
    ref = base._collect_params_with_prefix()
    leaked = {}
    for name, net in nets.items():
        worst = 0.0
        for key, param in net._collect_params_with_prefix().items():
            if net is base or param.grad_req == 'null':
                continue
            mask = np.ones(param.shape, bool)
            mask[tuple(slice(0, n) for n in ref[key].shape)] = False
            if mask.any():
                worst = max(worst, float(np.abs(param.data().asnumpy()[mask]).max()))
        leaked[name] = worst

    base_sec = statistics.median(times['unpadded'][pick])
    rows = []
    for name, net in nets.items():
        sec = statistics.median(times[name][pick])
        rows.append([name, '%.3f' % (count_macs(net) / 1e9), '%.3f' % sec,
                     '%.1f' % (args.batch / sec), '%.2fx' % (base_sec / sec),
                     '-' if net is base else '%g' % leaked[name]])
    print('# LW-DNA-50 golden shrink, one training step (fwd+bwd+SGD), batch %d, %d px, '
          '%d thread(s), %s time, median of %d interleaved rounds, load %s'
          % (args.batch, args.size, threads, 'process CPU' if threads == 1 else 'wall',
             args.rounds, '%.2f %.2f %.2f' % os.getloadavg()))
    print(format_table(['net', 'GMACs (fwd)', 's/step', 'img/s', 'vs unpadded',
                        'max |padded weight| after the steps'], rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
