"""Deployment artefacts of zoo models: MXNet Symbol graphs (plain and oneDNN-fused),
ONNX (opset 13) and INT8, each with a deployer JSON; and loaders that need neither
gluon_nets nor this package's model code.

    import symbols
    info = symbols.export(net, 'out', 'menet108_8x1_g3', format='symbol')
    block = symbols.load('out/menet108_8x1_g3')       # SymbolBlock: (N,3,H,W) -> logits
    onnx_model = symbols.load_onnx('out/menet108_8x1_g3.onnx')

Modules: ``exporter`` (:func:`export`, any format), one per format (``symbol``,
``fused``, ``onnx``, ``int8``), ``rewrites`` (exact graph rewrites they share),
``checks`` (check input, tolerance measure, ExportError), ``deploy_record`` (the
deployer JSON: ``model_zoo.model_record`` plus serving facts), ``loaders`` (load,
load_onnx: mxnet / onnxruntime only), ``zoo`` (a registered model with its weights,
for the command lines), ``export`` (``python -m symbols.export``), ``support``
(``python -m symbols.support``: the model x format table), ``openvino``
(``load_openvino``: our ONNX files on OpenVINO's CPU runtime, ``[openvino]`` extra).
See docs/deploy.md.
"""
from .checks import ExportError, check_input, relative_error  # noqa: F401
from .exporter import FORMATS, export  # noqa: F401
from .loaders import OnnxModel, load, load_onnx, read_deploy_info  # noqa: F401

# IMAGENET_MEAN / IMAGENET_STD are attributes too (``symbols.IMAGENET_MEAN``) but not in
# __all__: they are read from the registry, and ``from symbols import *`` must work
# where only the loaders' mxnet / onnxruntime are installed
__all__ = ['export', 'load', 'load_onnx', 'read_deploy_info', 'ExportError', 'OnnxModel',
           'FORMATS', 'relative_error', 'check_input']


def __getattr__(name):
    # ImageNet's statistics live in the registry (model_zoo.IMAGENET_DATA_CONFIG); read
    # on use, so that ``import symbols`` for the loaders needs no gluon_nets
    if name in ('IMAGENET_MEAN', 'IMAGENET_STD'):
        from gluon_nets.model_zoo import IMAGENET_DATA_CONFIG
        return tuple(IMAGENET_DATA_CONFIG[name[len('IMAGENET_'):].lower()])
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
