"""Format ``fused``: the oneDNN-partitioned graph (``optimize_for('MKLDNN')``: BN folded
into the conv, conv+act(+add) fused), saved like ``symbol`` -- when it is faster.

The partitioner does not always pay: on MENet-228 the partitioned graph runs 2.4x
slower than the plain one, and only because of its conv+ReLU fusion (with the ReLUs
left apart, conv (+sum) fused, it is ~7% faster than plain). So with ``partition='auto'``
(the default) three graphs are timed on the export's check input (process CPU time,
interleaved, fastest of :data:`TIMING_RUNS` samples): the plain one, the partitioned
one, and the partitioned one with every ReLU kept out of the convolutions
(``partitioned_relu_apart``: MXNet 1.9.1's ``MXNET_DISABLE_MKLDNN_FUSE_CONV_RELU=1``;
the library reads it once when it loads, so that partition is made in a short
subprocess, then loaded, checked and timed here like the others). The faster partitioned graph is kept only when it needs
at least :data:`MARGIN` less time than the plain one; otherwise the file holds the plain
graph (bit-identical to the ``symbol`` export). Either way the deployer JSON says which
(``partitioned``, and in ``checks``: ``fused_kept``, ``fused_cpu_seconds``,
``fused_timing``). ``partition='always'`` keeps the fully partitioned graph
unconditionally (the behaviour before the timing existed).

Check: the partitioned graph within :data:`TOLERANCE` relative of the plain graph, in
memory and reloaded; a plain graph kept instead reproduces the net bit for bit.
"""
import json
import math
import os
import time

import numpy as np

from .checks import ExportError, error_line, relative_error
from .loaders import load
from .rewrites import conv_operand_first, op_counts
from .symbol import keep_pair, save_onednn_graph

__all__ = ['save', 'TOLERANCE', 'MARGIN', 'PARTITION_CHOICES', 'time_graphs']

TOLERANCE = 1e-5     # max |fused - plain| / max |plain|
PARTITION_CHOICES = ('auto', 'always')
# The partitioned graph is kept only when it takes less than (1 - MARGIN) of the plain
# graph's CPU time: the fastest-of-N CPU times of one graph vary by ~1-2% between runs
# on a loaded machine, so a smaller win could be noise, and then the plain graph (which
# can never be slower than itself) is the safe choice.
MARGIN = 0.03
TIMING_RUNS = 7      # interleaved samples per graph (after one warm-up call each)
SAMPLE_SECONDS = 0.02  # a sample repeats the call until it takes about this long


def time_graphs(blocks, x, runs=TIMING_RUNS):
    """{name: process CPU seconds per call} of each block of ``blocks`` ({name: block})
    on the NDArray ``x``: the fastest of ``runs`` samples, the blocks called in turns
    (interleaved, so that load changes hit both alike). A sample repeats the call
    until it lasts about :data:`SAMPLE_SECONDS` (tiny graphs take microseconds)."""
    repeats = {}
    for name, block in blocks.items():          # warm-up, and the call count per sample
        start = time.process_time()
        block(x).wait_to_read()
        once = max(time.process_time() - start, 1e-6)
        repeats[name] = max(1, int(math.ceil(SAMPLE_SECONDS / once)))
    count = max(repeats.values())
    best = {name: float('inf') for name in blocks}
    for _ in range(runs):
        for name, block in blocks.items():
            start = time.process_time()
            for _ in range(count):
                block(x).wait_to_read()
            best[name] = min(best[name], (time.process_time() - start) / count)
    return best


def save(tmp, stem, plain, x, ref, checks, original=None, partition='auto', margin=MARGIN):
    """Fuse the plain export at ``plain``, check it against ``ref`` (the net's logits on
    the (N, C, S, S) check input ``x``) and keep it as ``<stem>``; returns its files.

    ``original``: the prefix of the plain export before any rewrite for the partitioner
    (default ``plain``): the graph kept when partitioning does not win (``partition=
    'auto'``: timed, kept only when at least ``margin`` faster; or when the partitioner
    fails on the graph). ``partition='always'``: always the partitioned graph (an error
    when the partitioner fails)."""
    import mxnet as mx
    if partition not in PARTITION_CHOICES:
        raise ValueError('partition must be one of %s, got %r'
                         % (', '.join(PARTITION_CHOICES), partition))
    if not mx.runtime.Features().is_enabled('MKLDNN'):
        raise ExportError('--fuse needs an MXNet build with oneDNN (MKLDNN); this one has none')
    x = mx.nd.array(x)
    checks['fused_partition'] = partition
    try:
        fused, fused_block = _partitioned(tmp, plain, '.fused', x, ref, checks)
    except ExportError as err:
        if partition == 'always':
            raise
        checks['fused_partition_failed'] = str(err)
        checks['fused_max_rel_err'] = 0.0       # of the graph kept: the plain one
        return _keep_plain(tmp, stem, original or plain, x, ref, checks, None)
    if partition == 'always':
        checks['fused_kept'] = 'partitioned'
        return keep_pair(fused, tmp, stem)
    candidates = {'partitioned': (fused, fused_block, checks)}
    if checks['fused_ops'] and _has_relu(plain):
        apart_checks = {}
        try:
            candidates['partitioned_relu_apart'] = _partitioned_elsewhere(
                tmp, plain, '.fused-relu-apart', {'MXNET_DISABLE_MKLDNN_FUSE_CONV_RELU': '1'},
                x, ref, apart_checks) + (apart_checks,)
        except ExportError as err:     # the full partition stands; say why not this one
            checks['fused_relu_apart_failed'] = str(err)
    plain_block = _checked_plain(original or plain, x, ref)
    blocks = {'plain': plain_block}
    blocks.update({name: candidate[1] for name, candidate in candidates.items()})
    seconds = time_graphs(blocks, x)
    checks['fused_cpu_seconds'] = seconds
    checks['fused_timing'] = {
        'input_shape': list(x.shape), 'runs': TIMING_RUNS, 'margin': margin,
        'threads': os.environ.get('OMP_NUM_THREADS', 'MXNet default'),
        'measure': 'process CPU time per call, fastest of the runs, graphs interleaved; '
                   'the faster partitioned graph kept when < (1 - margin) x plain'}
    best = min(candidates, key=lambda name: seconds[name])
    if seconds[best] < (1.0 - margin) * seconds['plain']:
        checks['fused_kept'] = best
        if best != 'partitioned':      # the numbers of the graph kept
            checks.update({key: candidates[best][2][key]
                           for key in ('fused_max_rel_err', 'fused_ops')})
        return keep_pair(candidates[best][0], tmp, stem)
    return _keep_plain(tmp, stem, original or plain, x, ref, checks, plain_block)


