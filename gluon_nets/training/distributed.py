"""The trainer's distributed (MXNet parameter-server) part: the kvstore, the initial
parameter broadcast, barriers, rank/part bookkeeping and a schedule the servers can
unpickle.

Why the start needs care (MXNet 1.9.1, ps-lite 34fd45c): with
``update_on_kvstore=False`` a ``gluon.Trainer`` broadcasts its parameters inside its
first ``step()`` (rank 0 pushes, every worker pulls asynchronously) and the same
``step()`` then push-pulls the gradients on the same keys. ps-lite's server answers
equal-priority requests roughly last-in first-out, so under a backlog a worker's
broadcast pull can be answered after both workers' first gradient push: that worker
starts from the summed gradient instead of rank 0's weight and never recovers (the
workers then disagree by ``w0 - sum(G0)``). :func:`sync_initial_parameters` runs the
broadcast before the first step, waits for every pull to land and holds all workers
at a barrier until then, so no gradient can reach a key before its weight did.

``--horovod`` (the ``horovod`` extra) is the other way: no servers, the workers
all-reduce their gradients (Gloo on CPU) through ``hvd.DistributedTrainer`` and
start from rank 0's parameters through ``hvd.broadcast_parameters``, as GluonCV's
``train_horovod.py``; :class:`Worker` and the helpers below hide the difference
from the trainer.

This module imports no MXNet at import time: the servers of a ``dist_async`` job
unpickle :class:`ServerSafeSchedule` while they are still inside ``import mxnet``.
"""
import math

__all__ = ['Worker', 'connect', 'barrier', 'sync_initial_parameters', 'step_batch_size',
           'update_on_kvstore', 'states_are_local', 'make_trainer', 'import_horovod',
           'ServerSafeSchedule']

#: the ``kind`` of a Horovod worker (``--horovod``)
HOROVOD = 'horovod'


class Worker:
    """This process's place in the job: ``kv`` (the dist kvstore; None when local or
    under Horovod), ``hvd`` (``horovod.mxnet`` under ``--horovod``, else None),
    ``rank``, ``num_workers``, ``kind`` (the ``--kvstore`` value, or ``'horovod'``)
    and ``is_chief`` (rank 0: writes the run directory)."""

    def __init__(self, kv, kind, hvd=None):
        self.kv, self.kind, self.hvd = kv, kind, hvd
        if hvd is not None:
            self.rank, self.num_workers = hvd.rank(), hvd.size()
        else:
            self.rank = kv.rank if kv is not None else 0
            self.num_workers = kv.num_workers if kv is not None else 1

    @property
    def is_chief(self):
        return self.rank == 0

    @property
    def is_distributed(self):
        return self.kv is not None or self.hvd is not None


def import_horovod():
    """``horovod.mxnet``, or an ImportError that says what to install."""
    try:
        import horovod.mxnet as hvd
    except ImportError as err:
        raise ImportError('--horovod needs Horovod built with MXNet support, e.g. '
                          'HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 pip install '
                          '"gluon_nets[horovod]" (docs/distributed.md): %s' % err) from None
    return hvd


def connect(kind):
    """A :class:`Worker` for ``--kvstore kind``: a dist kvstore is created (this
    blocks until every worker and server of the job has registered with the
    scheduler); local kinds ('device', 'local', ...) give ``kv=None``: the Trainer
    makes its own."""
    if kind == HOROVOD:
        hvd = import_horovod()
        hvd.init()
        return Worker(None, kind, hvd=hvd)
    if not kind.startswith('dist'):
        return Worker(None, kind)
    import mxnet as mx
    return Worker(mx.kv.create(kind), kind)


def barrier(kv):
    """Wait until every worker reaches this point (no-op when ``kv`` is None).
    MXNet 1.9.1's kvstore has only the private ``_barrier``; later ones ``barrier``."""
    if kv is None:
        return
    wait = getattr(kv, 'barrier', None) or kv._barrier
    wait()


def update_on_kvstore(kind, kv):
    """The Trainer's ``update_on_kvstore``: servers update under ``dist_async`` (the
    only mode MXNet allows there), workers update under the synchronous kinds (every
    worker applies the same summed gradient, and the optimiser states stay local so
    they can be checkpointed); None (the Trainer's choice) when training locally."""
    if kv is None:
        return None
    return kind == 'dist_async'


def states_are_local(worker, on_kvstore):
    """True when ``trainer.save_states`` can save the optimiser states on this worker
    (not when the servers hold them)."""
    return not (worker.is_distributed and on_kvstore)


def step_batch_size(per_device_batch, num_devices, worker, on_kvstore):
    """The ``batch_size`` to pass to ``trainer.step``: the gradients are summed over
    this worker's devices and, when the workers push-pull a summed gradient
    (synchronous kinds), over every worker, so the loss is averaged over the global
    batch ``per_device_batch * num_devices * num_workers``. Under ``dist_async`` each
    worker's gradient is applied on its own: its own batch."""
    batch = per_device_batch * num_devices
    if worker.kv is not None and not on_kvstore:
        batch *= worker.num_workers
    # (Horovod's DistributedTrainer all-reduces the *average* of the workers'
    # gradients: its own batch gives the global mean too)
    return batch


