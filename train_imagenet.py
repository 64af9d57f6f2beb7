#!/usr/bin/env python
"""Train any gluon_nets model the way GluonCV trains ImageNet models.

    python train_imagenet.py --model oct_resnet50_v1b --alpha 0.25 \\
        --rec-train ~/imagenet/rec/train-*.rec --rec-val ~/imagenet/rec/val.rec \\
        --lr-mode cosine --num-epochs 120 --warmup-epochs 5 --label-smoothing --mixup --no-wd --last-gamma

With no data flag it trains on the embedded fashion-mnist-mini set. All flags (family
options per family): ``python train_imagenet.py --help``; recipes and outputs:
docs/training.md. The same command is installed as a console script
(``gluon_nets.training.cli:main``).
"""
import os
import sys

if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gluon_nets.training.cli import main
    sys.exit(main())
