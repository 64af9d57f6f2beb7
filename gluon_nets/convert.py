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
"""
import argparse
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from .model_zoo import (ConversionError, ConversionPlan, get_model_info, parse_model_kwargs,
                        pretrained_path, read_mxnet_params, register_converter)
from .utils.atomic import save_params_atomic

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
        raise ConversionError('%d problem(s) converting weights for %s:\n  %s'
                              % (len(problems), info.name, '\n  '.join(problems)))

    ctx = ctx or mx.cpu()
    if grad_req is not None:
        plan.net.collect_params().setattr('grad_req', grad_req)
    for our_name, param in ours.items():
        value = arrays[our_name]
        param._load_init(mx.nd.array(value, dtype=param.dtype or 'float32'), ctx)
    return plan.net


def load_checkpoint(path):
    """Read ``.pth``/``.pth.tar``/``.pt`` (torch extra) or MXNet ``.params`` into a
    {name: numpy array} dict. MXNet Symbol checkpoints keep their ``arg:``/``aux:``
    prefixes (a family converter may strip them)."""
    if not os.path.isfile(path):
        raise FileNotFoundError('checkpoint %s does not exist' % path)
    if path.endswith(('.pth', '.pth.tar', '.pt', '.tar')):
        try:
            import torch
        except ImportError:
            raise ImportError('reading %s needs PyTorch: pip install "gluon_nets[torch]"'
                              % path) from None
        try:
            obj = torch.load(path, map_location='cpu', weights_only=False)
        except Exception as err:  # corrupt file, wrong format
            raise ConversionError('cannot read %s as a PyTorch checkpoint: %s' % (path, err)) from None
        if hasattr(obj, 'state_dict') and not isinstance(obj, dict):
            obj = obj.state_dict()
        return obj
    return read_mxnet_params(path)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m gluon_nets.convert',
        description='Convert the authors\' checkpoint of a zoo model into our .params.')
    parser.add_argument('--model', required=True, help='registered model name')
    parser.add_argument('--alpha', type=float, default=None, help='OctConv ratio')
    parser.add_argument('--classes', type=int, default=None)
    parser.add_argument('--model-kwargs', default='{}', help='JSON dict of model kwargs')
    parser.add_argument('--checkpoint', required=True, help='.pth/.pth.tar/.pt or MXNet .params')
    parser.add_argument('--out', default=None,
                        help='output .params (default: where get_model(pretrained=True) looks)')
    args = parser.parse_args(argv)
    try:
        kwargs = parse_model_kwargs(args.model_kwargs, '--model-kwargs', args.alpha)
        if args.classes is not None:
            kwargs['classes'] = args.classes
        get_model_info(args.model)
        state_dict = load_checkpoint(args.checkpoint)
        net = convert_state_dict(args.model, state_dict, **kwargs)
        out = args.out or pretrained_path(args.model, **kwargs)
        save_params_atomic(net, out)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    print('wrote %s' % out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
