"""train_imagenet.py: outputs, exact resume after kill -9, NaN guard, flag errors.

Everything runs a tiny CNN (registered by a plugin file through --import-module) on a
few batches of the embedded set, so the module takes well under a minute.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

mx = pytest.importorskip('mxnet')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'train_imagenet.py')

TINY = '''
from mxnet.gluon import nn
from gluon_nets.model_zoo import list_families, list_models, register_family, register_model


def tiny_cnn(classes=1000, width=8, **kwargs):
    """Two conv-BN-ReLU layers and a classifier, (N, 3, H, W) -> (N, classes)."""
    net = nn.HybridSequential()
    net.add(nn.Conv2D(width, 3, padding=1, in_channels=3), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(2), nn.Conv2D(2 * width, 3, padding=1), nn.BatchNorm(),
            nn.Activation('relu'), nn.GlobalAvgPool2D(), nn.Dense(classes))
    return net


if 'test' not in list_families():
    register_family('test', paper='none: a test net')
if 'tiny_cnn' not in list_models():
    register_model('test', name='tiny_cnn')(tiny_cnn)
'''

# A whole family in one file, as a real one under gluon_nets/models/ would be: its own
# constructor keyword (--toy-width -> width), an option its plugin reads (--toy-tag), a
# check and a build hook. Nothing generic knows about it.
TOY_FAMILY = '''
from mxnet.gluon import nn
from gluon_nets.model_zoo import ModelOption, TrainingPlugin, register_family, register_model


class ToyTraining(TrainingPlugin):
    options = (
        ModelOption(('--toy-width',), dict(type=int, default=None, help='toy conv width'),
                    kwarg='width'),
        ModelOption(('--toy-tag',), dict(default=None, help='a tag the plugin stores')),
    )

    def check(self, args, info):
        if args.toy_tag == 'bad':
            raise ValueError('--toy-tag bad: not a tag this family trains with')

    def build(self, session):
        if session.args.toy_tag is None:
            return None
        session.write_json('toy.json', {'tag': session.args.toy_tag, 'kwargs': session.kwargs,
                                        'classes': session.num_classes,
                                        'input_size': session.input_size,
                                        'resumed': session.resumed})
        session.set_arg('lr_mode', 'constant')
        kwargs = dict(session.kwargs, depth=2)
        return session.make_net(kwargs=kwargs), session.name, kwargs


register_family('toyfam', paper='none: a family for the trainer tests', training=ToyTraining())


@register_model('toyfam')
def toy_net(classes=1000, width=4, depth=1, **kwargs):
    """A toy net: ``depth`` conv-ReLU layers of ``width`` channels, (N, 3, H, W) -> (N, classes)."""
    net = nn.HybridSequential()
    for _ in range(depth):
        net.add(nn.Conv2D(width, 3, padding=1), nn.Activation('relu'))
    net.add(nn.GlobalAvgPool2D(), nn.Dense(classes))
    return net
'''


@pytest.fixture(scope='module')
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp('plugin') / 'tiny_models.py'
    path.write_text(TINY)
    return str(path)


def _base(plugin, save_dir, *extra):
    return ['--model', 'tiny_cnn', '--import-module', plugin, '--save-dir', str(save_dir),
            '--batch-size', '32', '--input-size', '16', '-j', '1', '--no-progress',
            '--log-interval', '0', '--lr', '0.1'] + list(extra)


def _cli(args, timeout=120, env=None):
    full_env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    return subprocess.run([sys.executable, TRAIN, '--threads', '1'] + args, capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=ROOT)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_run_writes_metrics_checkpoints_and_model_json(plugin, tmp_path):
    from gluon_nets.training import main
    run = tmp_path / 'run'
    code = main(_base(plugin, run, '--num-epochs', '2', '--max-iters', '6', '--lr-mode', 'cosine',
                      '--warmup-epochs', '1', '--label-smoothing', '--mixup', '--no-wd',
                      '--save-frequency', '1'))
    assert code == 0
    rows = _csv(run / 'metrics.csv')
    assert [r['epoch'] for r in rows] == ['0', '1']
    assert float(rows[0]['lr']) == pytest.approx(0.1, rel=1e-6)   # end of the 1-epoch warm-up
    assert float(rows[1]['lr']) == pytest.approx(0.0, abs=1e-9)   # end of the cosine
    assert all(0 <= float(r['val_top1']) <= float(r['val_top5']) <= 1 for r in rows)
    record = json.load(open(str(run / 'checkpoint.json')))
    assert record['epoch'] == 1 and record['num_update'] == 12 and len(record['metrics']) == 2
    assert (run / 'curves.png').stat().st_size > 1000 and (run / 'last.params').exists()
    assert (run / 'tiny_cnn-0.params').exists() and not (run / 'epoch-0000.params').exists()
    best = json.load(open(str(run / 'best.json')))
    assert best['val_top1'] == max(float(r['val_top1']) for r in rows)
    from gluon_nets import data
    from gluon_nets.model_zoo import read_model_record
    model = read_model_record(json.load(open(str(run / 'model.json'))))
    embedded = data.dataset_info('fashion-mnist-mini')
    assert model['model'] == 'tiny_cnn' and model['kwargs'] == {}
    assert model['data_config'] == dict(embedded['data_config'], input_size=(3, 16, 16))
    assert model['class_names'] == embedded['class_names']
    assert model['params'] == 'last.params' and model['dataset'] == 'fashion-mnist-mini'
    assert oct(os.stat(str(run / 'model.json')).st_mode & 0o777) == oct(0o666 & ~_umask())
    # last.params reproduces the last validation accuracy (what eval.py relies on)
    from gluon_nets import get_model
    from gluon_nets.training import evaluate
    net = get_model('tiny_cnn', classes=10)
    net.load_parameters(str(run / 'last.params'))
    val = data.val_loader('fashion-mnist-mini', batch_size=32, input_size=16)
    _, top1, _ = evaluate(net, val, [mx.cpu()])
    assert top1 == pytest.approx(float(rows[-1]['val_top1']), abs=1e-6)


def test_kill9_mid_epoch_then_resume_continues_the_schedule(plugin, tmp_path):
    epochs, iters = 4, 20
    common = ['--num-epochs', str(epochs), '--max-iters', str(iters), '--lr-mode', 'cosine']
    ref = tmp_path / 'ref'
    from gluon_nets.training import main
    assert main(_base(plugin, ref, *common)) == 0
    run = tmp_path / 'run'
    proc = subprocess.Popen([sys.executable, TRAIN, '--threads', '1'] + _base(plugin, run, *common),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.time() + 90
    ckpt = run / 'checkpoint.json'
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and json.load(open(str(ckpt)))['epoch'] >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.4)  # into the next epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.load(open(str(ckpt)))['epoch']
    assert killed_at < epochs - 1
    result = _cli(['--resume', str(run)])
    assert result.returncode == 0, result.stderr
    assert 'resumed' in result.stdout
    rows, ref_rows = _csv(run / 'metrics.csv'), _csv(ref / 'metrics.csv')
    assert [int(r['epoch']) for r in rows] == list(range(epochs))        # no gap, no duplicate
    assert [r['lr'] for r in rows] == [r['lr'] for r in ref_rows]        # same schedule
    record = json.load(open(str(ckpt)))
    assert record['num_update'] == epochs * iters
    a = mx.nd.load(str(run / 'last.params'))
    b = mx.nd.load(str(ref / 'last.params'))
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    # one data thread, seeded per epoch: the resumed run is the same computation up to
    # float rounding (~1e-7 after the first resumed epoch, grown by the later SGD steps)
    for key in b:
        np.testing.assert_allclose(a[key].asnumpy(), b[key].asnumpy(), rtol=5e-2, atol=2e-2)
    for r, q in zip(rows, ref_rows):
        assert float(r['train_loss']) == pytest.approx(float(q['train_loss']), rel=1e-2)
    leftovers = sorted(f for f in os.listdir(str(run)) if f.startswith(('.tmp-', 'epoch-')))
    assert leftovers == ['epoch-%04d.params' % (epochs - 1), 'epoch-%04d.states' % (epochs - 1)]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(plugin, tmp_path):
    run = tmp_path / 'run'
    # epoch 0 trains normally; the step schedule then multiplies the lr by 1e30 (GluonCV's
    # schedule applies it from epoch 1's last update on: epoch 1 ends diverged)
    result = _cli(_base(plugin, run, '--num-epochs', '3', '--max-iters', '4', '--lr-mode', 'step',
                        '--lr-decay-epoch', '2', '--lr-decay', '1e30'))
    assert result.returncode == 2
    assert 'validation loss is nan after epoch 1' in result.stderr or \
        'validation loss is inf after epoch 1' in result.stderr, result.stderr
    assert 'last good checkpoint (epoch 0)' in result.stderr
    assert json.load(open(str(run / 'checkpoint.json')))['epoch'] == 0
    assert json.load(open(str(run / 'best.json')))['epoch'] == 0
    assert [r['epoch'] for r in _csv(run / 'metrics.csv')] == ['0']


@pytest.mark.parametrize('extra, message', [
    (['--dtype', 'float16'], '--dtype float16 needs a GPU'),
    (['--alpha', '0.25'], '--alpha: model tiny_cnn does not take alpha; models that do: oct_'),
    (['--lr', '-1'], '--lr must be > 0'),
    (['--rec-train', 'x.rec'], '--rec-train needs --rec-val'),
    (['--dataset', 'cifar'], '--dataset cifar: unknown'),
    (['--model-kwargs', '[1]'], 'expected a JSON object'),
    (['--warmup-epochs', '5'], '--warmup-epochs must be in [0, --num-epochs)'),
    (['--lr', 'nan'], '--lr must be a finite number, got nan'),        # nan passes "<= 0"
    (['--momentum', 'inf'], '--momentum must be a finite number, got inf'),
])
def test_bad_flags_exit_2_with_a_clear_message(plugin, tmp_path, extra, message):
    result = _cli(_base(plugin, tmp_path / 'run', *extra), timeout=60)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr


def test_unknown_model_and_bad_data_fail_before_any_checkpoint(plugin, tmp_path):
    result = _cli(_base(plugin, tmp_path / 'a') + ['--model', 'resnet_nope'], timeout=60)
    assert result.returncode == 2 and "unknown model 'resnet_nope'" in result.stderr
    bad = tmp_path / 'bad.rec'
    bad.write_bytes(b'\x00' * 64)
    (tmp_path / 'bad.idx').write_text('0\t0\n')
    result = _cli(_base(plugin, tmp_path / 'b', '--rec-train', str(bad), '--rec-val', str(bad)), timeout=60)
    assert result.returncode == 2                  # bad input: exit 2, one line
    assert 'bad.rec is corrupt: record 0' in result.stderr, result.stderr
    assert not (tmp_path / 'b' / 'checkpoint.json').exists()


def test_threads_flag_sets_omp_before_mxnet(tmp_path):
    code = ('import os, sys; sys.argv = ["x", "--threads", "3"]; '
            'from gluon_nets.training.options import set_threads_from_argv; '
            'import gluon_nets.training.cli; '
            'set_threads_from_argv(sys.argv[1:]); '
            'print("mxnet" in sys.modules, os.environ["OMP_NUM_THREADS"])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.stdout.split() == ['False', '3'], out.stderr
    # the command sets them before anything imports mxnet (its parser imports the
    # families, and mxnet with them): an --import-module file, imported first, sees both
    probe = tmp_path / 'probe.py'
    probe.write_text('import os, sys\nprint("probe", os.environ["OMP_NUM_THREADS"], '
                     '"mxnet" in sys.modules)\n')
    out = _cli(['--threads', '2', '--import-module', str(probe), '--model', 'resnet_nope'])
    assert out.stdout.splitlines()[0] == 'probe 2 False', out.stdout + out.stderr
    assert out.returncode == 2


def test_image_folder_training(plugin, tmp_path):
    import cv2
    for split in ('train', 'val'):
        for c in range(3):
            d = tmp_path / 'tree' / split / ('class%d' % c)
            d.mkdir(parents=True)
            for i in range(6):
                cv2.imwrite(str(d / ('%d.png' % i)), np.full((20, 24, 3), 80 * c, np.uint8))
    from gluon_nets.training import main
    run = tmp_path / 'run'
    assert main(_base(plugin, run, '--data-dir', str(tmp_path / 'tree'), '--batch-size', '6',
                      '--num-epochs', '1', '-j', '0')) == 0
    model = json.load(open(str(run / 'model.json')))
    assert model['data_config']['num_classes'] == 3
    assert model['class_names'] == ['class0', 'class1', 'class2'] and model['data_dir']
    assert len(_csv(run / 'metrics.csv')) == 1


def test_distillation_from_a_teacher_checkpoint(plugin, tmp_path):
    from gluon_nets import get_model
    from gluon_nets.model_zoo import pretrained_path
    import importlib.util
    home = tmp_path / 'home'
    spec = importlib.util.spec_from_file_location('tiny_models', plugin)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers tiny_cnn once
    teacher = get_model('tiny_cnn', classes=10)
    teacher.initialize(mx.init.Xavier())
    teacher(mx.nd.zeros((1, 3, 16, 16)))
    path = pretrained_path('tiny_cnn', root=str(home / '.mxnet' / 'models'))
    os.makedirs(os.path.dirname(path))
    teacher.save_parameters(path)
    result = _cli(_base(plugin, tmp_path / 'run', '--teacher', 'tiny_cnn', '--temperature', '4',
                        '--hard-weight', '0.3', '--num-epochs', '1', '--max-iters', '3'),
                  env={'HOME': str(home)})
    assert result.returncode == 0, result.stderr
    assert len(_csv(tmp_path / 'run' / 'metrics.csv')) == 1
    result = _cli(_base(plugin, tmp_path / 'run2', '--teacher', 'tiny_cnn', '--num-epochs', '1'),
                  env={'HOME': str(tmp_path / 'empty')})
    assert result.returncode == 2 and 'no converted weights for tiny_cnn' in result.stderr


def test_lwdna_search_then_train_then_resume(tmp_path):
    lwdna = pytest.importorskip('gluon_nets.models.lwdna')
    if not hasattr(lwdna, 'search'):
        pytest.skip('gluon_nets.models.lwdna.search not available')
    run = tmp_path / 'run'
    args = ['--model', 'hh_resnet18', '--width-mult', '0.25', '--lwdna-ratio', '0.5', '--num-epochs', '1',
            '--max-iters', '2', '--batch-size', '16', '--save-dir', str(run), '--no-progress', '-j', '1']
    result = _cli(args)
    assert result.returncode == 0, result.stderr
    config = json.load(open(str(run / 'lwdna_config.json')))
    model = json.load(open(str(run / 'model.json')))
    assert model['model'] == 'lwdna_resnet18' and model['kwargs'] == {'config': config}
    result = _cli(['--resume', str(run), '--num-epochs', '2'])
    assert result.returncode == 0, result.stderr
    assert 'resumed' in result.stdout and 'LW-DNA search on' not in result.stdout
    assert [r['epoch'] for r in _csv(run / 'metrics.csv')] == ['0', '1']
    # the trained net is the searched configuration
    from gluon_nets import get_model
    net = get_model('lwdna_resnet18', classes=10, config=config)
    net.load_parameters(str(run / 'last.params'))


def _error_line(result):
    """The whole stderr of a refused command: exactly one ``error:`` line."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train_imagenet.py: error: '), result.stderr
    return lines[0]


