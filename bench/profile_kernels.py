"""Which kernels make a model slow: oneDNN's verbose log, summed per kernel, side by side.

    python bench/profile_kernels.py --models oct_resnet50_v1b:alpha=0,oct_resnet50_v1b:alpha=0.125
    python bench/profile_kernels.py --models ed_resnet50,ed_resnet50:ed=False --batch 1 --top 15

Each model runs in its own child process at ``--threads`` threads with ``DNNL_VERBOSE=1``
(oneDNN prints one line per primitive executed, with its implementation and time),
as ``gluon_nets.inference.optimize`` builds it (``--no-optimize``: hybridized as built),
``--calls`` times after ``--warmup`` calls. Every executed primitive of the timed calls is
summed per (primitive, implementation) and per problem (the kernel with its shape), in
ms per call; the operators that oneDNN does not run (pooling of other layouts,
broadcast adds, concat, slices, ...) are in MXNet's profiler table of the same calls,
summed per operator. So the table names the slow kernels where the time goes; a row
``reorder`` is time spent converting between oneDNN's blocked layouts and the plain
layout MXNet's own operators need.

``name:key=value;...`` passes keyword arguments to ``get_model`` (numbers parsed);
``lwdna_resnet50:golden`` builds the LW-DNA-50 golden shrink config, ``gluoncv:NAME``
a GluonCV model. Weights are random
(speed does not depend on them).
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import format_table, set_threads  # noqa: E402  (before mxnet)

MARK = 'PROFILE-MARK'
# profiler rows that are API calls or waits, not operators
_NOT_OPERATORS = ('MX', 'WaitForVar', 'DeleteVariable', 'ResourceParallelRandomSetSeed')


def parse_spec(spec):
    """'name:k=v;k2=v2' -> (name, kwargs); values parsed as JSON where they parse."""
    if spec.startswith('gluoncv:'):
        return spec, {}
    name, _, rest = spec.partition(':')
    kwargs = {}
    if rest == 'golden':
        return name, 'golden'
    for item in filter(None, rest.split(';')):
        key, _, value = item.partition('=')
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return name, kwargs


def child(args):
    """Run one model; oneDNN's verbose lines go to stdout, between two marker lines."""
    set_threads(args.threads)
    import mxnet as mx
    from inference import _build            # the bench's own model builder
    from gluon_nets.inference import optimize
    name, kwargs = parse_spec(args.spec)
    net = _build(name, kwargs)
    if not args.no_optimize:
        net = optimize(net, (1, 3, args.size, args.size))
    x = mx.nd.random.uniform(-1, 1, (args.batch, 3, args.size, args.size))
    for _ in range(args.warmup):
        net(x).wait_to_read()
    import tempfile
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,   # (never dumped: no file left)
                           filename=os.path.join(tempfile.gettempdir(), 'profile_kernels.json'))
    sys.stdout.flush()
    os.write(1, ('%s start\n' % MARK).encode())
    mx.profiler.set_state('run')
    for _ in range(args.calls):
        net(x).wait_to_read()
    mx.nd.waitall()
    mx.profiler.set_state('stop')
    os.write(1, ('%s end\n' % MARK).encode())
    table = mx.profiler.dumps(reset=True, format='json')
    os.write(1, ('%s json %s\n' % (MARK, json.dumps(json.loads(table)))).encode())
    return 0


def run_one(spec, args):
    """{'dnnl': {(prim, impl): ms}, 'problems': {(prim, impl, problem): (ms, count)},
    'mxnet': {op: ms}} per call, from a child process."""
    # unbulked, so that the profiler times each operator, not each bulk of them
    env = dict(os.environ, DNNL_VERBOSE='1', MKLDNN_VERBOSE='1',
               MXNET_EXEC_BULK_EXEC_INFERENCE='0')
    cmd = [sys.executable, os.path.abspath(__file__), '--child', spec, '--threads',
           str(args.threads), '--batch', str(args.batch), '--size', str(args.size),
           '--calls', str(args.calls), '--warmup', str(args.warmup)] + \
        (['--no-optimize'] if args.no_optimize else [])
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                         text=True, check=True).stdout
    dnnl = collections.Counter()
    problems = collections.defaultdict(lambda: [0.0, 0])
    mxnet_ops = {}
    inside = False
    for line in out.splitlines():
        if line.startswith(MARK):
            word = line.split()[1]
            inside = word == 'start'
            if word == 'json':
                stats = json.loads(line.split(' ', 2)[2]).get('Time', {})
                for device in stats.values():
                    for op, row in device.items():
                        if op.startswith(_NOT_OPERATORS):
                            continue
                        mxnet_ops[op] = mxnet_ops.get(op, 0.0) + row['Total'] / args.calls
            continue
        if inside and line.startswith(('dnnl_verbose,exec', 'mkldnn_verbose,exec')):
            fields = line.split(',')
            prim, impl, ms = fields[3], fields[4], float(fields[-1])
            layouts = ' '.join('%s:%s' % p for p in
                               re.findall(r'(src|dst)_f32::blocked:(\w+)', fields[6]))
            dnnl[(prim, impl)] += ms / args.calls
            key = (prim, impl, fields[-2] + ' ' + layouts)
            problems[key][0] += ms / args.calls
            problems[key][1] += 1
    return {'dnnl': dnnl, 'problems': problems, 'mxnet': mxnet_ops}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default='oct_resnet50_v1b:alpha=0,oct_resnet50_v1b:alpha=0.125',
                        help="comma-separated 'name[:k=v;k=v]' specs")
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--batch', '--batch-size', dest='batch', type=int, default=1)
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224)
    parser.add_argument('--calls', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--top', type=int, default=12, help='problems listed per model')
    parser.add_argument('--no-optimize', action='store_true')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(argparse.Namespace(**dict(vars(args), spec=args.child)))
    specs = args.models.split(',')
    runs = {spec: run_one(spec, args) for spec in specs}
    print('### oneDNN time per call by primitive and implementation (ms; %d thread(s), '
          'batch %d, %d px, %s)\n' % (args.threads, args.batch, args.size,
                                      'hybridized' if args.no_optimize else 'optimized'))
    keys = sorted({k for r in runs.values() for k in r['dnnl']},
                  key=lambda k: -max(r['dnnl'].get(k, 0) for r in runs.values()))
    rows = [[p, i] + ['%.2f' % runs[s]['dnnl'].get((p, i), 0) for s in specs] for p, i in keys]
    rows.append(['total', ''] + ['%.2f' % sum(runs[s]['dnnl'].values()) for s in specs])
    print(format_table(['primitive', 'implementation'] + specs, rows))
    print('\n### MXNet operators (profiler, ms per call; oneDNN ops included)\n')
    ops = sorted({k for r in runs.values() for k in r['mxnet']},
                 key=lambda k: -max(r['mxnet'].get(k, 0) for r in runs.values()))
    rows = [[op] + ['%.2f' % runs[s]['mxnet'].get(op, 0) for s in specs] for op in ops]
    rows.append(['total'] + ['%.2f' % sum(runs[s]['mxnet'].values()) for s in specs])
    print(format_table(['operator'] + specs, rows))
    for spec in specs:
        probs = sorted(runs[spec]['problems'].items(), key=lambda kv: -kv[1][0])[:args.top]
        print('\n### %s: the %d costliest oneDNN problems (ms per call)\n' % (spec, args.top))
        print(format_table(['primitive', 'implementation', 'problem / layouts', 'ms', 'calls'],
                           [[p, i, d, '%.2f' % v[0], v[1] // args.calls]
                            for (p, i, d), v in probs]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
