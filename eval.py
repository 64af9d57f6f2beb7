"""Evaluate a zoo model, exported Symbol graphs (plain, fused or int8) and ONNX files on
the same validation data: top-1, top-5, cross-entropy loss and images/s.

    python eval.py --model menet108_8x1_g3 --params menet108.params --rec-val val.rec
    python eval.py --params run/                 # a train_imagenet.py run: its model.json
    python eval.py --symbol deploy/m deploy/m-int8 --dataset fashion-mnist-mini
    python eval.py --onnx deploy/m.onnx --data-dir ~/imagenet --per-class report/ --json r.json

A shim that runs from a checkout; installed, the same command is ``gluon-nets-eval``.
The code lives in :mod:`gluon_nets.evaluation` (flags: ``python eval.py --help``).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gluon_nets.evaluation import build_parser, evaluate, main  # noqa: E402,F401

__all__ = ['main', 'evaluate', 'build_parser']

if __name__ == '__main__':
    sys.exit(main())
