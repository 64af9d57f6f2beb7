"""``python -m gluon_nets.summary [--family F | --model NAME | --where NAME] [--kwargs JSON]
[--measure] [--regenerate] [--write-docs | --check-docs]``

* default: one row per model: name, family, params (M), MACs (G) at the registered input
  size, default alpha, reference source (the numbers come from ``model_numbers.json``;
  ``--measure`` recomputes them from the graph so a stale entry is visible);
* ``--where NAME``: the file and line that define a model (an alias: both lines);
* ``--regenerate``: measure every model and rewrite ``gluon_nets/model_numbers.json``
  (the one place the registry's params/MACs live; a test compares it with measurement);
* ``--write-docs`` / ``--check-docs``: rewrite / verify the generated model tables in
  ``README.md`` and ``docs/models.md`` (between ``<!-- BEGIN/END generated: ... -->``
  markers; a test fails when they are stale).
"""
import argparse
import json
import os
import sys

from .model_zoo import (NUMBERS_FILE, ModelConstructionError, get_model, get_model_info,
                        list_families, list_models, parse_model_kwargs)
from .profile import count_macs, count_params
from .utils.atomic import write_text_atomic

__all__ = ['summarize', 'measure', 'where', 'regenerate_numbers', 'render_docs',
           'stale_docs', 'write_docs', 'main']

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HEADLINE_OPTIONS = ('alpha',)


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


def summarize(names, measure_graph=False, input_size=None, **kwargs):
    """Rows (dicts) for ``names``: name, family, params, macs, input_size, kwargs, reference."""
    rows = []
    for name in names:
        info = get_model_info(name)
        row = dict(name=info.name, family=info.family, params=info.params, macs=info.macs,
                   input_size=input_size or info.input_size, reference=info.reference,
                   kwargs=dict(_headline_defaults(info), **kwargs), alias_of=info.alias_of,
                   source=info.source)
        if measure_graph or kwargs or input_size or info.params is None:
            row['params'], row['macs'] = measure(name, input_size, **kwargs)
        rows.append(row)
    return rows


def where(name):
    """Lines saying where model ``name`` is defined: ``file:line`` of its registration
    (and of its target's, for an alias)."""
    info = get_model_info(name)
    lines = ['%s  %s' % (info.name, info.source)]
    if info.alias_of:
        target = get_model_info(info.alias_of)
        lines[0] += '  (alias of %s)' % target.name
        lines.append('%s  %s' % (target.name, target.source))
    return lines


def regenerate_numbers(path=NUMBERS_FILE, names=None, progress=None):
    """Measure params and MACs (classes=1000, default kwargs, registered input size) of
    every non-alias model (or ``names``, merged into the existing file) and write them
    to ``path`` atomically. Returns the table."""
    table = {}
    if names is not None and os.path.isfile(path):
        with open(path) as f:
            table = json.load(f)
    for name in (names or list_models(include_aliases=False)):
        info = get_model_info(name)
        if info.alias_of:
            continue
        params, macs = measure(info.name)
        table[info.name] = dict(params=int(params), macs=int(macs), input_size=info.input_size)
        if progress:
            progress(info.name, params, macs)
    write_text_atomic(path, json.dumps(table, indent=1, sort_keys=True) + '\n')
    from . import model_zoo
    model_zoo._NUMBERS = None     # re-read on next use
    return table


# --------------------------------------------------------------------- generated docs
def _millions(value, scale, digits):
    return ('%.*f' % (digits, value / scale)) if value is not None else '?'


def _models_table():
    lines = ['| model | family | params (M) | MACs (G) | input | default alpha | defined in |',
             '|---|---|---|---|---|---|---|']
    for row in summarize(list_models()):
        alias = ' (alias of `%s`)' % row['alias_of'] if row['alias_of'] else ''
        alpha = row['kwargs'].get('alpha', '')
        lines.append('| `%s`%s | %s | %s | %s | %d | %s | `%s` |' % (
            row['name'], alias, row['family'], _millions(row['params'], 1e6, 3),
            _millions(row['macs'], 1e9, 3), row['input_size'], alpha,
            row['source'].split(':')[0]))
    return '\n'.join(lines)