@pytest.mark.parametrize('model, extra, message', [
    # a constructor keyword of another family's models
    ('tiny_cnn', ['--width-mult', '2'],
     '--width-mult: model tiny_cnn does not take width_mult; models that do: hh_resnet101, '
     'hh_resnet152, hh_resnet18, hh_resnet34, hh_resnet50'),
    # a keyword of the family, but not of this model's constructor
    ('lwdna_resnet18', ['--embedding-dim', '4'],
     '--embedding-dim: model lwdna_resnet18 does not take embedding_dim; models that do: hh_'),
    # an option the family's plugin reads, given for another family's model
    ('tiny_cnn', ['--lwdna-ratio', '0.5'],
     '--lwdna-ratio: an option of the lwdna family; model tiny_cnn is of family test'),
    # the plugin's own check
    ('lwdna_resnet18', ['--lwdna-ratio', '0.5'], '--lwdna-ratio runs the LW-DNA search, which '
                                                 'needs an hh_* model (got lwdna_resnet18)'),
    ('hh_resnet18', ['--lwdna-ratio', '1.5'], '--lwdna-ratio must be in (0, 1), got 1.5'),
    ('lwdna_resnet18', ['--lwdna-config', 'missing.json'], '--lwdna-config missing.json does not exist'),
])
def test_family_options_are_refused_for_models_that_do_not_take_them(plugin, tmp_path, model,
                                                                      extra, message):
    run = tmp_path / 'run'
    result = _cli(_base(plugin, run, *extra) + ['--model', model], timeout=60)
    assert result.returncode == 2
    assert message in _error_line(result)
    assert not run.exists() or not os.listdir(str(run))   # refused before any work


