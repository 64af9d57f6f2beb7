#!/usr/bin/env python
"""Train any gluon_nets model the way GluonCV trains ImageNet models.

    python train_imagenet.py --model oct_resnet50 --alpha 0.25 \\
        --rec-train ~/imagenet/rec/train-*.rec --rec-val ~/imagenet/rec/val.rec \\
        --lr-mode cosine --num-epochs 120 --warmup-epochs 5 --label-smoothing --mixup --no-wd --last-gamma

With no data flag it trains on the embedded fashion-mnist-mini set. All flags:
``python train_imagenet.py --help``; recipes and outputs: docs/training.md.
"""
import os
import sys


def _main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # OMP_NUM_THREADS must be set before mxnet is imported (it is read once, at load)
    from gluon_nets.training.options import set_threads_from_argv
    set_threads_from_argv(sys.argv[1:])
    from gluon_nets.training.trainer import main
    if os.environ.get('DMLC_ROLE') != 'worker':
        return main(sys.argv[1:])
    # a distributed worker that fails must exit now: a normal interpreter exit waits in
    # ps-lite's finalising barrier for the other workers, so the launcher would never see it
    try:
        code = main(sys.argv[1:])
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    if code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == '__main__':
    sys.exit(_main())
