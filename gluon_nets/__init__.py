"""gluon_nets: ED-Net, MENet, ScaleNet, LW-DNA and OctConv as MXNet Gluon models.

``get_model``, ``list_models``, ``get_model_info`` come from :mod:`gluon_nets.model_zoo`;
importing the package does not import MXNet (entry points set the thread count first),
the families load on the first registry look-up.
"""
import importlib

__version__ = '0.1.0'

from .model_zoo import (get_model, list_models, list_families, get_model_info,  # noqa: F401,E402
                        register_model)

_LAZY_SUBMODULES = ('convert', 'profile', 'summary', 'models', 'nn', 'data', 'utils',
                    'training', 'evaluation', 'inference')


def __getattr__(name):
    # Submodules load on first use, so that ``python -m gluon_nets.convert`` does not
    # find its own module already imported by the package.
    if name in _LAZY_SUBMODULES:
        return importlib.import_module('%s.%s' % (__name__, name))
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
