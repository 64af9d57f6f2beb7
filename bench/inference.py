"""Inference speed of each family's headline model: hybridized fp32 vs
``gluon_nets.inference.optimize``, and the issue-17 speed targets, in one interleaved run.

    python bench/inference.py                       # every table, 1 and 2 threads
    python bench/inference.py --tables targets --threads 1 --batch 1,16 --rounds 5

Method: MXNet reads its thread count once, so each thread count runs in its own child
process (``--threads 1,2``). In a child every net of a table (all variants, the
resnet50_v1b baseline included) is built, hybridized with static alloc/shape, warmed
up twice, then timed in turns, ``--rounds`` times per batch size, so that the load of a
shared machine falls on all of them alike. At 1 thread the process CPU time per call is
reported (other jobs inflate it little), at more threads the wall time; each cell is the
median over rounds. Weights are random (Xavier): speed does not depend on them.

Tables: ``targets`` (resnet50_v1b, LW-DNA-50 golden shrink config, ScaleNet-50,
ED-ResNet-50 and ed=False, MENet-228, ShuffleNet 1x), ``scalenet`` (resnet50_v1b and
ScaleNet-50 alone), ``ed`` (ED-ResNet-50 and ed=False alone), ``oct50`` (Oct-ResNet-50 v1b at
alpha 0, .125, .25, .5), ``oct152`` (Oct-ResNet-152 v1f, the card's model; use a small
batch and few rounds).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, format_table, interleaved_times, set_threads  # noqa: E402  (before mxnet)

LWDNA_GOLDEN = os.path.join(ROOT, 'tests', 'data', 'golden', 'lwdna', 'resnet50_hh_wide2.json')

# table -> [(label, registry name or 'gluoncv:<name>', kwargs)]
TABLES = {
    'targets': [
        ('resnet50_v1b (gluoncv)', 'gluoncv:resnet50_v1b', {}),
        ('lwdna_resnet50 golden shrink', 'lwdna_resnet50', 'golden'),
        ('scalenet50', 'scalenet50', {}),
        ('ed_resnet50', 'ed_resnet50', {}),
        ('ed_resnet50 ed=False', 'ed_resnet50', {'ed': False}),
        ('menet228_12x1_g3', 'menet228_12x1_g3', {}),
        ('shufflenet_1x_g3', 'shufflenet_1x_g3', {}),
    ],
    'oct50': [('resnet50_v1b (gluoncv)', 'gluoncv:resnet50_v1b', {})] + [
        ('oct_resnet50_v1b alpha %g' % a, 'oct_resnet50_v1b', {'alpha': a})
        for a in (0.0, 0.125, 0.25, 0.5)],
    'scalenet': [
        ('resnet50_v1b (gluoncv)', 'gluoncv:resnet50_v1b', {}),
        ('scalenet50', 'scalenet50', {}),
    ],
    'ed': [
        ('ed_resnet50', 'ed_resnet50', {}),
        ('ed_resnet50 ed=False', 'ed_resnet50', {'ed': False}),
    ],
    'oct152': [('oct_resnet152_v1f alpha %g' % a, 'oct_resnet152_v1f', {'alpha': a})
               for a in (0.0, 0.125, 0.25, 0.5)],
}


def _build(spec, kwargs):
    import mxnet as mx
    from gluon_nets import get_model
    from gluon_nets._compat import import_gluoncv
    if spec.startswith('gluoncv:'):
        net = import_gluoncv().model_zoo.get_model(spec.split(':', 1)[1])
    else:
        if kwargs == 'golden':
            with open(LWDNA_GOLDEN) as f:
                kwargs = {'config': json.load(f)['shrink']['config']}
        net = get_model(spec, **kwargs)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def child(args):
    """Time one table at ``args.threads`` threads; prints one JSON line of results."""
    threads = set_threads(args.threads)
    import mxnet as mx
    from gluon_nets.inference import optimize
    from gluon_nets.profile import count_macs
    batches = [int(b) for b in args.batch.split(',')]
    nets, info = {}, {}
    for label, spec, kwargs in TABLES[args.table]:
        net = _build(spec, kwargs)
        macs = count_macs(net)
        fast = optimize(net, (1, 3, args.size, args.size), backend=args.backend)
        report = fast.optimize_report
        info[label] = {'macs': macs, 'backend': report['backend'], 'err': report['max_rel_err'],
                       'rewrites': report['rewrites'], 'bn_folded': report['bn_folded'],
                       'bn_left': report['bn_left'],
                       'upsampling_as_deconv': report.get('upsampling_as_deconv', 0),
                       'convs_padded': report.get('convs_padded', 0),
                       'deconv_bias_moved': report.get('deconv_bias_moved', 0)
                       + report.get('deconv_bias_as_conv', 0),
                       'groups_merged': report.get('groups_merged', 0),
                       'scale': [report.get(k, 0) for k in (
                           'concats_aligned', 'resizes_as_deconv', 'one_pixel_convs_as_1x1')],
                       'backend_failed': report.get('backend_failed')}
        nets[(label, 'hybridized')] = net
        nets[(label, 'optimized')] = fast
    results = []
    for batch in batches:
        x = mx.nd.random.uniform(-1, 1, (batch, 3, args.size, args.size))
        steps = {key: (lambda net=net: net(x).wait_to_read()) for key, net in nets.items()}
        times = interleaved_times(steps, args.rounds, warmup=2,
                                  clock='cpu' if threads == 1 else 'wall')
        for (label, variant), values in times.items():
            results.append({'label': label, 'variant': variant, 'batch': batch,
                            'seconds': statistics.median(values)})
    print('RESULT ' + json.dumps({'threads': threads, 'table': args.table, 'info': info,
                                  'results': results,
                                  'clock': 'CPU' if threads == 1 else 'wall'}))


def _ratio_base(table, label):
    """The label a row's target is measured against, and the target (or None)."""
    if table in ('targets', 'scalenet', 'ed'):
        return {'lwdna_resnet50 golden shrink': ('resnet50_v1b (gluoncv)', 1.0),
                'scalenet50': ('resnet50_v1b (gluoncv)', 0.95),
                'ed_resnet50': ('ed_resnet50 ed=False', 0.85)}.get(label, (None, None))
    targets = {'0.125': 1.0, '0.25': 1.10, '0.5': 1.45}
    alpha = label.rsplit(' ', 1)[-1]
    base = [l for l, _, _ in TABLES[table] if l.endswith('alpha 0')][0]
    return (base, targets[alpha]) if alpha in targets else (None, None)


