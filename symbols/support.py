"""``python -m symbols.support``: which export formats work for which zoo model.

Tries symbol, fused, onnx and int8 for every registered model (random weights with
non-trivial BN statistics, ``--size`` px inputs) with all of :func:`symbols.export`'s
checks, and prints a Markdown table (``ok`` or the reason a format was refused).

    python -m symbols.support --size 64 --out docs/deploy_support.md
    python -m symbols.support --models menet108_8x1_g3,scalenet50 --size 224
"""
import argparse
import json
import os
import sys
import tempfile
import time

from .exporter import FORMATS


def _randomise(net, seed=0):
    import mxnet as mx
    import numpy as np
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        if name.endswith(('running_var', 'moving_var')):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif name.endswith(('running_mean', 'moving_mean', 'beta')):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
        elif name.endswith('gamma'):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.0, param.shape)))


def check_model(name, size, workdir, classes=10, num_calib=32):
    """{format: 'ok (detail)' or 'no: reason'} for one model."""
    import mxnet as mx
    import numpy as np
    import gluon_nets
    from .checks import ExportError
    from .exporter import export
    info = gluon_nets.get_model_info(name)
    size = max(size, info.min_input_size)
    mx.random.seed(0)
    net = gluon_nets.get_model(name, classes=classes)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net(mx.nd.zeros((1, 3, size, size)))
    _randomise(net)
    calib = np.random.RandomState(0).uniform(-2, 2, (num_calib, 3, size, size)).astype(np.float32)
    row = {'size': size}
    for fmt in FORMATS:
        start = time.time()
        try:
            out = export(net, workdir, name, format=fmt, input_size=size,
                         calib_data=calib, num_calib_examples=num_calib)
        except ExportError as err:
            row[fmt] = 'no: %s' % str(err).splitlines()[0]
            continue
        checks = out['checks']
        if fmt == 'fused':
            row[fmt] = 'ok (%.1e)' % checks['fused_max_rel_err']
        elif fmt == 'onnx':
            row[fmt] = 'ok (%.1e%s)' % (checks['onnxruntime_max_rel_err'],
                                         ', resize patched' if checks['onnx_patched_resize_nodes']
                                         else '')
        elif fmt == 'int8':
            row[fmt] = 'ok'
        else:
            row[fmt] = 'ok (bit-identical)'
        row[fmt + '_s'] = round(time.time() - start, 1)
        for path in out['files'].values():
            os.remove(path)
    return row


def table(rows):
    lines = ['| model | size | symbol | fused (max rel err) | onnx (max rel err vs MXNet) | int8 |',
             '|---|---|---|---|---|---|']
    for name, row in sorted(rows.items()):
        lines.append('| %s | %s | %s |' % (name, row.get('size', '-'), ' | '.join(
            row.get(f, '-') for f in FORMATS)))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m symbols.support', description=__doc__.splitlines()[0])
    parser.add_argument('--models', default=None, help='comma-separated (default: all registered)')
    parser.add_argument('--size', type=int, default=64,
                        help='input side (raised to a model\'s min_input_size)')
    parser.add_argument('--json', default=None, help='results file (resumed if it exists)')
    parser.add_argument('--out', default=None, help='write the Markdown table here')
    args = parser.parse_args(argv)
    from gluon_nets.utils.atomic import write_json_atomic, write_text_atomic
    from gluon_nets.utils.threads import set_threads
    set_threads()
    import gluon_nets
    names = args.models.split(',') if args.models else gluon_nets.list_models()
    rows = {}
    if args.json and os.path.isfile(args.json):
        with open(args.json) as f:
            rows = json.load(f)
    with tempfile.TemporaryDirectory(prefix='symbols-support-') as workdir:
        for name in names:
            if name in rows:
                continue
            try:
                rows[name] = check_model(name, args.size, workdir)
            except Exception as err:  # a model that does not even build: record, go on
                rows[name] = {f: 'no: %s: %s' % (type(err).__name__, str(err).splitlines()[0])
                              for f in FORMATS}
            print('%s: %s' % (name, {f: rows[name].get(f) for f in FORMATS}), flush=True)
            if args.json:
                write_json_atomic(args.json, rows)
    text = table({n: rows[n] for n in names})
    if args.out:
        write_text_atomic(args.out, text + '\n')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
