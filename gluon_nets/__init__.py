"""gluon_nets: ED-Net, MENet, ScaleNet, LW-DNA and OctConv as MXNet Gluon models."""
__version__ = '0.1.0'

from .model_zoo import get_model, list_models, get_model_info, register_model  # noqa: F401
from . import convert, profile  # noqa: F401

