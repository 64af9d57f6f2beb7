"""``python -m gluon_nets.evaluation``: the evaluator's command line."""
import sys

from .cli import main

sys.exit(main())
