"""``python -m gluon_nets.summary [--family F | --model NAME] [--kwargs JSON] [--measure]``

Prints one row per model: name, family, params (M), MACs (G) at the registered input
size, and the reference source. By default the numbers are the registry's metadata;
``--measure`` recomputes them from the graph (count_params / count_macs) and shows
both, so a stale entry is visible.
"""
import argparse
import json
import sys

from .model_zoo import (ModelConstructionError, get_model, get_model_info, list_families,
                        list_models, parse_model_kwargs)
from .profile import count_macs, count_params

__all__ = ['summarize', 'main']


def measure(name, input_size=None, **kwargs):
    """(params, macs) of model ``name`` built with ``kwargs`` at ``input_size`` (default: registry's).

    Models whose graph depends on the input size (ScaleNet's resizes, ED-Net's
    output paddings) take it as an ``input_size`` kwarg: a Symbol trace cannot see it.
    """
    info = get_model_info(name)
    size = input_size or info.input_size
    net = None
    if size != info.input_size and 'input_size' not in kwargs:
        try:
            net = get_model(name, input_size=size, **kwargs)
        except ModelConstructionError:
            net = None            # the model has no input_size option: its graph does not need it
    if net is None:
        net = get_model(name, **kwargs)
    return count_params(net, (1, 3, size, size)), count_macs(net, (1, 3, size, size))


def _headline_defaults(info):
    """Default values of the options that change a model's numbers and that users pick
    per run (OctConv's ``alpha``), shown so that a row says what it measured."""
    import inspect
    defaults = {}
    parameters = inspect.signature(info.fn).parameters
    for option in _HEADLINE_OPTIONS:
        if option in info.default_kwargs:
            defaults[option] = info.default_kwargs[option]
        elif option in parameters and parameters[option].default is not inspect.Parameter.empty:
            defaults[option] = parameters[option].default
    return defaults


_HEADLINE_OPTIONS = ('alpha',)


def summarize(names, measure_graph=False, input_size=None, **kwargs):
    """Rows (dicts) for ``names``: name, family, params, macs, input_size, reference."""
    rows = []
    for name in names:
        info = get_model_info(name)
        row = dict(name=info.name, family=info.family, params=info.params, macs=info.macs,
                   input_size=input_size or info.input_size, reference=info.reference,
                   kwargs=dict(_headline_defaults(info), **kwargs))
        if measure_graph or kwargs or input_size or info.params is None:
            row['params'], row['macs'] = measure(name, input_size, **kwargs)
        rows.append(row)
    return rows


def _format(rows):
    header = ('model', 'family', 'params (M)', 'MACs (G)', 'input', 'kwargs', 'reference')
    table = [header] + [
        (r['name'], r['family'],
         '%.3f' % (r['params'] / 1e6) if r['params'] is not None else '?',
         '%.3f' % (r['macs'] / 1e9) if r['macs'] is not None else '?',
         str(r['input_size']),
         json.dumps(r['kwargs'], sort_keys=True) if r['kwargs'] else '',
         r['reference']) for r in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    lines = ['  '.join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m gluon_nets.summary',
                                     description='Params and MACs of zoo models.')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--family', help='one of: ' + ', '.join(list_families()))
    group.add_argument('--model', help='one registered model')
    parser.add_argument('--kwargs', default='{}', help='JSON model kwargs, e.g. {"alpha": 0.125}')
    parser.add_argument('--input-size', type=int, default=None)
    parser.add_argument('--measure', action='store_true',
                        help='recompute from the graph instead of the registry metadata')
    args = parser.parse_args(argv)
    try:
        kwargs = parse_model_kwargs(args.kwargs, '--kwargs')
        if args.model:
            names = [get_model_info(args.model).name]
        else:
            if args.family and args.family not in list_families():
                raise ValueError('unknown family %r; families: %s'
                                 % (args.family, ', '.join(list_families())))
            names = list_models(args.family)
        rows = summarize(names, args.measure, args.input_size, **kwargs)
    except ValueError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    print(_format(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
