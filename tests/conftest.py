import os
import sys

# MXNet uses one thread unless told otherwise before it loads.
os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
# the count MXNet runs with in this process: in-process CLI tests (--threads 1) change the
# environment later, and a subprocess must use this count to reproduce our numbers bit
# for bit (oneDNN's results of some nets, e.g. ScaleNet, depend on the thread count)
MXNET_THREADS = os.environ['OMP_NUM_THREADS']
os.environ.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
DATA = os.path.join(TESTS, 'data')
sys.path.insert(0, TESTS)

# The steering repo's shared/ folder, beside the checkout (holds unlicensed weights
# that must never be copied into the repository).
SHARED = os.environ.get('GLUON_NETS_SHARED', os.path.join(os.path.dirname(ROOT), 'shared'))


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: long tests (run with --runslow)')
    config.addinivalue_line('markers', 'full: every model of a family (opt-in, -m full)')


def pytest_addoption(parser):
    parser.addoption('--runslow', action='store_true', help='also run tests marked slow')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--runslow') or 'slow' in (config.getoption('-m') or ''):
        return
    import pytest
    skip = pytest.mark.skip(reason='slow: run with --runslow')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)