def _has_relu(plain):
    with open(plain + '-symbol.json') as f:
        return any(node['op'] == 'Activation' and node.get('attrs', {}).get('act_type') == 'relu'
                   for node in json.load(f)['nodes'])


def _partitioned_elsewhere(tmp, plain, out_name, env, x, ref, checks):
    """Like :func:`_partitioned`, the partition made by a Python subprocess whose
    environment adds ``env`` (MXNet's MXNET_DISABLE_MKLDNN_* switches are read when the
    library loads, not per call)."""
    import subprocess
    import sys
    out = os.path.join(tmp, out_name)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ('import sys; sys.path.insert(0, %r); from symbols.fused import _partition_worker; '
            '_partition_worker(%r, %r, %r)' % (root, plain, out, list(x.shape)))
    try:
        done = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, **env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    except subprocess.TimeoutExpired:
        raise ExportError('the partition with %s took over 30 min' % env) from None
    if done.returncode != 0:
        lines = done.stderr.decode('utf-8', 'replace').strip().splitlines()
        raise ExportError('the partition with %s failed: %s'
                          % (env, lines[-1] if lines else 'exit %d' % done.returncode))
    block = load(out, epoch=0)
    for _ in range(2):    # twice: static-memory graphs fail from the second call on
        err = relative_error(block(x).asnumpy(), ref)
        if not err <= TOLERANCE:
            raise ExportError('the graph partitioned with %s differs from the plain one by '
                              '%.3g relative (tolerance %g)' % (env, err, TOLERANCE))
    checks['fused_max_rel_err'] = err
    checks['fused_ops'] = op_counts(out + '-symbol.json', prefix='_sg_')
    return out, block


def _partition_worker(plain, out, shape):
    """In the subprocess of :func:`_partitioned_elsewhere`: partition the plain export
    at ``plain`` for inputs of ``shape`` and save it (FC subgraphs inlined) at ``out``."""
    import mxnet as mx
    x = mx.nd.array(np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32))
    block = load(plain, epoch=0)
    block.optimize_for(x, backend='MKLDNN', static_alloc=True, static_shape=True)
    block(x).wait_to_read()
    save_onednn_graph(block, out, x)


def _partitioned(tmp, plain, out_name, x, ref, checks):
    """(prefix, reloaded block) of the checked oneDNN-partitioned graph of the plain
    export at ``plain``, saved as ``<tmp>/<out_name>``; ExportError when the
    partitioner fails or is not exact."""
    import mxnet as mx
    swapped = conv_operand_first(plain + '-symbol.json')
    if swapped:
        checks['conv_operand_first'] = swapped
    block = load(plain, epoch=0)
    try:
        block.optimize_for(x, backend='MKLDNN', static_alloc=True, static_shape=True)
        fused_out = block(x).asnumpy()
    except mx.base.MXNetError as err:
        raise ExportError('the oneDNN partitioner (optimize_for MKLDNN) fails on this graph: %s'
                          % error_line(err)) from None
    err = relative_error(fused_out, ref)
    if not err <= TOLERANCE:
        raise ExportError('the oneDNN-fused graph differs from the plain one by %.3g relative '
                          '(tolerance %g)' % (err, TOLERANCE))
    fused = os.path.join(tmp, out_name)
    reloaded, fused_out = save_onednn_graph(block, fused, x)
    err = relative_error(fused_out, ref)
    if not err <= TOLERANCE:
        raise ExportError('the saved oneDNN-fused graph differs from the plain one by %.3g '
                          'relative (tolerance %g)' % (err, TOLERANCE))
    # what the partitioner made of the graph (also when the plain graph is kept)
    checks['fused_max_rel_err'] = err
    checks['fused_ops'] = op_counts(fused + '-symbol.json', prefix='_sg_')
    return fused, reloaded


def _checked_plain(prefix, x, ref):
    """The plain export at ``prefix`` reloaded, after checking it reproduces ``ref``
    bit for bit (as the ``symbol`` format does)."""
    block = load(prefix, epoch=0)
    out = block(x).asnumpy()
    if not np.array_equal(out, ref):
        raise ExportError('the exported plain graph differs from the net (max rel err %.3g)'
                          % relative_error(out, ref))
    return block


def _keep_plain(tmp, stem, prefix, x, ref, checks, block):
    """Keep the plain graph at ``prefix`` as ``<stem>`` (checked bit for bit)."""
    if block is None:
        _checked_plain(prefix, x, ref)
    checks['fused_kept'] = 'plain'
    checks['reload_bit_identical'] = True
    return keep_pair(prefix, tmp, stem)
