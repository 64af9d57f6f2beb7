"""A run directory: atomic checkpoints, the best model, metrics CSV and curves PNG.

Layout of ``--save-dir``::

    args.json                 the full argument set (written at start; resume overrides
                              are recorded in its ``history``)
    model.json                how to rebuild the net: model_zoo.model_record (model, kwargs,
                              data_config, class_names) plus params/best_params and the data
    epoch-0007.params/.states the last complete epoch (params + trainer states)
    checkpoint.json           commit record: epoch, files, metrics so far, best, schedule position
    last.params               the same parameters as the last complete epoch (for eval.py)
    best.params / best.json   the best epoch by validation top-1
    metrics.csv, curves.png   one row / point per epoch
    <model>-<epoch>.params    GluonCV-named copies every --save-frequency epochs

The commit of an epoch, in order (each step atomic; ``GLUON_NETS_FAULT=<step>`` makes
the process ``os._exit`` right after that step, for the fault-injection tests):

    params   epoch-N.params written
    states   epoch-N.states written (trainer states: NDArrays + JSON, no pickle)
    commit   checkpoint.json replaced: from here on epoch N is the run's state
    last     last.params (and the --save-frequency copies) linked to epoch-N.params
    best     best.params linked (when epoch N is the best)
    best_json  best.json written
    metrics  metrics.csv rewritten from the record's rows
    curves   curves.png redrawn
    cleanup  epoch files the record does not name removed

A kill before ``commit`` leaves the previous checkpoint (the epoch is trained again on
``--resume``); a kill after it leaves steps that :meth:`RunDir.finish_commit` redoes
from ``checkpoint.json`` when the run is resumed.

Trainer states are written by :func:`save_trainer_states` as one ``mx.nd.save`` file:
the optimiser's state arrays plus a JSON structure record (state layout, update
counts) stored as a uint8 array. MXNet's own ``Trainer.save_states`` pickles the
updater, and unpickling runs code from the file: such legacy files load only with
``trust=True`` (``--trust-checkpoint``).
"""
import csv
import errno
import io
import json
import logging
import os
import re
import shutil
import struct

from ..utils.atomic import TEMP_PREFIX, atomic_path, save_params_atomic, write_json_atomic

__all__ = ['RunDir', 'METRIC_FIELDS', 'CheckpointError', 'FAULT_STEPS', 'check_save_dir',
           'run_files', 'clear_run', 'save_trainer_states', 'load_trainer_states',
           'load_params', 'states_file_kind', 'check_saved_args']

METRIC_FIELDS = ['epoch', 'train_loss', 'train_acc', 'val_loss', 'val_top1', 'val_top5', 'lr',
                 'epoch_time_s', 'train_img_per_s']
#: columns that measure the machine, not the computation (they differ between identical runs)
TIMING_FIELDS = ('epoch_time_s', 'train_img_per_s')

FAULT_STEPS = ('params', 'states', 'commit', 'last', 'best', 'best_json', 'metrics', 'curves',
               'cleanup')
FAULT_EXIT_STATUS = 86
STATES_FORMAT = 'gluon_nets.trainer_states/1'
_STRUCTURE_KEY = '__structure__'
_NDARRAY_MAGIC = struct.pack('<Q', 0x112)    # the first 8 bytes of every mx.nd.save file
_EPOCH_FILE = re.compile(r'^epoch-\d{4,}\.(params|states)$')
_PLAIN_RUN_FILE = re.compile(r'^[^/\\]+\.(params|states)$')   # a name inside the run dir
# what makes a directory "a run": any of these (or an epoch file)
_RUN_MARKERS = ('args.json', 'checkpoint.json', 'metrics.csv', 'last.params', 'best.params')
# what --overwrite removes: files a run (the trainer or a family plugin, which writes JSON
# and .params through its session) writes at the top level; subdirectories and other files
# (a user's own .csv, .png or .npy beside the run) stay
_RUN_SUFFIXES = ('.json', '.params', '.states', '.log')
_RUN_NAMES = re.compile(r'^(metrics\.csv|curves\.png|worker-\d+-labels\.npy)$')