def _families_table():
    from .model_zoo import get_family
    lines = ['| family | models | registry names | reference | page |', '|---|---|---|---|---|']
    for family in list_families():
        fam = get_family(family)
        names = list_models(family=family)
        page = 'docs/%s.md' % family
        link = '[%s](%s)' % (page, page) if os.path.isfile(os.path.join(REPO_ROOT, page)) else ''
        repo = fam.reference.split('@')[0] if fam.reference else ''
        lines.append('| %s | %d | %s | %s | %s |' % (
            family, len(names), ', '.join('`%s`' % n for n in names), repo, link))
    return '\n'.join(lines)


#: file -> {block name: renderer}; each block sits between BEGIN/END markers
_GENERATED = {
    'README.md': {'families': _families_table},
    'docs/models.md': {'models': _models_table},
}


def _markers(block):
    return ('<!-- BEGIN generated: %s (python -m gluon_nets.summary --write-docs) -->' % block,
            '<!-- END generated: %s -->' % block)


def _replace_block(text, block, body, path):
    begin, end = _markers(block)
    if begin not in text or end not in text:
        raise ValueError('%s has no %r block (markers %s ... %s)' % (path, block, begin, end))
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + '\n' + body + '\n' + end + tail


def render_docs(root=REPO_ROOT):
    """{path: new text} for every file with generated blocks, rendered from the registry."""
    out = {}
    for rel, blocks in _GENERATED.items():
        path = os.path.join(root, rel)
        with open(path) as f:
            text = f.read()
        for block, render in blocks.items():
            text = _replace_block(text, block, render(), rel)
        out[path] = text
    return out


def stale_docs(root=REPO_ROOT):
    """Paths whose generated blocks differ from what the registry renders now."""
    stale = []
    for path, text in render_docs(root).items():
        with open(path) as f:
            if f.read() != text:
                stale.append(path)
    return stale


def write_docs(root=REPO_ROOT):
    """Rewrite the generated blocks; returns the paths that changed."""
    changed = stale_docs(root)
    for path, text in render_docs(root).items():
        if path in changed:
            write_text_atomic(path, text)
    return changed


def _format(rows):
    header = ('model', 'family', 'params (M)', 'MACs (G)', 'input', 'kwargs', 'reference')
    table = [header] + [
        (r['name'] + (' -> %s' % r['alias_of'] if r.get('alias_of') else ''), r['family'],
         _millions(r['params'], 1e6, 3), _millions(r['macs'], 1e9, 3),
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
    group.add_argument('--family', help='one family (see --help of list_families())')
    group.add_argument('--model', help='one registered model')
    group.add_argument('--where', metavar='NAME', help='print the file:line defining NAME')
    group.add_argument('--regenerate', action='store_true',
                       help='measure every model and rewrite gluon_nets/model_numbers.json')
    group.add_argument('--write-docs', action='store_true',
                       help='rewrite the generated model tables in README.md and docs/models.md')
    group.add_argument('--check-docs', action='store_true',
                       help='exit 1 if the generated model tables are stale')
    parser.add_argument('--kwargs', default='{}', help='JSON model kwargs, e.g. {"alpha": 0.125}')
    parser.add_argument('--input-size', type=int, default=None)
    parser.add_argument('--measure', action='store_true',
                        help='recompute from the graph instead of the registry metadata')
    args = parser.parse_args(argv)
    try:
        if args.where:
            print('\n'.join(where(args.where)))
            return 0
        if args.regenerate:
            regenerate_numbers(progress=lambda n, p, m: print('%-28s %12d %14d' % (n, p, m),
                                                              flush=True))
            print('wrote %s' % NUMBERS_FILE)
            return 0
        if args.write_docs:
            changed = write_docs()
            print('\n'.join('wrote %s' % p for p in changed) or 'docs are up to date')
            return 0
        if args.check_docs:
            stale = stale_docs()
            for path in stale:
                print('stale: %s (run python -m gluon_nets.summary --write-docs)' % path)
            return 1 if stale else 0
        kwargs = parse_model_kwargs(args.kwargs, '--kwargs')
        if args.model:
            names = [get_model_info(args.model).name]
        else:
            if args.family and args.family not in list_families():
                raise ValueError('unknown family %r; families: %s'
                                 % (args.family, ', '.join(list_families())))
            names = list_models(family=args.family)
        rows = summarize(names, args.measure, args.input_size, **kwargs)
    except (ValueError, OSError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    print(_format(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
