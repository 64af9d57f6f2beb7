"""One module per model family; importing this package registers all of them.

A family module registers its models with :func:`gluon_nets.model_zoo.register_model`
and its checkpoint converter with :func:`gluon_nets.convert.register_converter`;
nothing else in the package has to change when a family is added.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module('%s.%s' % (__name__, _module.name))
