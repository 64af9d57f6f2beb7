"""Imports that need care on the pinned stack."""
import sys

__all__ = ['import_gluoncv']


def import_gluoncv():
    """Import gluoncv 0.10.5 even when torch>=2 is installed.

    gluoncv's ``__init__`` raises RuntimeError when it finds a torch outside
    [1.4, 2.0) (our optional ``torch`` extra pins 2.13.0); its MXNet half does not
    need torch, so torch is hidden from it while it imports.
    """
    if 'gluoncv' in sys.modules:
        return sys.modules['gluoncv']
    missing = object()
    saved = sys.modules.get('torch', missing)
    sys.modules['torch'] = None  # makes `import torch` raise ImportError inside gluoncv
    try:
        import gluoncv
    finally:
        if saved is missing:
            del sys.modules['torch']
        else:
            sys.modules['torch'] = saved
    return gluoncv
