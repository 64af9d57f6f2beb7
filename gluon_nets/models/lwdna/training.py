"""LW-DNA's hooks into the trainer (see model_zoo.TrainingPlugin).

Two flows, both ending with an ``lwdna_*`` net trained like any other:

* ``--model hh_resnetXX --lwdna-ratio R``: build the search-stage net, run
  :func:`.search.search` on the training batches once, keep its result in the run
  directory (``lwdna_search.params``, ``lwdna_config.json``) and train the searched
  ``lwdna_resnetXX`` with a cosine schedule (the reference's). A resumed run reuses
  the stored result; a run killed during the search searches again. Under a dist
  kvstore only rank 0 searches (on its data part) and sends the configuration to
  every worker through the kvstore (no shared filesystem needed), so all workers
  train one architecture; the trainer's initial broadcast then gives them rank 0's
  weights.
* ``--model lwdna_resnetXX --lwdna-config FILE``: copy the configuration into the run
  directory and train ``lwdna_resnetXX`` with it.
"""
import json
import os

import numpy as np

from ...model_zoo import ModelOption, TrainingPlugin

__all__ = ['LWDNATraining', 'CONFIG_FILE', 'SEARCH_PARAMS_FILE']

#: the searched (or given) width configuration, in the run directory
CONFIG_FILE = 'lwdna_config.json'
#: the searched net's weights, in the run directory
SEARCH_PARAMS_FILE = 'lwdna_search.params'
#: the RNG offset of the search (the trainer's own are -1 and the epochs)
_SEARCH_SEED_OFFSET = -2
#: kvstore keys for the configuration exchange: far above the trainer's parameter
#: indices (0, 1, ...), which use the same store afterwards
_CONFIG_SIZE_KEY, _CONFIG_BODY_KEY = 1 << 24, (1 << 24) + 1


def _barrier(kv):
    """Every worker reaches this point (MXNet 1.9.1 has only ``_barrier``)."""
    (getattr(kv, 'barrier', None) or kv._barrier)()


def _share_config(kv, config, is_chief):
    """Rank 0's ``config`` (JSON-serialisable) on every worker, through the kvstore:
    its length, then its UTF-8 bytes as float32 values (exact below 2**24). Every
    worker must call this once, at the same point."""
    import mxnet as mx
    payload = (np.frombuffer(json.dumps(config).encode('utf-8'), dtype=np.uint8)
               if is_chief else None)
    size = mx.nd.array([len(payload) if is_chief else 0], dtype='float32')
    kv.init(_CONFIG_SIZE_KEY, size)   # only rank 0's value is stored; init ends in a barrier
    kv.pull(_CONFIG_SIZE_KEY, out=size)
    length = int(size.asscalar())
    body = mx.nd.array(payload.astype(np.float32) if is_chief else np.zeros(length, np.float32))
    kv.init(_CONFIG_BODY_KEY, body)
    kv.pull(_CONFIG_BODY_KEY, out=body)
    text = body.asnumpy().astype(np.uint8).tobytes().decode('utf-8')
    _barrier(kv)   # every pull has landed before anyone goes on
    return json.loads(text)


def _is_search_net(info):
    return info.name.startswith('hh_')


def _is_searched_net(info):
    return info.name.startswith('lwdna_')


def _read_config_file(path, info):
    """The JSON configuration at ``path`` (``--lwdna-config``) as written, after checking
    it fits ``info``'s ResNet depth; one-line ValueError naming the file otherwise."""
    from .config import validate_config
    if os.path.isdir(path):
        raise ValueError('--lwdna-config %s is a directory, not a JSON file' % path)
    if not os.path.isfile(path):
        raise ValueError('--lwdna-config %s does not exist' % path)
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError('--lwdna-config %s is not valid JSON (%s)' % (path, err)) from None
    depth = int(info.canonical_name.rsplit('resnet', 1)[1])     # lwdna_resnet<depth>
    try:
        validate_config(config, depth)
    except ValueError as err:
        raise ValueError('--lwdna-config %s does not fit %s: %s'
                         % (path, info.canonical_name, err)) from None
    return config


