"""What a family's training plugin sees: the ``session`` of
:meth:`gluon_nets.model_zoo.TrainingPlugin.build`.

The trainer builds one :class:`TrainingSession` per run, after the data is loaded and
before the net exists, and hands it to ``info.training.build(session)``. Everything a
family flow needs (LW-DNA: search once, keep the result in the run directory, train
the searched net) goes through it, so that the family never imports the trainer.
"""
import logging

__all__ = ['TrainingSession']


class TrainingSession:
    """The run as a family plugin sees it.

    Attributes (read them; change flags only through :meth:`set_arg`):

    ``args``        the parsed flags (an ``argparse.Namespace``)
    ``info``        the :class:`~gluon_nets.model_zoo.ModelInfo` of ``--model``
    ``name``        its registry name
    ``kwargs``      the constructor kwargs the flags give (family options with a
                    ``kwarg``, generic flags, ``--model-kwargs``)
    ``num_classes`` int, the run's class count
    ``input_size``  int, the square training crop (pixels)
    ``data_config`` the run's preprocessing (``model_zoo.resolve_data_config`` layout)
    ``ctx``         list of ``mx.Context``
    ``train_data``  the training loader: iterate it for (data (N, 3, H, W), label (N,))
                    NDArray batches; ``set_epoch(e)`` reseeds its shuffle
    ``is_chief``    True on worker 0 (the one that writes the run directory)
    ``kvstore``     the distributed ``mx.kv`` store, or None when training locally
    ``resumed``     True when a checkpoint of this run exists: the trainer loads its
                    parameters over the returned net, so weights loaded here only
                    matter on a fresh run
    ``log``         a ``logging.Logger`` (the run's log)

    Methods: :meth:`file`, :meth:`read_json`, :meth:`write_json`, :meth:`save_params`
    (the run directory; writes happen on the chief only, atomically), :meth:`make_net`
    (a net built and initialised the trainer's way), :meth:`seed`, :meth:`set_arg`,
    :meth:`barrier`.
    """

    def __init__(self, args, info, kwargs, num_classes, data_config, ctx, train_data,
                 is_chief, kvstore, resumed, run_dir, seed_fn, log=None):
        self.args = args
        self.info = info
        self.name = info.name
        self.kwargs = dict(kwargs)
        self.num_classes = int(num_classes)
        self.data_config = dict(data_config)
        self.input_size = int(data_config['input_size'][-1])
        self.ctx = list(ctx)
        self.train_data = train_data
        self.is_chief = bool(is_chief)
        self.kvstore = kvstore
        self.resumed = bool(resumed)
        self.log = log or logging.getLogger('gluon_nets.train')
        self._run_dir = run_dir
        self._seed_fn = seed_fn

    # ------------------------------------------------------------- the run directory
    def file(self, name):
        """The path of ``name`` in the run directory (it may not exist)."""
        return self._run_dir.file(name)

    def read_json(self, name):
        """The JSON stored as ``name`` in the run directory, or None if absent."""
        return self._run_dir.read_json(name)

    def write_json(self, name, obj):
        """Store ``obj`` as ``name`` in the run directory (chief only, atomic)."""
        if self.is_chief:
            self._run_dir.write_json(name, obj)

    def save_params(self, net, name):
        """Save ``net``'s parameters as ``name`` in the run directory (chief only, atomic)."""
        if self.is_chief:
            self._run_dir.save_params(net, name)

    # ------------------------------------------------------------------- the net
    def make_net(self, name=None, kwargs=None, initialize=True):
        """``get_model(name, classes=num_classes, **kwargs)`` as the trainer builds it:
        converted weights with ``--use-pretrained``, else (``initialize``) the net's
        ``default_init`` or MSRA-PReLU on ``ctx``. Defaults: this model and kwargs."""
        import mxnet as mx
        from ..model_zoo import get_model
        name = name or self.name
        kwargs = self.kwargs if kwargs is None else kwargs
        net = get_model(name, classes=self.num_classes, pretrained=self.args.use_pretrained,
                        ctx=self.ctx, **kwargs)
        # with --use-pretrained and another class count the zoo loads every weight but the
        # classifier's and logs that it re-initialised the classifier
        if not self.args.use_pretrained and initialize:
            net.initialize(self.initializer(net, name), ctx=self.ctx)
        return net

    def initializer(self, net, name=None):
        """The ``mx.init.Initializer`` of ``--init``: ``default`` (the net's
        ``default_init``, else MSRA-PReLU as GluonCV), ``reference`` (the family's
        ``reference_init``), ``msra`` or ``xavier``."""
        import mxnet as mx
        choice = getattr(self.args, 'init', 'default') or 'default'
        if choice == 'reference':
            from ..model_zoo import find_model_info
            init = find_model_info(name or self.name).reference_init
            if init is None:
                raise ValueError('--init reference: %s has no reference initialisation'
                                 % (name or self.name))
            return init
        if choice == 'msra':
            return mx.init.MSRAPrelu()
        if choice == 'xavier':
            return mx.init.Xavier()
        return getattr(net, 'default_init', mx.init.MSRAPrelu())

    # ---------------------------------------------------------------- the run itself
    def seed(self, offset):
        """Reseed every RNG the trainer uses (Python, NumPy, MXNet) from ``(--seed,
        offset)``; plugins use offsets <= -2 so a resumed run repeats them."""
        if offset > -2:
            raise ValueError('plugin seed offsets must be <= -2 (the trainer uses -1 and the '
                             'epochs), got %d' % offset)
        self._seed_fn(self.args.seed, offset)

    def set_arg(self, dest, value):
        """Change the flag ``dest`` (an ``args`` attribute, e.g. ``'lr_mode'``) for the
        rest of the run. Changes made in ``build`` come before the optimiser and the
        schedule are made and are saved in ``args.json`` (a resumed run keeps them)."""
        if not hasattr(self.args, dest):
            raise AttributeError('set_arg: there is no flag %r' % dest)
        setattr(self.args, dest, value)

    def barrier(self):
        """Wait for every distributed worker (nothing when training locally)."""
        if self.kvstore is not None:
            from .distributed import barrier     # 1.9.1 has only kv._barrier()
            barrier(self.kvstore)