def make_trainer(worker, params, optimizer, optimizer_params, on_kvstore):
    """The ``gluon.Trainer`` for this worker: Horovod's ``DistributedTrainer``
    under ``--horovod``, else a Trainer on the worker's kvstore (or its ``kind``,
    e.g. 'device', when local)."""
    from mxnet import gluon
    if worker.hvd is not None:
        return worker.hvd.DistributedTrainer(params, optimizer, optimizer_params)
    return gluon.Trainer(params, optimizer, optimizer_params,
                         kvstore=worker.kv if worker.kv is not None else worker.kind,
                         update_on_kvstore=on_kvstore)


def _default_layout(params):
    """Put every parameter array back in MXNet's default layout. An inference-mode
    forward (the trainer's shape-inference warm-up) leaves conv weights in oneDNN's
    blocked layout; the kvstore's init push silently fails on such arrays and the
    next pull then hits a key the server never received ("init N first")."""
    import mxnet as mx
    for param in params:
        data = param.data(param.list_ctx()[0])
        # new arrays (and gradient buffers): copying into the old ones (set_data) would
        # keep their blocked layout
        param._init_impl(mx.nd.array(data.asnumpy(), ctx=mx.cpu(), dtype=data.dtype),
                         param.list_ctx())


def sync_initial_parameters(trainer, kv, step_batch, hvd=None):
    """Broadcast rank 0's parameters of ``trainer`` to every worker and wait until
    all workers hold them, before any gradient is pushed (see the module doc).
    Under Horovod (``hvd``; ``kv`` None): ``hvd.broadcast_parameters`` from rank 0.

    Every parameter must already be initialised (run one forward first: a
    parameter still deferred would be broadcast later, inside ``step``).
    ``step_batch`` is what every ``trainer.step`` will be given
    (:func:`step_batch_size`): servers that update (``dist_async``) receive the
    optimiser, with its gradient scale, now.
    """
    import mxnet as mx
    trainer._optimizer.rescale_grad = trainer._scale / step_batch
    params = trainer._params
    deferred = [p.name for p in params if p._deferred_init]
    if deferred:
        raise RuntimeError('parameters not initialised before the kvstore broadcast: %s'
                           % ', '.join(deferred[:5]))
    _default_layout(params)
    if hvd is not None:
        # (it sets the first device's copy: the others follow it)
        hvd.broadcast_parameters({p.name: p for p in params}, root_rank=0)
        for param in params:
            if len(param.list_ctx()) > 1:
                param.set_data(param.data(param.list_ctx()[0]))
        mx.nd.waitall()
        return
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()   # rank 0 pushes, barrier, every worker pulls
    mx.nd.waitall()              # every pull has landed in this worker's arrays
    barrier(kv)                  # ... and in every other worker's


class ServerSafeSchedule:
    """GluonCV's ``LRSequential`` of ``LRScheduler`` stages, as plain Python.

    Same value for every update count (the formulas of gluoncv 0.10.5's
    ``utils/lr_scheduler.py``), but the class imports neither gluoncv nor MXNet, so a
    ``dist_async`` server can unpickle the optimiser that carries it while it is
    still inside ``import mxnet`` (gluoncv's classes make it import gluoncv there,
    which aborts the server). ``schedule(num_update) -> lr``.
    """

    _MODES = ('constant', 'step', 'linear', 'poly', 'cosine')

    def __init__(self, stages):
        """``stages``: dicts with mode, base_lr, target_lr, niters, power, step (list
        of update counts or None), step_factor, in order."""
        self.stages, self.ends, count = [], [], 0
        for stage in stages:
            if stage['mode'] not in self._MODES:
                raise ValueError('unknown schedule mode %r' % stage['mode'])
            stage = dict(stage, offset=count)
            if stage['mode'] == 'constant':
                stage['target_lr'] = stage['base_lr']
            count += stage['niters']
            self.stages.append(stage)
            self.ends.append(count)
        if not self.stages:
            raise ValueError('a schedule needs at least one stage')
        self.count = count
        self.base_lr = self.stages[0]['base_lr']

    @classmethod
    def from_gluoncv(cls, sequential):
        """The same schedule as a gluoncv ``LRSequential`` (reads its stages)."""
        return cls([dict(mode=s.mode, base_lr=s.base_lr, target_lr=s.target_lr,
                         niters=s.niters, power=s.power, step=list(s.step) if s.step else None,
                         step_factor=s.step_factor) for s in sequential.schedulers])

    def __call__(self, num_update):
        num_update = min(num_update, self.count - 1)
        index = len(self.stages) - 1
        for i, end in enumerate(self.ends):
            if end > num_update:
                index = i
                break
        return self._stage_lr(self.stages[index], num_update)

    @staticmethod
    def _stage_lr(stage, num_update):
        last = stage['niters'] - 1
        t = min(max(0, num_update - stage['offset']), last)
        mode = stage['mode']
        if mode == 'constant':
            factor = 0
        elif mode == 'linear':
            factor = 1 - t / last
        elif mode == 'poly':
            factor = pow(1 - t / last, stage['power'])
        elif mode == 'cosine':
            factor = (1 + math.cos(math.pi * t / last)) / 2
        else:   # step
            steps = stage['step']
            factor = pow(stage['step_factor'], sum(1 for s in steps if s <= t)) if steps else 1
        if mode == 'step':
            return stage['base_lr'] * factor
        return stage['target_lr'] + (stage['base_lr'] - stage['target_lr']) * factor