def render(run):
    """Markdown table of one child's results."""
    table, info = run['table'], run['info']
    sec = {(r['label'], r['variant'], r['batch']): r['seconds'] for r in run['results']}
    rows = []
    baseline = 'resnet50_v1b (gluoncv)'
    for label, _, _ in TABLES[table]:
        for batch in sorted({r['batch'] for r in run['results']}):
            hyb, opt = sec[(label, 'hybridized', batch)], sec[(label, 'optimized', batch)]
            base, target = _ratio_base(table, label)
            vs = '-'
            if base:
                # the target compares optimized forms (what eval/export/bench now run)
                ratio = sec[(base, 'optimized', batch)] / opt
                vs = '%.2fx of %s (target >= %.2fx: %s)' % (
                    ratio, base, target, 'met' if ratio >= target else 'MISSED')
            r50 = ('%.2fx' % (sec[(baseline, 'optimized', batch)] / opt)
                   if (baseline, 'optimized', batch) in sec else '-')
            rows.append([label, '%.2f' % (info[label]['macs'] / 1e9), batch,
                         '%.1f' % (batch / hyb), '%.1f' % (batch / opt), '%.2fx' % (hyb / opt),
                         info[label]['backend'] or 'plain', r50, vs])
    header = ['model', 'GMACs', 'batch', 'hybridized img/s', 'optimized img/s',
              'optimized / hybridized', 'graph kept', 'optimized vs resnet50_v1b optimized',
              'target']
    notes = ['- %s: %s' % (label, ', '.join(
        ['max rel err %.1e' % i['err'], 'BN folded %d, left %d' % (i['bn_folded'], i['bn_left'])]
        + (['rewrites: %s' % '; '.join(i['rewrites'])] if i['rewrites'] else [])
        + (['UpSampling as Deconvolution %d' % i['upsampling_as_deconv']]
           if i.get('upsampling_as_deconv') else [])
        + (['convs padded %d' % i['convs_padded']] if i.get('convs_padded') else [])
        + (['Deconvolution biases moved out %d' % i['deconv_bias_moved']]
           if i.get('deconv_bias_moved') else [])
        + (['grouped layers merged %d' % i['groups_merged']] if i.get('groups_merged') else [])
        + (['scale aggregation: concats aligned %d, small resizes as deconvolution %d, '
            'convs on 1x1 maps as 1x1 %d' % tuple(i['scale'])] if any(i.get('scale', ())) else [])
        + (['oneDNN partitioner not kept: %s' % i['backend_failed']]
           if i['backend_failed'] else [])))
        for label, i in info.items()]
    return '\n'.join(['### %s, %d thread(s), %s time per call, median of rounds'
                      % (table, run['threads'], run['clock']), '',
                      format_table(header, rows), ''] + notes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tables', default='targets,oct50,oct152')
    parser.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    parser.add_argument('--batch', '--batch-size', dest='batch', default='1,16')
    parser.add_argument('--size', '--input-size', dest='size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--oct152-batch', default='1,4', help='batches of the oct152 table')
    parser.add_argument('--oct152-rounds', type=int, default=3)
    parser.add_argument('--backend', default='auto', help="optimize(backend=...)")
    parser.add_argument('--table', help=argparse.SUPPRESS)     # child mode
    args = parser.parse_args(argv)
    if args.table:
        args.threads = int(args.threads)
        child(args)
        return 0
    for table in args.tables.split(','):
        if table not in TABLES:
            print('error: unknown table %r (one of %s)' % (table, ', '.join(TABLES)))
            return 2
        for threads in args.threads.split(','):
            batch, rounds = ((args.oct152_batch, args.oct152_rounds) if table == 'oct152'
                             else (args.batch, args.rounds))
            cmd = [sys.executable, os.path.abspath(__file__), '--table', table,
                   '--threads', threads, '--batch', batch, '--rounds', str(rounds),
                   '--size', str(args.size), '--backend', args.backend]
            out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True).stdout
            line = [l for l in out.splitlines() if l.startswith('RESULT ')][-1]
            print(render(json.loads(line[len('RESULT '):])), flush=True)
            print(flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
