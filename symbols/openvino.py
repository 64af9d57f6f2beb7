"""Serve our ONNX files with OpenVINO's CPU runtime (``pip install "gluon_nets[openvino]"``).

OpenVINO reads the ``<stem>.onnx`` that ``symbols.export(..., format='onnx')`` writes
(checked there against onnxruntime and MXNet); nothing else is needed:

    from symbols.openvino import load_openvino
    model = load_openvino('deploy/menet228_12x1_g3.onnx', threads=1)
    logits = model(images)            # (N, 3, H, W) float32 -> (N, classes) numpy

Needs only openvino and numpy (neither mxnet nor gluon_nets). Each input shape is
compiled once (a static shape is what OpenVINO's CPU plugin runs fastest) and kept;
float32 inference is forced (``INFERENCE_PRECISION_HINT f32``) so that a CPU with bf16
support does not silently run in bf16.
"""
import os

import numpy as np

from .loaders import read_deploy_info

__all__ = ['OpenVinoModel', 'load_openvino']


class OpenVinoModel:
    """An OpenVINO CPU model called like a block: ``model(x)`` with x (N, C, H, W)
    float32 (numpy or NDArray) -> numpy logits (N, classes). ``deploy_info`` holds the
    deployer JSON written beside the file (or None).

    ``threads``: OpenVINO's inference threads (default: ``OMP_NUM_THREADS`` when set,
    else OpenVINO's own choice); one stream, latency hint.
    """

    def __init__(self, path, threads=None):
        try:
            import openvino
        except ImportError:
            raise ImportError('running ONNX files with OpenVINO needs openvino: '
                              'pip install "gluon_nets[openvino]"') from None
        if not os.path.isfile(path):
            raise FileNotFoundError('no ONNX file at %s' % path)
        self.core = openvino.Core()
        try:
            self.model = self.core.read_model(path)
        except Exception as err:  # OpenVINO raises RuntimeError subclasses of its own
            raise ValueError('OpenVINO cannot read %s: %s' % (path, str(err).splitlines()[0])) \
                from None
        threads = threads or os.environ.get('OMP_NUM_THREADS')
        self.config = {'PERFORMANCE_HINT': 'LATENCY', 'NUM_STREAMS': '1',
                       'INFERENCE_PRECISION_HINT': 'f32'}
        if threads:
            self.config['INFERENCE_NUM_THREADS'] = str(int(threads))
        self.input_name = self.model.inputs[0].get_any_name()
        self.path = path
        self.deploy_info = read_deploy_info(path + '.json')
        self._requests = {}   # input shape -> infer request of the model compiled for it

    def _request(self, shape):
        request = self._requests.get(shape)
        if request is None:
            model = self.model.clone()
            model.reshape({self.input_name: list(shape)})
            request = self.core.compile_model(model, 'CPU', self.config).create_infer_request()
            self._requests[shape] = request
        return request

    def __call__(self, x):
        if hasattr(x, 'asnumpy'):
            x = x.asnumpy()
        x = np.ascontiguousarray(x, np.float32)
        request = self._request(tuple(x.shape))
        request.infer({self.input_name: x})
        return request.get_output_tensor(0).data.copy()


def load_openvino(path, threads=None):
    """An :class:`OpenVinoModel` for the ONNX file ``path``."""
    return OpenVinoModel(os.fspath(path), threads=threads)
