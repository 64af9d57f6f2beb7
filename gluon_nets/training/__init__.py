"""Training helpers behind ``train_imagenet.py`` (flags, loop, run directory).

``main(argv)`` runs the trainer in-process; ``run(args)`` takes parsed arguments
and returns the per-epoch metric rows. See ``docs/training.md``.
"""
from .options import build_parser, parse_args, set_threads_from_argv, UsageError  # noqa: F401
from .checkpoint import RunDir, METRIC_FIELDS  # noqa: F401
from .trainer import main, run, evaluate, TrainingError, NonFiniteLoss  # noqa: F401