logger = logging.getLogger('gluon_nets.train')


class CheckpointError(ValueError):
    """A checkpoint, parameter or states file (or the run directory) cannot be used;
    the message names the file."""


def _fault(step, epoch):
    """Die here when ``GLUON_NETS_FAULT`` names ``step`` (``step`` or ``step@epoch``):
    the fault-injection tests kill the trainer between the steps of a commit."""
    wanted = os.environ.get('GLUON_NETS_FAULT')
    if not wanted:
        return
    name, _, at = wanted.partition('@')
    if name == step and (not at or int(at) == epoch):
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(FAULT_EXIT_STATUS)


def _mxnet_message(err):
    """The informative line of an MXNet/Gluon error (no C++ stack, no parameter lists)."""
    lines = [l.strip() for l in str(err).splitlines() if l.strip()]
    useful = [l for l in lines if not l.startswith(('Traceback', 'File ', '[bt]', 'Stack trace',
                                                    '0x'))]
    text = (useful or lines or [type(err).__name__])[-1]
    text = text.split(', which contains parameters')[0]
    text = re.sub(r'^(MXNetError|Error|AssertionError):\s*', '', text)
    return text if len(text) <= 240 else text[:237] + '...'


# ------------------------------------------------------------------ the directory itself
def check_save_dir(path, flag='--save-dir'):
    """Raise :class:`CheckpointError` unless ``path`` is a directory this process can
    write, or can be created: not a file, not under a file, writable parent."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CheckpointError('%s %s is a file, not a directory' % (flag, path))
        if not os.access(path, os.W_OK | os.X_OK):
            raise CheckpointError('%s %s is not writable' % (flag, path))
        return
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CheckpointError('%s %s: %s is a file, not a directory' % (flag, path, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CheckpointError('%s %s cannot be created: %s is not writable' % (flag, path, parent))


def run_files(path):
    """The names in ``path`` that show it holds a run (sorted; empty if none)."""
    if not os.path.isdir(path):
        return []
    return sorted(n for n in os.listdir(path) if n in _RUN_MARKERS or _EPOCH_FILE.match(n))


def clear_run(path):
    """Remove the run in ``path`` (``--overwrite``): its top-level run files (JSON,
    params, states, logs, metrics.csv, curves.png, worker label ``.npy``) and
    temporaries; other files and subdirectories stay. Returns the removed names."""
    removed = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full) and (name.endswith(_RUN_SUFFIXES) or _RUN_NAMES.match(name)
                                     or name.startswith(TEMP_PREFIX)):
            os.remove(full)
            removed.append(name)
    return removed


def _flag_value_problem(action, value):
    """Why ``value`` (from JSON) cannot be the value of argparse ``action``, or None."""
    import argparse
    if value is None:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return None if isinstance(value, bool) else 'not true/false'
    if isinstance(action, argparse._AppendAction):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else 'not a list of strings'
    if action.nargs not in (None, '?'):
        return None if isinstance(value, list) else 'not a list'
    kind = action.type
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int or getattr(kind, '__name__', '') == '_positive_int':
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is None or kind is str:
        ok = isinstance(value, str)
    elif getattr(kind, '__name__', '') == '_json_dict':
        ok = isinstance(value, dict)
    elif getattr(kind, '__name__', '') == '_float_list':
        ok = isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)
    else:                  # a family option's own type: the family checks its value
        return None
    if not ok:
        return 'a JSON %s' % type(value).__name__.replace('NoneType', 'null')
    if action.choices is not None and value not in action.choices:
        return 'not one of %s' % ', '.join(map(str, action.choices))
    return None


def check_saved_args(stored, parser, path):
    """Raise :class:`CheckpointError` naming ``path`` (a run's ``args.json``) and the
    flag when a saved value cannot be that flag's value (a hand-edited or foreign file):
    ``{"batch_size": "x"}`` must not become a crash deep in the run."""
    for action in parser._actions:
        if action.dest in stored and action.option_strings:
            why = _flag_value_problem(action, stored[action.dest])
            if why:
                raise CheckpointError('%s is corrupt: %s (%s) is %r, %s' % (
                    path, action.dest, action.option_strings[-1] if action.dest != 'num_workers'
                    else '-j', stored[action.dest], why))


# -------------------------------------------------------------------- parameter files
def load_params(net, path, ctx, what):
    """``net.load_parameters(path)`` with one-line :class:`CheckpointError` s naming
    ``what`` (e.g. ``'--resume-params'``) and the file: missing, truncated or not an
    MXNet parameter file, or parameters of another model."""
    import mxnet as mx
    if not os.path.isfile(path):
        raise CheckpointError('%s %s: no such file' % (what, path))
    try:
        arrays = mx.nd.load(path)
    except mx.base.MXNetError:
        raise CheckpointError('%s %s is truncated or not an MXNet parameter file'
                              % (what, path)) from None
    if not isinstance(arrays, dict) or not arrays:
        raise CheckpointError('%s %s holds no named parameters' % (what, path))
    try:
        net.load_parameters(path, ctx=ctx)
    except (AssertionError, ValueError, RuntimeError, KeyError, mx.base.MXNetError) as err:
        raise CheckpointError('%s %s does not fit this model: %s'
                              % (what, path, _mxnet_message(err))) from None


# ----------------------------------------------------------------------- trainer states
def _updaters(trainer):
    """The trainer's updaters (they hold the states), after its lazy set-up."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    if trainer._update_on_kvstore:
        updater = getattr(trainer._kvstore, '_updater', None)
        if updater is None:
            raise CheckpointError('the trainer updates on the kvstore servers: its states '
                                  'are not in this process')
        return [updater]
    return trainer._updaters


def _flatten(state, key, arrays):
    """A JSON layout of one parameter's state; its NDArrays go to ``arrays``."""
    import mxnet as mx
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        arrays[key] = state.as_in_context(mx.cpu())
        return {'array': key}
    if isinstance(state, (tuple, list)):
        kind = 'tuple' if isinstance(state, tuple) else 'list'
        return {kind: [_flatten(s, '%s.%d' % (key, i), arrays) for i, s in enumerate(state)]}
    if isinstance(state, (bool, int, float)):
        return {'value': state}
    raise TypeError('cannot save an optimiser state of type %s' % type(state).__name__)


def _unflatten(layout, arrays, path):
    if layout is None:
        return None
    if not isinstance(layout, dict) or len(layout) != 1:
        raise CheckpointError('%s: bad state layout %r' % (path, layout))
    (kind, value), = layout.items()
    if kind == 'array':
        if value not in arrays:
            raise CheckpointError('%s: state array %s is missing' % (path, value))
        return arrays[value].copy()
    if kind in ('tuple', 'list'):
        items = [_unflatten(v, arrays, path) for v in value]
        return tuple(items) if kind == 'tuple' else items
    if kind == 'value':
        return value
    raise CheckpointError('%s: bad state layout %r' % (path, layout))


def _arrays_of(state):
    import mxnet as mx
    if isinstance(state, mx.nd.NDArray):
        return [state]
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _arrays_of(s)]
    return []


