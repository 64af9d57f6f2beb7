"""Deployment artefacts of zoo models: MXNet Symbol graphs (plain and oneDNN-fused),
ONNX (opset 13) and INT8, each with a deployer JSON; and loaders that need neither
gluon_nets nor this package's model code.

    import symbols
    info = symbols.export(net, 'out', 'menet108_8x1_g3', format='symbol')
    block = symbols.load('out/menet108_8x1_g3')       # SymbolBlock: (N,3,H,W) -> logits
    onnx_model = symbols.load_onnx('out/menet108_8x1_g3.onnx')

CLI: ``python -m symbols.export --model NAME --out DIR [--format onnx|int8] [--fuse]``.
See docs/deploy.md.
"""
from .core import (FORMATS, IMAGENET_MEAN, IMAGENET_STD, ExportError, OnnxModel,  # noqa: F401
                   check_input, export, load, load_onnx, read_deploy_info, relative_error)

__all__ = ['export', 'load', 'load_onnx', 'read_deploy_info', 'ExportError', 'OnnxModel',
           'FORMATS', 'IMAGENET_MEAN', 'IMAGENET_STD', 'relative_error', 'check_input']
