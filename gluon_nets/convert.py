"""Reference-named weights -> our models.

A family registers, next to its models, a function that builds the net for a model
name and says where each of our parameters comes from::

    @register_converter('menet')
    def _convert_menet(name, state_dict, **kwargs):
        net = get_model(name, **kwargs)
        mapping = {ours: theirs for ours, theirs in ...}   # our structural name -> ref key
        return ConversionPlan(net, mapping)

Our names are the structural ones that ``save_parameters`` writes
(``layer1.0.conv1.weight``). A mapping value is a reference key, or a
``(keys, fn)`` pair where ``fn(*arrays)`` makes our array from several reference
arrays (e.g. a reshape or a concatenation).

:func:`convert_state_dict` then checks the plan as a whole: every parameter of
ours is fed, every reference key is used (or explicitly ignored), every shape
fits. All problems are reported together, and a net is returned only when all
of it loaded. ``python -m gluon_nets.convert`` is the CLI.

Nothing in a checkpoint runs code: PyTorch files are read with
``torch.load(weights_only=True)`` (tensors, containers and plain values only); a
legacy checkpoint that pickles other objects is refused unless the caller trusts it
(``load_checkpoint(path, trust=True)``, ``--trust-checkpoint``), which warns naming it.
"""
import argparse
import os
import re
import sys
import warnings

import numpy as np

from .model_zoo import (ConversionError, ConversionPlan, get_model_info, parse_model_kwargs,
                        pretrained_path, read_mxnet_params, register_converter)
from .utils.atomic import save_params_atomic
from .utils.errors import mxnet_error_line

__all__ = ['convert_state_dict', 'register_converter', 'ConversionPlan', 'ConversionError',
           'load_checkpoint', 'normalise_state_dict', 'save_params_atomic', 'main']

_BN_RE = re.compile(r'(running|moving)_(mean|var)$')


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, 'asnumpy'):            # mx.nd.NDArray
        return value.asnumpy()
    if hasattr(value, 'detach'):             # torch.Tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def normalise_state_dict(state_dict):
    """Unwrap ``{'state_dict': ...}``, drop ``module.`` (DataParallel) prefixes and
    ``num_batches_tracked`` counters, turn torch/mxnet tensors into numpy arrays."""
    if isinstance(state_dict, dict) and 'state_dict' in state_dict \
            and isinstance(state_dict['state_dict'], dict):
        state_dict = state_dict['state_dict']
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            continue
        if key.endswith('num_batches_tracked'):
            continue
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key in out:
            raise ConversionError('checkpoint holds %r twice (with and without "module.")' % key)
        out[key] = _to_numpy(value)
    return out


