"""Training helpers behind ``train_imagenet.py`` (flags, loop, run directory).

``main(argv)`` runs the trainer in-process; ``run(args)`` takes parsed arguments
and returns the per-epoch metric rows; ``cli.main`` is the console-script entry
point. A family plugs its own flow in through ``model_zoo.TrainingPlugin`` and sees
the run as a :class:`~.session.TrainingSession`. See ``docs/training.md``.
"""
from .options import build_parser, parse_args, set_threads_from_argv, UsageError  # noqa: F401
from .checkpoint import RunDir, METRIC_FIELDS  # noqa: F401
from .session import TrainingSession  # noqa: F401
from .trainer import main, run, evaluate, TrainingError, NonFiniteLoss  # noqa: F401