def _index(key):
    return int(key) if re.match(r'^-?\d+$', key) else key


def _structural_names(trainer, net):
    """The structural name (``features.0.weight``) of each of ``trainer``'s parameters,
    in its index order, or None without ``net``.

    Why: ``gluon.Trainer`` orders a ParameterDict by its keys, Gluon's auto-generated
    names (``conv9_bias``), which depend on how many blocks the process built before
    this net; the structural names do not, so a states file is matched by them."""
    if net is None:
        return None
    by_id = {id(param): name for name, param in net._collect_params_with_prefix().items()}
    names = [by_id.get(id(param)) for param in trainer._params]
    return names if None not in names else None


def _index_remap(saved_names, names, what, path):
    """index in the file -> index in this trainer, by structural parameter name."""
    if not saved_names or names is None:
        return lambda index: index
    if not isinstance(saved_names, list) or sorted(map(str, saved_names)) != sorted(names):
        missing = sorted(set(names) - set(map(str, saved_names)))
        raise CheckpointError('%s %s does not fit this model: its parameters differ (%s)' % (
            what, path, 'missing %s' % missing[0] if missing else 'other names'))
    position = {name: index for index, name in enumerate(names)}
    return lambda index: position[saved_names[index]] \
        if isinstance(index, int) and 0 <= index < len(saved_names) else index