def convert_state_dict(name, state_dict, ctx=None, grad_req=None, **kwargs):
    """Build model ``name`` (with ``kwargs``) and load reference-named arrays into it.

    Parameters
    ----------
    name : str
        Registered model name.
    state_dict : dict
        Reference parameter name -> array (numpy, torch tensor or NDArray); the
        ``{'state_dict': ...}`` wrapper and ``module.`` prefixes are accepted.
    ctx : mx.Context, optional
        Where the parameters are placed (default CPU).
    grad_req : str, optional
        ``'null'`` for inference only: no gradient buffers are allocated, which halves
        the memory of very wide nets (e.g. the LW-DNA search nets).
    **kwargs
        Model kwargs (``alpha``, ``classes``, ...), as for ``get_model``.

    Returns
    -------
    An initialised HybridBlock whose every parameter comes from ``state_dict``.

    Raises
    ------
    ConversionError listing every missing key, unexpected key and shape mismatch.
    """
    import mxnet as mx
    info = get_model_info(name)
    converter = info.converter
    if converter is None:
        raise ConversionError('no converter is registered for family %r (model %s)'
                              % (info.family, info.name))
    state_dict = normalise_state_dict(state_dict)
    plan = converter(info.name, state_dict, **kwargs)
    ours = plan.net._collect_params_with_prefix()

    problems, used, arrays = [], set(), {}
    for our_name, param in ours.items():
        source = plan.mapping.get(our_name)
        if source is None:
            problems.append('missing: nothing in the checkpoint feeds %s' % our_name)
            continue
        keys, fn = (source if isinstance(source, tuple) else ((source,), None))
        absent = [k for k in keys if k not in state_dict]
        if absent:
            problems.append('missing: checkpoint key %s (for %s)' % (', '.join(absent), our_name))
            continue
        used.update(keys)
        value = fn(*[state_dict[k] for k in keys]) if fn else state_dict[keys[0]]
        value = np.asarray(value)
        expected = param.shape
        if expected is not None and (len(expected) != value.ndim or any(
                e not in (0, v) for e, v in zip(expected, value.shape))):
            problems.append('shape mismatch: %s is %s in the checkpoint, %s expects %s'
                            % ('+'.join(keys), tuple(value.shape), our_name, tuple(expected)))
            continue
        arrays[our_name] = value
    unknown = [k for k in plan.mapping if k not in ours]
    if unknown:
        problems.append('converter bug: mapping names parameters the net lacks: %s'
                        % ', '.join(sorted(unknown)[:10]))
    unexpected = sorted(set(state_dict) - used - set(plan.ignored))
    problems.extend('unexpected: checkpoint key %s is not used by %s' % (k, info.name)
                    for k in unexpected)
    if problems:
        raise ConversionError(_problem_report(info, problems, len(ours), len(state_dict),
                                              len(used)))

    ctx = ctx or mx.cpu()
    if grad_req is not None:
        plan.net.collect_params().setattr('grad_req', grad_req)
    for our_name, param in ours.items():
        value = arrays[our_name]
        param._load_init(mx.nd.array(value, dtype=param.dtype or 'float32'), ctx)
    return plan.net


#: problems listed one per line up to this many; beyond, a summary per kind
_LISTED_PROBLEMS = 12


def _problem_report(info, problems, num_ours, num_theirs, num_used):
    """The ConversionError text: every problem when there are few, else a count per
    kind with the first few, and a hint when the checkpoint is another model's."""
    head = '%d problem(s) converting weights for %s' % (len(problems), info.name)
    if len(problems) <= _LISTED_PROBLEMS:
        return '%s:\n  %s' % (head, '\n  '.join(problems))
    kinds = {}
    for problem in problems:
        kind, _, detail = problem.partition(': ')
        key = re.match(r'(?:checkpoint key |nothing in the checkpoint feeds )(\S+)', detail)
        kinds.setdefault(kind, []).append(key.group(1) if key else detail)
    parts = ['%d %s (%s, ...)' % (len(items), kind, ', '.join(items[:3]))
             for kind, items in kinds.items()]
    if num_used < num_ours / 2:
        parts.append('only %d of the %d checkpoint keys match the %d parameters: the '
                     'checkpoint looks like another model or family, check --model'
                     % (num_used, num_theirs, num_ours))
    return '%s: %s' % (head, '; '.join(parts))


def _is_weights_only_refusal(err):
    """True when ``torch.load(weights_only=True)`` refused a readable pickle because
    it imports something other than tensors and plain values (torch names the global
    it blocked), not because the file is corrupt ("Unsupported operand")."""
    return re.search(r'unsupported global|GLOBAL \S+|unsupported class', str(err),
                     re.IGNORECASE) is not None


