"""The model families, one module (or subpackage) each; importing this package
registers all of them with :mod:`gluon_nets.model_zoo`.

A family module imports only :mod:`gluon_nets.nn`, :mod:`gluon_nets.utils` and
:mod:`gluon_nets.model_zoo`. It declares itself with ``register_family``, each model
with ``@register_model``, its checkpoint converter with ``@register_converter`` and,
if it has one, its training flow with a ``TrainingPlugin``. Adding a family is adding
a module here: no other file changes (docs/architecture.md).
"""
import importlib
import pkgutil

from ..model_zoo import family_import

FAMILY_MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                              if not m.name.startswith('_')))

for _module in FAMILY_MODULES:
    with family_import('%s.%s' % (__name__, _module)):
        importlib.import_module('%s.%s' % (__name__, _module))