def test_help_lists_family_options_per_family():
    result = _cli(['--help'], timeout=60)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    group = lines.index('lwdna family options:')
    for flag in ('--width-mult', '--embedding-dim', '--lwdna-ratio', '--lwdna-config'):
        entries = [i for i, line in enumerate(lines) if line.lstrip().startswith(flag + ' ')]
        assert entries and all(i > group for i in entries), flag   # in the family's group only


def test_lwdna_given_config_is_copied_and_trained(tmp_path):
    from gluon_nets.models.lwdna import default_config
    config = default_config(18, 0.25)
    path = tmp_path / 'searched.json'
    path.write_text(json.dumps(config))
    run = tmp_path / 'run'
    result = _cli(['--model', 'lwdna_resnet18', '--lwdna-config', str(path), '--num-epochs', '1',
                   '--max-iters', '2', '--batch-size', '16', '--save-dir', str(run),
                   '--no-progress', '-j', '1'])
    assert result.returncode == 0, result.stderr
    assert json.load(open(str(run / 'lwdna_config.json'))) == config
    model = json.load(open(str(run / 'model.json')))
    assert model['model'] == 'lwdna_resnet18' and model['kwargs'] == {'config': config}
    assert json.load(open(str(run / 'args.json')))['lr_mode'] == 'step'  # cosine only after a search
    assert 'LW-DNA search on' not in result.stdout
    params = mx.nd.load(str(run / 'last.params'))
    assert params['fc.weight'].shape == (10, 128)