def save_trainer_states(trainer, path, net=None):
    """Write ``trainer``'s optimiser states to ``path`` without pickle (atomically).

    One ``mx.nd.save`` file: every state array (momentum buffers; for multi-precision
    also the float32 master weights) under ``s<param index>[.<i>]``, and a JSON record
    (format, optimiser class, ``num_update``, per-device per-parameter update counts,
    the state layout and, given the ``net``, each index's structural parameter name) as
    a uint8 array under ``__structure__``. The learning-rate schedule is a function of
    ``num_update``: the trainer rebuilds it from the flags."""
    import mxnet as mx
    import numpy as np
    updater = _updaters(trainer)[0]
    optimizer = updater.optimizer
    arrays = {}
    layout = {str(index): _flatten(state, 's%s' % index, arrays)
              for index, state in sorted(updater.states.items(), key=lambda kv: str(kv[0]))}
    structure = {
        'format': STATES_FORMAT,
        'optimizer': type(optimizer).__name__.lower(),
        'num_update': int(optimizer.num_update),
        'begin_num_update': int(optimizer.begin_num_update),
        'index_update_counts': {str(device): {str(i): int(c) for i, c in counts.items()}
                                for device, counts in optimizer._all_index_update_counts.items()},
        'states': layout,
    }
    names = _structural_names(trainer, net)
    if names is not None:
        structure['param_names'] = names
    blob = np.frombuffer(json.dumps(structure, sort_keys=True).encode('utf-8'), dtype=np.uint8)
    arrays[_STRUCTURE_KEY] = mx.nd.array(blob, dtype='uint8')
    with atomic_path(path, suffix='.states') as tmp:
        mx.nd.save(tmp, arrays)


def states_file_kind(path, what='states'):
    """``'ndarray'`` (our format), ``'pickle'`` (MXNet's ``Trainer.save_states``) or
    :class:`CheckpointError` naming ``what`` and the file (missing, empty, other)."""
    if not os.path.isfile(path):
        raise CheckpointError('%s %s: no such file' % (what, path))
    with open(path, 'rb') as f:
        head = f.read(8)
    if head == _NDARRAY_MAGIC:
        return 'ndarray'
    if head[:1] == b'\x80':    # the PROTO opcode every pickle of protocol >= 2 starts with
        return 'pickle'
    raise CheckpointError('%s %s is %s, not a trainer-states file'
                          % (what, path, 'empty' if not head else 'truncated or of another format'))


