"""The evaluator behind ``eval.py`` and ``gluon-nets-eval`` (``python -m gluon_nets.evaluation``).

* :mod:`.predictors` -- the artefacts (``--model``/``--params``, ``--symbol``, ``--onnx``)
  as callables with the model record that says how to feed them
* :mod:`.inputs`     -- the one ``data_config`` they are fed with, the batches, class names
* :mod:`.loop`       -- :func:`evaluate`: every artefact on the same batches, a Tally each
* :mod:`.reports`    -- results, the printed table, per-class CSV / confusion PNG
* :mod:`.cli`        -- flags and :func:`main`

Importing this package does not import MXNet (``main`` sets the thread count first).
"""
from .cli import build_parser, main, run  # noqa: F401
from .loop import EvalError, Tally, evaluate  # noqa: F401

__all__ = ['main', 'run', 'build_parser', 'evaluate', 'EvalError', 'Tally']
