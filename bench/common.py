"""Timing helpers shared by the bench scripts.

Import this module before mxnet/torch in a bench script: ``set_threads`` (the one in
:mod:`gluon_nets.utils.threads`, re-exported here) must run before MXNet loads (it
reads OMP_NUM_THREADS once, and uses ONE thread otherwise).
"""
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from gluon_nets.utils.threads import set_threads  # noqa: E402,F401  (re-exported)


def throughput(step, batch, warmup=2, runs=5, min_time=0.0):
    """Median images/s of ``step()`` (which must block until done) over ``runs``
    timed calls after ``warmup`` untimed ones; each timed call processes ``batch`` images."""
    for _ in range(warmup):
        step()
    times = []
    deadline = time.perf_counter() + min_time
    while len(times) < runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def mxnet_step(net, batch, size, ctx=None):
    """A callable running ``net`` on a (batch, 3, size, size) input and waiting for it."""
    import mxnet as mx
    x = mx.nd.random.uniform(shape=(batch, 3, size, size), ctx=ctx or mx.cpu())

    def step():
        net(x).wait_to_read()
    return step


def mxnet_training_step(net, trainer, x, y, loss_fn):
    """A callable running one training step of ``net`` (forward + backward under
    ``autograd.record``, ``trainer.step``) on the batch ``x`` (N, C, H, W), labels ``y``
    (N,), and waiting for it."""
    import mxnet as mx
    from mxnet import autograd

    def step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        mx.nd.waitall()
    return step


def torch_step(model, batch, size, threads):
    """A callable running a torch ``model`` (eval, no grad) on a random batch."""
    import torch
    torch.set_num_threads(threads)
    model.eval()
    x = torch.rand(batch, 3, size, size)

    def step():
        with torch.no_grad():
            model(x)
    return step


def format_table(header, rows):
    """Plain-text table (Markdown pipe style) of ``rows`` under ``header``."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ['| ' + ' | '.join(c.ljust(w) for c, w in zip(cells[0], widths)) + ' |',
           '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    out += ['| ' + ' | '.join(c.ljust(w) for c, w in zip(r, widths)) + ' |' for r in cells[1:]]
    return '\n'.join(out)


def interleaved_wall_cpu(steps, rounds, warmup=1):
    """{variant: (wall seconds list, process-CPU seconds list)} of ``steps`` ({name:
    callable that blocks until done}): every step runs ``warmup`` untimed calls, then
    once per round, in turns, so that a shared machine's load falls on all alike. The
    CPU time of this process is far less disturbed by other jobs than the wall time."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {key: ([], []) for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            times[key][1].append(time.process_time() - cpu)
            times[key][0].append(time.perf_counter() - wall)
    return times


def interleaved_times(steps, rounds, warmup=1, clock='wall'):
    """{variant: [seconds per call]} of :func:`interleaved_wall_cpu`, by ``clock``
    (``'wall'`` or ``'cpu'``)."""
    times = interleaved_wall_cpu(steps, rounds, warmup)
    return {key: values[0 if clock == 'wall' else 1] for key, values in times.items()}


def interleaved(steps, rounds, warmup=1):
    """{variant: median seconds per call} of :func:`interleaved_times`."""
    times = interleaved_times(steps, rounds, warmup)
    return {key: statistics.median(values) for key, values in times.items()}


def optional_torch(threads, wanted=True):
    """The torch module set to ``threads`` threads, or None (with a note on stderr) when
    it is not installed or not ``wanted``: the reference columns are then left out."""
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        print('# torch is not installed (pip install "gluon_nets[torch]"): no reference column',
              file=sys.stderr)
        return None
    torch.set_num_threads(threads)
    return torch
