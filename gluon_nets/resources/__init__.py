"""Small data files shipped with gluon_nets.

``imagenet_classes.txt``: the 1000 ImageNet-1k (ILSVRC 2012) classes in the standard
order (WordNet ids sorted, as torchvision's ImageFolder and GluonCV index them), one
``synset<TAB>short name`` per line. The names are the short WordNet names that
GluonCV 0.10.5 lists in ``gluoncv.data.imagenet.classification``; we ship them as a
file so that class names need neither gluoncv nor a download.
"""
import os

__all__ = ['imagenet_class_names', 'imagenet_synsets']

_HERE = os.path.dirname(os.path.abspath(__file__))


def _imagenet_rows():
    with open(os.path.join(_HERE, 'imagenet_classes.txt'), encoding='utf-8') as f:
        rows = [line.rstrip('\n').split('\t') for line in f if line.strip()]
    if len(rows) != 1000 or any(len(row) != 2 for row in rows):
        raise RuntimeError('imagenet_classes.txt is damaged: expected 1000 "synset<TAB>name" '
                           'lines, got %d' % len(rows))
    return rows


def imagenet_class_names():
    """The 1000 ImageNet-1k class names, list index = class index (e.g. 285 'Egyptian cat')."""
    return [name for _, name in _imagenet_rows()]


def imagenet_synsets():
    """The 1000 WordNet ids (``n01440764``, ...), list index = class index."""
    return [synset for synset, _ in _imagenet_rows()]
