"""gluon_nets: ED-Net, MENet, ScaleNet, LW-DNA and OctConv in MXNet Gluon.

CPU install:  pip install -e ".[test]"
GPU install:  pip install mxnet-cu112==1.9.1 && GLUON_NETS_MXNET=mxnet-cu112 pip install -e .
(``GLUON_NETS_MXNET=mxnet-cu112`` makes this file require the CUDA wheel instead of
the CPU one, so pip never installs the CPU ``mxnet`` over it: both provide the
same ``mxnet`` module.)

Commands: ``gluon-nets-train`` and ``gluon-nets-eval``; from a checkout the same run as
``python train_imagenet.py`` and ``python eval.py`` (shims, not installed).
"""
import os

from setuptools import find_packages, setup

MXNET = os.environ.get('GLUON_NETS_MXNET', 'mxnet') + '==1.9.1'

INSTALL_REQUIRES = [
    MXNET,
    'gluoncv==0.10.5.post0',
    'numpy<1.24',              # mxnet 1.9.1 breaks on numpy>=1.24 (np.bool)
    'opencv-python<4.9',
    'scipy<1.12',
    'matplotlib<3.9',
    'pandas<2.2',
    'tqdm',
    'Pillow',
    'requests',                # imported by gluoncv
    'portalocker',             # imported by gluoncv
]

def _readme():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'README.md')
    return open(path).read() if os.path.exists(path) else ''


EXTRAS = {
    'test': ['pytest', 'pytest-timeout'],
    'torch': ['torch==2.13.0'],
    'onnx': ['onnx==1.14.1', 'onnxruntime==1.18.1'],
    # serves our ONNX files (docs/deploy.md); installs beside numpy<1.24
    'openvino': ['openvino==2026.4.1'],
    # --horovod (docs/distributed.md): built from source against the installed mxnet, with
    # HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_TENSORFLOW=1
    # HOROVOD_WITHOUT_PYTORCH=1 in the environment (8 min on 2 cores here)
    'horovod': ['horovod==0.28.1'],
}

setup(
    name='gluon_nets',
    version='0.1.0',
    description='ED-Net, MENet, ScaleNet, LW-DNA and OctConv as MXNet Gluon models',
    long_description=_readme(),
    long_description_content_type='text/markdown',
    python_requires='>=3.8,<3.12',
    packages=find_packages(include=['gluon_nets', 'gluon_nets.*', 'symbols', 'symbols.*']),
    entry_points={'console_scripts': [
        'gluon-nets-train = gluon_nets.training.cli:main',
        'gluon-nets-eval = gluon_nets.evaluation.cli:main',
    ]},
    include_package_data=True,
    package_data={'gluon_nets': ['data/fashion_mnist_mini/*', 'resources/*.txt',
                                 'models/scalenet_structures/*', 'model_numbers.json']},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license='Apache-2.0',
)