def test_a_family_plugs_in_from_its_own_module(tmp_path):
    """A family declared in one file (model, ModelOption, TrainingPlugin) trains through
    the trainer with its own flags; no generic file names it."""
    module = tmp_path / 'toy_family.py'
    module.write_text(TOY_FAMILY)
    run = tmp_path / 'run'
    common = ['--import-module', str(module), '--model', 'toy_net', '--batch-size', '16',
              '--input-size', '16', '--max-iters', '2', '--no-progress', '-j', '1',
              '--save-dir', str(run), '--log-interval', '0']
    result = _cli(common + ['--num-epochs', '1', '--toy-width', '6', '--toy-tag', 'first'])
    assert result.returncode == 0, result.stderr
    stored = json.load(open(str(run / 'toy.json')))
    assert stored == {'tag': 'first', 'kwargs': {'width': 6}, 'classes': 10, 'input_size': 16,
                      'resumed': False}
    model = json.load(open(str(run / 'model.json')))
    assert model['model'] == 'toy_net' and model['kwargs'] == {'width': 6, 'depth': 2}
    assert json.load(open(str(run / 'args.json')))['lr_mode'] == 'constant'   # set_arg
    params = mx.nd.load(str(run / 'last.params'))
    assert sorted(v.shape for k, v in params.items() if k.endswith('weight')) == \
        [(6, 3, 3, 3), (6, 6, 3, 3), (10, 6)]
    # resumed in a new process: the saved --import-module brings the family back
    result = _cli(['--resume', str(run), '--num-epochs', '2'])
    assert result.returncode == 0, result.stderr
    assert json.load(open(str(run / 'toy.json')))['resumed'] is True
    assert [r['epoch'] for r in _csv(run / 'metrics.csv')] == ['0', '1']
    # its check runs before any work; its flags are listed in their own group
    result = _cli(common + ['--toy-tag', 'bad', '--save-dir', str(tmp_path / 'bad')])
    assert result.returncode == 2
    assert '--toy-tag bad: not a tag this family trains with' in _error_line(result)
    assert not (tmp_path / 'bad').exists()
    result = _cli(['--import-module', str(module), '--help'])
    assert 'toyfam family options:' in result.stdout and '--toy-width' in result.stdout


