"""LW-DNA: layer-wise differentiated ResNets found by the Heterogeneity Hypothesis.

Paper: Li et al., "The Heterogeneity Hypothesis: Finding Layer-Wise Differentiated
Network Architectures", CVPR 2021 (arXiv 2006.16242); reference code
ofsoundof/Heterogeneity_Hypothesis (PyTorch). docs/lwdna.md describes the method.

- ``config.py``: width configs (``default_config``, ``validate_config``, ``config_macs``)
- ``nets.py``: ``LWDNAResNet`` and ``lwdna_resnet{18,34,50,101,152}``
- ``hypernet.py``: ``HyperConv``, the HH blocks, ``HHResNet`` and ``hh_resnet{18,...,152}``
- ``search.py``: ``search`` (warm-up) and ``shrink`` (masks, threshold search, slicing)
- ``padding.py``: ``pad_widths`` (same function, CPU-friendly widths ``cpu_widths``)
- ``conversion.py``: the checkpoint converter, ``config_from_state_dict``, ``hh_reference_names``
- ``training.py``: the trainer plugin (search an ``hh_*`` net, then train the ``lwdna_*`` net)
"""
from ...model_zoo import register_family
from .training import LWDNATraining

__all__ = ['LWDNAResNet', 'HHResNet', 'HyperConv', 'HHBottleneck', 'HHBasicBlock',
           'default_config', 'validate_config', 'config_macs', 'config_from_state_dict',
           'hh_reference_names', 'pad_widths', 'cpu_widths', 'PaddedLWDNAResNet', 'shrink', 'search', 'STAGE_BLOCKS',
           'lwdna_resnet18', 'lwdna_resnet34', 'lwdna_resnet50', 'lwdna_resnet101',
           'lwdna_resnet152', 'hh_resnet18', 'hh_resnet34', 'hh_resnet50', 'hh_resnet101',
           'hh_resnet152']

PAPER = ('The Heterogeneity Hypothesis: Finding Layer-Wise Differentiated Network Architectures '
         '(CVPR 2021)')
#: the search-stage network; the lwdna_* entries cite the evaluation path (nets.REFERENCE_EVAL)
REFERENCE = ('ofsoundof/Heterogeneity_Hypothesis@ea7efc92761e9c563e1810e8592780e3f459701c:'
             'model_dhp/resnet_imagenet_dhp.py')

# The reference's ImageNet evaluation (data/imagenet.py, docs/lwdna.md): torchvision
# Resize(256) with its default bilinear interpolation, CenterCrop(224), ImageNet mean/std.
DATA_CONFIG = dict(input_size=(3, 224, 224), crop_ratio=224 / 256, interpolation='bilinear',
                   mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

register_family(
    'lwdna', paper=PAPER, reference=REFERENCE, data_config=DATA_CONFIG,
    classifier='fc',            # hh_* nets name theirs 'classifier', as the reference does
    weights=('none shipped; the authors release resnet50_lwdna.pt (LW-DNA ResNet-50, linked '
             'from the reference README, no licence stated) for lwdna_resnet50: convert it '
             'with python -m gluon_nets.convert'),
    training=LWDNATraining())

# the models register after the family they belong to (register_model needs it declared)
from .config import STAGE_BLOCKS, config_macs, default_config, validate_config  # noqa: E402
from .nets import (LWDNAResNet, REFERENCE_EVAL, lwdna_resnet18, lwdna_resnet34,  # noqa: E402,F401
                   lwdna_resnet50, lwdna_resnet101, lwdna_resnet152)
from .hypernet import (HHBasicBlock, HHBottleneck, HHResNet, HyperConv,  # noqa: E402
                       hh_resnet18, hh_resnet34, hh_resnet50, hh_resnet101, hh_resnet152)
from .search import search, shrink  # noqa: E402
from .padding import PaddedLWDNAResNet, cpu_widths, pad_widths  # noqa: E402
from .conversion import config_from_state_dict, hh_reference_names  # noqa: E402
