"""Blocks that several families share, written once."""
from .blocks import *  # noqa: F401,F403
from .blocks import __all__  # noqa: F401