def test_family_options_merge_identical_and_refuse_clashes(monkeypatch):
    from gluon_nets import model_zoo
    from gluon_nets.training import options
    model_zoo.list_families()   # the real families first

    def family(name, *opts):
        plugin = model_zoo.TrainingPlugin()
        plugin.options = opts
        monkeypatch.setitem(model_zoo._FAMILIES, name, model_zoo.FamilyInfo(name, training=plugin))

    width = dict(type=float, default=None)
    family('zz_one', model_zoo.ModelOption(('--zz-width',), dict(width, help='one'), kwarg='w'))
    family('zz_two', model_zoo.ModelOption(('--zz-width',), dict(width, help='two'), kwarg='w'))
    assert options.family_options()['zz_width'].families == ('zz_one', 'zz_two')
    parser = options.build_parser()
    assert parser.parse_args(['--zz-width', '2']).zz_width == 2.0          # added once
    family('zz_three', model_zoo.ModelOption(('--zz-width',), dict(type=int), kwarg='w'))
    with pytest.raises(ValueError, match='families zz_one and zz_three both declare --zz-width'):
        options.family_options()
    monkeypatch.delitem(model_zoo._FAMILIES, 'zz_three')
    family('zz_four', model_zoo.ModelOption(('--seed',), dict(type=int)))
    with pytest.raises(ValueError, match='family zz_four declares --seed, which the trainer already has'):
        options.build_parser()