def load_trainer_states(trainer, path, trust=False, what='states', net=None):
    """Load states written by :func:`save_trainer_states` into ``trainer`` (every
    device's updater; the optimiser keeps its own schedule and hyper-parameters).
    Given the ``net``, a file that records structural parameter names is matched by
    them (older files: by index).

    A pickled file (MXNet's format) is refused with :class:`CheckpointError` unless
    ``trust`` (then a warning names it and MXNet's ``load_states`` unpickles it)."""
    import mxnet as mx
    kind = states_file_kind(path, what)
    if kind == 'pickle':
        if not trust:
            raise CheckpointError(
                '%s %s is a pickled trainer-states file (MXNet\'s Trainer.save_states); '
                'loading it can run code from the file. Give --trust-checkpoint only for a '
                'file you made yourself' % (what, path))
        logger.warning('--trust-checkpoint: unpickling %s (this runs code from the file)', path)
        try:
            trainer.load_states(path)
        except Exception as err:
            raise CheckpointError('%s %s: cannot load these pickled states: %s'
                                  % (what, path, _mxnet_message(err))) from None
        return
    try:
        arrays = mx.nd.load(path)
        structure = json.loads(bytes(arrays.pop(_STRUCTURE_KEY).asnumpy()).decode('utf-8'))
    except (mx.base.MXNetError, KeyError, AttributeError, ValueError, UnicodeDecodeError):
        raise CheckpointError('%s %s is truncated or not a trainer-states file'
                              % (what, path)) from None
    if not isinstance(structure, dict) or structure.get('format') != STATES_FORMAT:
        raise CheckpointError('%s %s: unknown states format %r' % (
            what, path, structure.get('format') if isinstance(structure, dict) else None))
    updaters = _updaters(trainer)
    optimizer = updaters[0].optimizer
    name = type(optimizer).__name__.lower()
    if structure['optimizer'] != name:
        raise CheckpointError('%s %s holds %s states; this run uses %s'
                              % (what, path, structure['optimizer'], name))
    remap = _index_remap(structure.get('param_names'), _structural_names(trainer, net),
                         what, path)
    structure['states'] = {str(remap(_index(k))): v for k, v in structure['states'].items()}
    structure['index_update_counts'] = {
        device: {str(remap(_index(i))): c for i, c in per.items()}
        for device, per in structure['index_update_counts'].items()}
    states = {_index(k): _unflatten(v, arrays, path) for k, v in structure['states'].items()}
    params = trainer._params
    for index, state in states.items():
        if not isinstance(index, int) or not 0 <= index < len(params):
            raise CheckpointError('%s %s does not fit this model: it has states for parameter '
                                  '%s, the model has %d' % (what, path, index, len(params)))
        for array in _arrays_of(state):
            if array.shape != params[index].shape:
                raise CheckpointError(
                    '%s %s does not fit this model: parameter %s has shape %s, its state %s'
                    % (what, path, params[index].name, params[index].shape, array.shape))
    for updater in updaters:
        updater.states = {i: _unflatten(structure['states'][str(i)], arrays, path) for i in states}
        updater.states_synced = dict.fromkeys(updater.states, False)   # moved to each device
    counts = {int(device): {_index(i): int(c) for i, c in per.items()}
              for device, per in structure['index_update_counts'].items()}
    for updater in updaters:
        opt = updater.optimizer
        opt._all_index_update_counts = {d: dict(c) for d, c in counts.items()} or {0: {}}
        first = 0 if 0 in opt._all_index_update_counts else min(opt._all_index_update_counts)
        opt._index_update_count = opt._all_index_update_counts[first]
        opt.num_update = int(structure['num_update'])
        opt.begin_num_update = int(structure['begin_num_update'])