class LWDNATraining(TrainingPlugin):
    """The LW-DNA flow: search an hh_* net, then train the searched lwdna_* net."""

    options = (
        ModelOption(('--width-mult',), dict(type=float, default=None,
                    help='width multiplier of the search-stage net (hh_* models)'),
                    kwarg='width_mult'),
        ModelOption(('--embedding-dim',), dict(type=int, default=None,
                    help='hypernetwork embedding size (hh_* models)'),
                    kwarg='embedding_dim'),
        ModelOption(('--lwdna-ratio',), dict(type=float, default=None,
                    help='hh_* models: run the LW-DNA search to this MACs ratio, then train '
                         'the searched lwdna_* net (cosine schedule)')),
        ModelOption(('--lwdna-config',), dict(default=None,
                    help='lwdna_* models: JSON file with the channel configuration to train')),
        ModelOption(('--lwdna-pad',), dict(type=int, default=None, metavar='N',
                    help='lwdna_* models (and hh_* with --lwdna-ratio): train with every width '
                         'zero-padded to a multiple of N (16: oneDNN\'s fast kernels; the '
                         'same training, exactly: padded entries get zero gradients); '
                         'checkpoints keep the unpadded layout')),
    )

    def check(self, args, info):
        """One-line ``ValueError`` for flag values this model cannot train with."""
        ratio, config = getattr(args, 'lwdna_ratio', None), getattr(args, 'lwdna_config', None)
        if ratio is not None and not 0 < ratio < 1:
            raise ValueError('--lwdna-ratio must be in (0, 1), got %g' % ratio)
        if ratio is not None and not _is_search_net(info):
            raise ValueError('--lwdna-ratio runs the LW-DNA search, which needs an hh_* model '
                             '(got %s)' % info.name)
        if ratio is not None and getattr(args, 'horovod', False):
            raise ValueError('--lwdna-ratio under --horovod is not supported (each worker would '
                             'search its own architecture): use --kvstore dist_sync, or search '
                             'first and train lwdna_* with --lwdna-config under --horovod')
        if config and not _is_searched_net(info):
            raise ValueError('--lwdna-config trains a searched configuration: use an lwdna_* '
                             'model (got %s)' % info.name)
        if config and not args.resume:
            _read_config_file(config, info)
        pad = getattr(args, 'lwdna_pad', None)
        if pad is not None and not 1 <= pad <= 1024:
            raise ValueError('--lwdna-pad must be a channel multiple in [1, 1024], got %d' % pad)
        if pad is not None and not (_is_searched_net(info) or ratio is not None):
            raise ValueError('--lwdna-pad pads an LW-DNA net\'s widths: use an lwdna_* model, '
                             'or an hh_* model with --lwdna-ratio (got %s)' % info.name)
        if pad is not None and getattr(args, 'pretrained_params', None):
            # the transfer loader matches shapes (a padded classifier would look like
            # another class count): --resume-params reads unpadded files fine
            raise ValueError('--lwdna-pad cannot start from --pretrained-params: train without '
                             '--lwdna-pad, or start from --resume-params')

    def build(self, session):
        """``(net, name, kwargs)`` for the two LW-DNA flows, None otherwise."""
        args = session.args
        if getattr(args, 'lwdna_config', None):
            built = self._given_config(session)
        elif getattr(args, 'lwdna_ratio', None) is not None:
            built = self._searched(session)
        else:
            built = None
        pad = getattr(args, 'lwdna_pad', None)
        if pad is None:
            return built
        net, name, kwargs = built or (session.make_net(), session.name, session.kwargs)
        return self._padded(session, net, pad), name, kwargs

    @staticmethod
    def _padded(session, net, multiple):
        """``net`` with its widths zero-padded to ``multiple`` (same function, same
        training: every padded entry gets an exactly zero gradient), saving and loading
        parameter files in ``net``'s layout. 1.47x faster training steps for the golden
        LW-DNA-50 (bench/lwdna_train_padding.py)."""
        from .padding import pad_widths
        padded = pad_widths(net, multiple=multiple, ctx=session.ctx, unpadded_files=True)
        if padded.config != net.config:
            session.log.info('LW-DNA: training with widths padded to multiples of %d '
                             '(checkpoints keep the unpadded layout)', multiple)
        return padded

    # ------------------------------------------------------------------------ flows
    def _given_config(self, session):
        config = session.read_json(CONFIG_FILE)
        if config is None:   # a new run: the run directory keeps its own copy
            config = _read_config_file(session.args.lwdna_config, session.info)
            session.write_json(CONFIG_FILE, config)
        kwargs = {'config': config}
        return session.make_net(session.name, kwargs), session.name, kwargs

    def _searched(self, session):
        kv, name = session.kvstore, self._searched_name(session.info)
        net, config = None, None
        if kv is None or session.is_chief:
            config = session.read_json(CONFIG_FILE)
            if config is None:
                net, name, kwargs = self._search(session)
                config = kwargs['config']
            else:   # searched before this (resumed) run started
                net = session.make_net(name, {'config': config})
                if not session.resumed and os.path.isfile(session.file(SEARCH_PARAMS_FILE)):
                    net.load_parameters(session.file(SEARCH_PARAMS_FILE), ctx=session.ctx)
        if kv is not None:   # one architecture for every worker: rank 0's
            config = _share_config(kv, config if session.is_chief else None, session.is_chief)
            if net is None:
                net = session.make_net(name, {'config': config})
            session.log.info('LW-DNA: worker %d trains the configuration rank 0 searched',
                             kv.rank)
        kwargs = {'config': config}
        if session.args.lr_mode != 'cosine':
            session.log.info('LW-DNA: the searched net trains with a cosine schedule '
                             '(--lr-mode %s ignored)', session.args.lr_mode)
            session.set_arg('lr_mode', 'cosine')
        return net, name, kwargs

    def _search(self, session):
        """Run the search on the training batches; store its config and weights."""
        from .search import search
        args = session.args
        hh_net = session.make_net(initialize=False)   # the search initialises it its way
        session.seed(_SEARCH_SEED_OFFSET)
        session.train_data.set_epoch(-1)
        device = session.ctx[0]

        def batches():
            for x, y in session.train_data:
                yield x.as_in_context(device), y.as_in_context(device)
        session.log.info('LW-DNA search on %s: target MACs ratio %g', session.name,
                         args.lwdna_ratio)
        try:
            net, report = search(hh_net, batches(), session.ctx,
                                 target_flops_ratio=args.lwdna_ratio, lr=args.lr,
                                 momentum=args.momentum, wd=args.wd,
                                 input_size=session.input_size, log=session.log.info)
        except (ValueError, FloatingPointError) as err:
            raise ValueError('LW-DNA search failed: %s' % err) from None
        session.save_params(net, SEARCH_PARAMS_FILE)
        session.write_json(CONFIG_FILE, report['config'])
        session.log.info('LW-DNA search done: %s',
                         {k: v for k, v in report.items() if k != 'config'})
        return net, report['model'], {'config': report['config']}

    @staticmethod
    def _searched_name(info):
        """hh_resnetXX -> lwdna_resnetXX (the net :func:`.search.shrink` returns)."""
        return 'lwdna_' + info.name[len('hh_'):]