def _torch_reason(err):
    """The informative line of a ``torch.load`` error (its text is paragraphs of advice)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if 'WeightsUnpickler error' in line:
            detail = line.partition('WeightsUnpickler error')[2].strip(' :')
            detail = detail or (lines[i + 1] if i + 1 < len(lines) else '')
            return 'not a PyTorch checkpoint, or a corrupt one (%s)' % (detail or 'unreadable')
    return lines[0] if lines else type(err).__name__


_SYMBOL_PARAMS = re.compile(r'^(?P<prefix>.+)-(?P<epoch>\d{4})\.params$')


def read_symbol_archive(path):
    """The MXNet Symbol checkpoint inside a ``.tar`` archive (OctConv's ablation files
    hold what the reference's ``score.py`` loads with ``mx.model.load_checkpoint``:
    ``<prefix>-symbol.json`` and ``<prefix>-NNNN.params``) -> {``arg:``/``aux:`` name:
    numpy array}; None when the archive holds no ``-NNNN.params`` member.

    Nothing is extracted: member bytes are read in memory (``mx.nd.load_frombuffer``,
    ``json.loads``), so member names cannot write anywhere (no path traversal) and
    nothing is unpickled. Only regular-file members are read (links, devices are
    ignored). With several epochs the highest is taken (a warning names it); the graph,
    when present, must declare no parameter the .params lacks (ConversionError)."""
    import json
    import tarfile

    import mxnet as mx
    try:
        archive = tarfile.open(path, 'r:*')
    except (tarfile.TarError, OSError) as err:
        raise ConversionError('cannot read %s as a tar archive: %s' % (path, err)) from None
    with archive:
        files = {}
        try:
            for member in archive.getmembers():
                if member.isfile():
                    files[member.name] = member
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ConversionError('%s is a damaged tar archive: %s' % (path, err)) from None
        params = sorted((m.group('prefix'), int(m.group('epoch')), name)
                        for name, m in ((n, _SYMBOL_PARAMS.match(n)) for n in files) if m)
        if not params:
            return None
        prefix, epoch, member_name = max(params, key=lambda p: (p[1], p[0]))
        if len(params) > 1:
            warnings.warn('%s holds %d .params members; converting %s (the highest epoch)'
                          % (path, len(params), member_name), stacklevel=2)

        def read(name):
            try:
                return archive.extractfile(files[name]).read()
            except (tarfile.TarError, OSError, EOFError) as err:
                raise ConversionError('%s: cannot read member %s: %s' % (path, name, err)) from None
        try:
            loaded = mx.nd.load_frombuffer(read(member_name))
        except mx.base.MXNetError as err:
            raise ConversionError('%s: member %s is not an MXNet .params file (%s)' % (
                path, member_name, mxnet_error_line(err))) from None
        if not isinstance(loaded, dict) or not any(
                k.startswith(('arg:', 'aux:')) for k in loaded):
            raise ConversionError('%s: member %s has no arg:/aux: keys: not a Symbol checkpoint'
                                  % (path, member_name))
        state_dict = {k: v.asnumpy() for k, v in loaded.items()}
        symbol_name = prefix + '-symbol.json'
        if symbol_name in files:
            try:
                nodes = json.loads(read(symbol_name).decode('utf-8'))['nodes']
                declared = {n['name'] for n in nodes if n.get('op') == 'null'}
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
                raise ConversionError('%s: member %s is not an MXNet symbol file (%s)'
                                      % (path, symbol_name, err)) from None
            present = {k[4:] for k in state_dict}
            missing = sorted(declared - {'data', 'softmax_label'} - present)
            if missing:
                raise ConversionError('%s: %s declares %d parameter(s) that %s lacks: %s'
                                      % (path, symbol_name, len(missing), member_name,
                                         ', '.join(missing[:10])))
        return state_dict


def load_checkpoint(path, trust=False):
    """Read ``.pth``/``.pth.tar``/``.pt`` (torch extra) or MXNet ``.params`` into a
    {name: numpy array} dict. MXNet Symbol checkpoints keep their ``arg:``/``aux:``
    prefixes (a family converter may strip them).

    PyTorch files load with ``weights_only=True``, which runs no code from the file. A
    legacy checkpoint that needs full unpickling (it stores model objects) is refused
    with a :class:`ConversionError`, unless ``trust`` is True: then it is unpickled
    (which can run any code the file holds) after a warning naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError('checkpoint %s does not exist' % path)
    if path.endswith('.tar'):
        import tarfile
        # OctConv's ablation archives: an MXNet Symbol checkpoint in a tar (a PyTorch
        # .tar is a zip or a pickle, which tarfile does not take, or has no .params member)
        if tarfile.is_tarfile(path):
            state_dict = read_symbol_archive(path)
            if state_dict is not None:
                return state_dict
    if path.endswith(('.pth', '.pth.tar', '.pt', '.tar')):
        try:
            import torch
        except ImportError:
            raise ImportError('reading %s needs PyTorch: pip install "gluon_nets[torch]"'
                              % path) from None
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:  # corrupt file, wrong format, or objects beyond weights
            if not _is_weights_only_refusal(err):
                raise ConversionError('cannot read %s as a PyTorch checkpoint: %s'
                                      % (path, _torch_reason(err))) from None
            if not trust:
                raise ConversionError(
                    '%s is a legacy pickled checkpoint: loading it would run code stored in the '
                    'file; if you trust where it comes from, pass --trust-checkpoint '
                    '(load_checkpoint(path, trust=True))' % path) from None
            warnings.warn('unpickling trusted checkpoint %s with weights_only=False: it can run '
                          'any code it holds' % path, stacklevel=2)
            try:
                obj = torch.load(path, map_location='cpu', weights_only=False)
            except Exception as err2:
                raise ConversionError('cannot read %s as a PyTorch checkpoint: %s'
                                      % (path, _torch_reason(err2))) from None
        if hasattr(obj, 'state_dict') and not isinstance(obj, dict):
            obj = obj.state_dict()
        if not isinstance(obj, dict):
            raise ConversionError('%s holds a %s, not a state dict of named tensors'
                                  % (path, type(obj).__name__))
        return obj
    try:
        return read_mxnet_params(path)
    except ConversionError as err:
        # model_zoo keeps the first line of MXNet's error, the C++ traceback's header
        cause = err.__context__
        if cause is None:
            raise
        raise ConversionError('cannot read %s as an MXNet .params file (nor is it named '
                              '.pth/.pt): %s' % (path, mxnet_error_line(cause))) from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m gluon_nets.convert',
        description='Convert the authors\' checkpoint of a zoo model into our .params.')
    parser.add_argument('--model', required=True, help='registered model name')
    parser.add_argument('--alpha', type=float, default=None, help='OctConv ratio')
    parser.add_argument('--classes', type=int, default=None)
    parser.add_argument('--model-kwargs', default='{}', help='JSON dict of model kwargs')
    parser.add_argument('--checkpoint', required=True,
                        help='.pth/.pth.tar/.pt, MXNet .params, or a .tar holding an MXNet '
                             'Symbol checkpoint (OctConv\'s ablation archives)')
    parser.add_argument('--out', default=None,
                        help='output .params (default: where get_model(pretrained=True) looks)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='unpickle a legacy checkpoint that weights_only loading refuses '
                             '(it can run code stored in the file: only for files you trust)')
    parser.add_argument('--debug', action='store_true', help='show the traceback of an error')
    args = parser.parse_args(argv)
    try:
        return _convert(args)
    except (ValueError, OSError, ImportError, RuntimeError) as err:
        # ConversionError and OutputPathError are ValueErrors; MXNetError is a
        # RuntimeError carrying a C++ stack trace
        if args.debug:
            raise
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            from .utils.paths import write_error_line
            text = write_error_line(err)
        elif isinstance(err, RuntimeError):
            text = mxnet_error_line(err)
        else:
            text = str(err)
        print('error: %s' % text, file=sys.stderr)
        return 2


def _convert(args):
    from .utils.paths import check_output_path
    kwargs = parse_model_kwargs(args.model_kwargs, '--model-kwargs', args.alpha)
    if args.classes is not None:
        kwargs['classes'] = args.classes
    info = get_model_info(args.model)
    if info.converter is None:
        raise ConversionError('no converter is registered for family %r (model %s): it has no '
                              'reference checkpoints to convert' % (info.family, info.name))
    out = check_output_path(args.out or pretrained_path(args.model, **kwargs), '--out')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        state_dict = load_checkpoint(args.checkpoint, trust=args.trust_checkpoint)
    for warning in caught:
        print('warning: %s' % warning.message, file=sys.stderr)
    net = convert_state_dict(args.model, state_dict, **kwargs)
    try:
        save_params_atomic(net, out)
    except RuntimeError as err:       # MXNet's writer: no errno, only its message
        from .utils.paths import is_short_write, short_write_line
        if is_short_write(err):
            raise ConversionError(short_write_line(out)) from None
        raise
    print('wrote %s' % out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