# --------------------------------------------------------------------- the run directory
class RunDir:
    """Reads and writes one run's directory (see the module doc)."""

    def __init__(self, path, model_name):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.model_name = model_name
        os.makedirs(self.path, exist_ok=True)

    def remove_stale_temps(self):
        """Delete half-written ``.tmp-*`` files a killed run left behind."""
        for name in os.listdir(self.path):
            if name.startswith(TEMP_PREFIX):
                try:
                    os.remove(self.file(name))
                except OSError:
                    pass

    def file(self, name):
        """The path of ``name`` inside the run directory."""
        return os.path.join(self.path, name)

    def write_json(self, name, obj):
        """Write ``obj`` as JSON to the run directory's ``name``, atomically."""
        write_json_atomic(self.file(name), obj)

    def read_json(self, name):
        """The JSON in the run directory's ``name``, or None if there is no such file;
        :class:`CheckpointError` naming the file when it is not JSON."""
        path = self.file(name)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise CheckpointError('%s is corrupt (%s)' % (path, err)) from None

    def save_params(self, net, name):
        """``net``'s parameters to the run directory's ``name``, atomically."""
        path = self.file(name)
        try:
            save_params_atomic(net, path)
        except OSError:
            raise
        except Exception as err:   # MXNet reports a failed write (e.g. a full disk) as MXNetError
            raise _write_error(path, err) from None

    def load(self):
        """The committed checkpoint record, or None if no epoch completed;
        :class:`CheckpointError` naming the file when it is corrupt."""
        path = self.file('checkpoint.json')
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                record = json.load(f)
        except (ValueError, UnicodeDecodeError) as err:
            raise CheckpointError('%s is corrupt (%s); remove it to restart the run'
                                  % (path, err)) from None
        if not isinstance(record, dict) or not isinstance(record.get('epoch'), int) \
                or not isinstance(record.get('metrics'), list) or not record.get('params'):
            raise CheckpointError('%s is not a checkpoint record (no epoch/metrics/params)' % path)
        if not all(isinstance(row, dict) and isinstance(row.get('epoch'), int)
                   for row in record['metrics']) or not isinstance(
                       record.get('best_top1', 0.0), (int, float)):
            raise CheckpointError('%s is not a checkpoint record (bad metrics rows)' % path)
        if not isinstance(record.get('copies') or [], list):
            raise CheckpointError('%s is not a checkpoint record (bad copies)' % path)
        names = [record['params'], record.get('states')] + list(record.get('copies') or [])
        for name in names:
            # only files of this directory: a crafted record must not make --resume read or
            # (through the copies) overwrite files elsewhere
            if name is not None and not (isinstance(name, str) and _PLAIN_RUN_FILE.match(name)):
                raise CheckpointError('%s is not a checkpoint record: %r is not a run file name'
                                      % (path, name))
        if not _EPOCH_FILE.match(record['params']) or (
                record.get('states') and not _EPOCH_FILE.match(record['states'])):
            raise CheckpointError('%s is not a checkpoint record: params/states %r/%r are not '
                                  'epoch files' % (path, record['params'], record.get('states')))
        for key in ('params', 'states'):
            if record.get(key) and not os.path.isfile(self.file(record[key])):
                raise CheckpointError('%s names %s, which is missing' % (path, record[key]))
        return record

    def commit_epoch(self, epoch, net, trainer, record, keep_copy=False):
        """Write epoch ``epoch``'s files, commit ``record`` (it gets 'params', 'states'
        and 'copies' added; it must hold 'metrics', 'best_epoch', 'best_top1'), then
        finish the commit (see the module doc for the steps)."""
        stem = 'epoch-%04d' % epoch
        self.save_params(net, stem + '.params')
        _fault('params', epoch)
        record['states'] = None
        if trainer is not None:
            path = self.file(stem + '.states')
            try:
                save_trainer_states(trainer, path, net)
            except OSError:
                raise
            except CheckpointError:
                raise
            except Exception as err:
                raise _write_error(path, err) from None
            record['states'] = stem + '.states'
        _fault('states', epoch)
        record['params'] = stem + '.params'
        record['copies'] = ['%s-%d.params' % (self.model_name, epoch)] if keep_copy else []
        if keep_copy and trainer is not None:
            record['copies'].append('%s-%d.states' % (self.model_name, epoch))
        self.write_json('checkpoint.json', record)
        _fault('commit', epoch)
        self.finish_commit(record, fresh=True)

    def finish_commit(self, record, fresh=False):
        """The commit steps after ``checkpoint.json``, each skipped when already done:
        a resumed run calls it to repair what a kill between the steps left.
        Returns the names of the files it (re)wrote."""
        epoch, done = record['epoch'], []
        params = record['params']
        if not self._same_file(params, 'last.params'):
            self._link(params, 'last.params')
            done.append('last.params')
        for copy in record.get('copies') or []:
            source = record['states'] if copy.endswith('.states') else params
            if source and not self._same_file(source, copy):
                self._link(source, copy)
                done.append(copy)
        _fault('last', epoch)
        best_epoch = record.get('best_epoch')
        if best_epoch == epoch:
            best = self._read_best()
            if fresh or best is None or best.get('epoch') != epoch \
                    or not self._same_file(params, 'best.params'):
                self._link(params, 'best.params')
                _fault('best', epoch)
                self.write_json('best.json', {'epoch': epoch, 'val_top1': record['best_top1'],
                                              'params': 'best.params'})
                done.append('best.params')
        else:
            _fault('best', epoch)
        _fault('best_json', epoch)
        text = _metrics_text(record['metrics'])
        if fresh or self._read_text('metrics.csv') != text:
            self._write_text('metrics.csv', text)
            done.append('metrics.csv')
        _fault('metrics', epoch)
        if fresh or done or not os.path.isfile(self.file('curves.png')):
            self._draw(record['metrics'])
        _fault('curves', epoch)
        keep = {params, record.get('states')}
        for name in os.listdir(self.path):
            if _EPOCH_FILE.match(name) and name not in keep:
                os.remove(self.file(name))
        _fault('cleanup', epoch)
        return [] if fresh else done

    def _read_best(self):
        try:
            best = self.read_json('best.json')
        except CheckpointError:
            return None
        return best if isinstance(best, dict) else None

    def _same_file(self, a, b):
        """True when run files ``a`` and ``b`` exist and hold the same bytes."""
        pa, pb = self.file(a), self.file(b)
        if not (os.path.isfile(pa) and os.path.isfile(pb)):
            return False
        if os.path.samefile(pa, pb):
            return True
        if os.path.getsize(pa) != os.path.getsize(pb):
            return False
        with open(pa, 'rb') as fa, open(pb, 'rb') as fb:
            return fa.read() == fb.read()

    def _read_text(self, name):
        try:
            with open(self.file(name), newline='') as f:
                return f.read()
        except (OSError, UnicodeDecodeError):
            return None

    def _write_text(self, name, text):
        with atomic_path(self.file(name)) as tmp:
            with open(tmp, 'w', newline='') as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())

    def _link(self, src, dst):
        """``dst`` becomes the same file as ``src`` (hard link; a copy where links fail), atomically."""
        with atomic_path(self.file(dst)) as tmp:
            os.remove(tmp)
            try:
                os.link(self.file(src), tmp)
            except OSError:
                shutil.copyfile(self.file(src), tmp)

    def write_metrics(self, rows):
        """Rewrite metrics.csv and curves.png from all rows so far (no gaps, no duplicates)."""
        self._write_text('metrics.csv', _metrics_text(rows))
        self._draw(rows)

    def _draw(self, rows):
        try:
            self._plot(rows)
        except OSError:
            raise
        except Exception as err:  # a plotting problem must not stop training
            logger.warning('could not draw curves.png: %s', err)

    def _plot(self, rows):
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        epochs = [r['epoch'] for r in rows]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        ax_loss.plot(epochs, [r['train_loss'] for r in rows], 'o-', label='train')
        ax_loss.plot(epochs, [r['val_loss'] for r in rows], 's-', label='val')
        ax_loss.set_xlabel('epoch')
        ax_loss.set_ylabel('cross-entropy loss')
        ax_loss.legend()
        ax_acc.plot(epochs, [r['train_acc'] for r in rows], 'o-', label='train acc')
        ax_acc.plot(epochs, [r['val_top1'] for r in rows], 's-', label='val top-1')
        ax_acc.plot(epochs, [r['val_top5'] for r in rows], '^-', label='val top-5')
        ax_acc.set_xlabel('epoch')
        ax_acc.set_ylabel('accuracy')
        ax_acc.legend()
        fig.suptitle(self.model_name)
        fig.tight_layout()
        try:
            with atomic_path(self.file('curves.png')) as tmp:
                fig.savefig(tmp, format='png', dpi=80)
        finally:
            plt.close(fig)


def _metrics_text(rows):
    """metrics.csv's exact text for ``rows``."""
    out = io.StringIO(newline='')
    writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in METRIC_FIELDS})
    return out.getvalue()


def _write_error(path, err):
    """An ``OSError`` for a write MXNet failed: ENOSPC when the disk is full."""
    try:
        full = shutil.disk_usage(os.path.dirname(path)).free < 1 << 20
    except OSError:
        full = False
    code = errno.ENOSPC if full else errno.EIO
    return OSError(code, '%s (%s)' % (os.strerror(code), _mxnet_message(err)), path)
