"""eval.py: its numbers against a direct computation and against things we did not
write (the trainer's own validation, the MENet authors' checkpoint and their
reference predictions), every artefact kind on the same data, per-class report,
and clear errors with exit status 2 on bad input."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SHARED

mx = pytest.importorskip('mxnet')
sys.path.insert(0, ROOT)
import gluon_nets  # noqa: E402
import symbols  # noqa: E402
import eval as evaluator  # noqa: E402

DATASET = 'fashion-mnist-mini'


def _cheapest_model():
    names = [n for n in gluon_nets.list_models() if not gluon_nets.get_model_info(n).slow
             and gluon_nets.get_model_info(n).min_input_size <= 32]
    if not names:
        pytest.skip('no model registered yet')
    return min(names, key=lambda n: (gluon_nets.get_model_info(n).macs or 0, n))


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """A cheap zoo model with 10 classes, random weights (non-trivial BN), saved."""
    name = _cheapest_model()
    mx.random.seed(0)
    net = gluon_nets.get_model(name, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net(mx.nd.zeros((1, 3, 32, 32)))
    rng = np.random.RandomState(0)
    for pname, param in net.collect_params().items():
        if pname.endswith('running_var'):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
        elif pname.endswith(('running_mean', 'beta')):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
    folder = tmp_path_factory.mktemp('weights')
    path = str(folder / 'w.params')
    net.save_parameters(path)
    return name, path, net, folder


def _direct_metrics(net, batch_size=32):
    """top-1, top-5, mean cross-entropy over the embedded val set, computed here."""
    from gluon_nets import data
    info = data.dataset_info(DATASET)
    loader = data.val_loader(dataset=DATASET, batch_size=batch_size,
                             input_size=info['input_size'], crop_ratio=info['crop_ratio'])
    net.hybridize(static_alloc=True, static_shape=True)
    top1 = top5 = n = 0
    loss = 0.0
    for x, y in loader:
        logits = net(x.as_in_context(mx.cpu())).asnumpy().astype(np.float64)
        y = y.asnumpy().astype(int)
        order = np.argsort(-logits, 1)
        top1 += int((order[:, 0] == y).sum())
        top5 += int((order[:, :5] == y[:, None]).any(1).sum())
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss += float(-np.log(p[np.arange(len(y)), y]).sum())
        n += len(y)
    return top1 / n, top5 / n, loss / n, n


def test_every_artefact_on_the_same_data(weights, tmp_path, capsys):
    name, params, net, _ = weights
    from gluon_nets.data import dataset_info
    stats = {k: dataset_info(DATASET)[k] for k in ('mean', 'std')}
    out = str(tmp_path / 'deploy')
    symbols.export(net, out, name, input_size=32, classes=10, **stats)
    symbols.export(net, out, name, format='fused', input_size=32, **stats)
    kinds = ['--symbol', os.path.join(out, name), os.path.join(out, name + '-fused')]
    try:
        symbols.export(net, out, name, format='onnx', input_size=32, **stats)
        kinds += ['--onnx', os.path.join(out, name + '.onnx')]
    except symbols.ExportError:
        pass
    report_path = str(tmp_path / 'r.json')
    # --no-optimize: the Gluon net as trained, so that the symbol export can be compared
    # with it bit for bit (the optimized net is checked in tests/test_inference.py)
    rc = evaluator.main(['--model', name, '--params', params, '--dataset', DATASET,
                         '--json', report_path, '--no-progress', '--no-optimize'] + kinds)
    assert rc == 0
    with open(report_path) as f:
        report = json.load(f)
    top1, top5, loss, n = _direct_metrics(net)
    gluon, symbol, fused = report['results'][:3]
    assert gluon['num_images'] == n == 2000
    assert gluon['top1'] == pytest.approx(top1, abs=1e-12)
    assert gluon['top5'] == pytest.approx(top5, abs=1e-12)
    assert gluon['loss'] == pytest.approx(loss, rel=1e-5)
    assert gluon['img_per_s'] > 0
    # the exported graph is the same computation, bit for bit
    assert (symbol['top1'], symbol['top5'], symbol['loss']) == \
        (gluon['top1'], gluon['top5'], gluon['loss'])
    # fused / ONNX differ by ~1e-7 relative: at most a tie-break on an image or two
    for other in report['results'][2:]:
        assert abs(other['top1'] - gluon['top1']) <= 2 / n
        assert other['loss'] == pytest.approx(gluon['loss'], rel=1e-4)
    printed = capsys.readouterr().out
    assert 'top-1' in printed and name in printed


def test_artefacts_expecting_different_inputs_are_refused(weights, tmp_path, capsys):
    name, params, net, _ = weights
    out = str(tmp_path / 'deploy')
    symbols.export(net, out, 'a', input_size=32)                      # ImageNet mean/std
    symbols.export(net, out, 'b', input_size=32, mean=(0.2,) * 3, std=(0.3,) * 3)
    assert evaluator.main(['--symbol', os.path.join(out, 'a'), os.path.join(out, 'b'),
                           '--no-progress']) == 2
    assert 'different preprocessing' in capsys.readouterr().err


def test_run_directory_model_json_gives_model_data_and_preprocessing(weights, tmp_path, capsys):
    """--params RUN_DIR: the model, the data source and the data_config come from the
    run's model.json (model_zoo.model_record, the structure exports write too)."""
    from gluon_nets.model_zoo import model_record
    name, params, _, _ = weights
    run = tmp_path / 'run'
    run.mkdir()
    shutil.copy(params, str(run / 'last.params'))
    config = dict(gluon_nets.get_model_info(name).data_config, input_size=(3, 32, 32),
                  mean=(0.3, 0.3, 0.3), std=(0.4, 0.4, 0.4), num_classes=10)
    (run / 'model.json').write_text(json.dumps(model_record(name, {}, config, None,
                                                            dataset=DATASET)))
    report_path = str(tmp_path / 'r.json')
    assert evaluator.main(['--params', str(run), '--json', report_path, '--no-progress']) == 0
    with open(report_path) as f:
        report = json.load(f)
    assert report['data']['dataset'] == DATASET and report['data']['num_images'] == 2000
    assert report['data']['mean'] == [0.3] * 3 and report['data']['std'] == [0.4] * 3
    assert report['data']['input_size'] == 32
    assert report['results'][0]['artefact'].startswith(name)


def test_deploy_json_of_the_old_layout_is_still_read():
    """Deployer JSONs written before they were model records (preprocess / classes /
    input_shape keys) give the same data_config."""
    from gluon_nets.evaluation.predictors import read_deploy_record
    old = {'format': 'symbol', 'model': None, 'model_kwargs': {}, 'classes': 10,
           'input_shape': [1, 3, 32, 32],
           'preprocess': {'resize_short': 37, 'crop_ratio': 0.875, 'center_crop': 32,
                          'mean': [0.2, 0.2, 0.2], 'std': [0.3, 0.3, 0.3]}}
    config = read_deploy_record(old, 'old-deploy.json')['data_config']
    assert config['input_size'] == (3, 32, 32) and config['num_classes'] == 10
    assert config['mean'] == (0.2, 0.2, 0.2) and config['std'] == (0.3, 0.3, 0.3)
    assert config['crop_ratio'] == 0.875


def test_per_class_table_and_confusion_png(weights, tmp_path):
    name, params, _, _ = weights
    out = str(tmp_path / 'pc')
    report_path = str(tmp_path / 'r.json')
    assert evaluator.main(['--model', name, '--params', params, '--per-class', out,
                           '--json', report_path, '--no-progress']) == 0
    with open(report_path) as f:
        result = json.load(f)['results'][0]
    with open(result['per_class_csv']) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert rows[1]['name'] == 'trouser'
    assert sum(int(r['images']) for r in rows) == 2000
    assert sum(int(r['correct']) for r in rows) / 2000 == pytest.approx(result['top1'])
    with open(result['confusion_png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_npy_input_with_labels(weights, tmp_path):
    name, params, net, _ = weights
    x = np.random.RandomState(0).uniform(-2, 2, (5, 3, 32, 32)).astype(np.float32)
    net.hybridize(static_alloc=True, static_shape=True)
    logits = net(mx.nd.array(x)).asnumpy()
    labels = [int(v) for v in logits.argmax(1)]
    labels[0] = (labels[0] + 1) % 10
    np.save(str(tmp_path / 'x.npy'), x)
    (tmp_path / 'y.json').write_text(json.dumps(labels))
    report_path = str(tmp_path / 'r.json')
    assert evaluator.main(['--model', name, '--params', params, '--npy', str(tmp_path / 'x.npy'),
                           '--npy-labels', str(tmp_path / 'y.json'), '--batch-size', '2',
                           '--json', report_path, '--no-progress']) == 0
    with open(report_path) as f:
        result = json.load(f)['results'][0]
    assert result['top1'] == pytest.approx(4 / 5)
    assert [p['top5'][0] for p in result['predictions']] == [int(v) for v in logits.argmax(1)]


# ----------------------------------------------------------------------------- bad input

def _corrupt(tmp_path, weights, kind):
    name, params, _, folder = weights
    if kind == 'garbage_params':
        path = tmp_path / 'bad.params'
        path.write_bytes(b'not a params file' * 10)
        return ['--model', name, '--params', str(path)]
    if kind == 'other_model_params':
        other = [n for n in gluon_nets.list_models() if n != name
                 and gluon_nets.get_model_info(n).family != gluon_nets.get_model_info(name).family]
        return ['--model', other[0] if other else name, '--params', params, '--classes', '10']
    if kind == 'truncated_rec':
        from gluon_nets import data
        src = data.dataset_info(DATASET)['val_rec']
        rec = tmp_path / 'val.rec'
        with open(src, 'rb') as f:
            rec.write_bytes(f.read()[:5000])
        shutil.copy(src[:-4] + '.idx', str(tmp_path / 'val.idx'))
        return ['--model', name, '--params', params, '--rec-val', str(rec)]
    if kind == 'bad_npy':
        np.save(str(tmp_path / 'x.npy'), np.zeros((2, 32, 32), np.float32))
        return ['--model', name, '--params', params, '--npy', str(tmp_path / 'x.npy')]
    if kind == 'class_mismatch':
        return ['--model', name, '--params', params, '--classes', '5']
    raise AssertionError(kind)


@pytest.mark.parametrize('argv, message', [
    (['--model', 'no_such_net', '--params', 'x.params'], 'unknown model'),
    (['--params', '/nonexistent/w.params', '--model', 'MODEL'], 'does not exist'),
    (['--model', 'MODEL'], 'needs --params'),
    ([], 'nothing to evaluate'),
    (['--symbol', '/nonexistent/m'], 'no exported graph'),
    (['--onnx', '/nonexistent/m.onnx'], 'no ONNX file'),
    (['--model', 'MODEL', '--params', 'PARAMS', '--dataset', DATASET, '--data-dir', '/tmp'],
     'one data source'),
    (['--model', 'MODEL', '--params', 'PARAMS', '--dataset', 'imagenet-22k'], 'unknown dataset'),
    (['--model', 'MODEL', '--params', 'PARAMS', '--data-dir', '/nonexistent/dir'], '/nonexistent/dir'),
    (['--model', 'MODEL', '--params', 'PARAMS', '--mean', '1,2'], '--mean'),
    ('garbage_params', 'not an MXNet .params file'),
    ('other_model_params', 'does not fit'),
    ('truncated_rec', 'val.rec'),
    ('bad_npy', 'expected (N, 3, H, W)'),
    ('class_mismatch', 'classes'),
])
def test_bad_input_is_a_clear_error(argv, message, weights, tmp_path, capsys):
    name, params, _, _ = weights
    if isinstance(argv, str):
        argv = _corrupt(tmp_path, weights, argv)
    argv = [{'MODEL': name, 'PARAMS': params}.get(a, a) for a in argv]
    assert evaluator.main(argv + ['--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and message in err, err
    assert 'Traceback' not in err


def test_exit_status_from_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, 'eval.py', '--symbol', str(tmp_path / 'missing')],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert 'error: no exported graph' in proc.stderr
    assert 'Traceback' not in proc.stderr


# ----------------------------------------------------------------------------- against others

def test_same_top1_as_the_trainers_last_validation(tmp_path):
    """train_imagenet.py validates after its epoch; eval.py on its checkpoint agrees."""
    if not os.path.isfile(os.path.join(ROOT, 'train_imagenet.py')):
        pytest.skip('train_imagenet.py has not landed')
    name = _cheapest_model()
    run = str(tmp_path / 'run')
    proc = subprocess.run([sys.executable, 'train_imagenet.py', '--model', name, '--dataset', DATASET,
                           '--num-epochs', '1', '--max-iters', '8', '--batch-size', '32',
                           '--save-dir', run, '--no-progress', '--threads', '1', '-j', '0'],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(run, 'metrics.csv')) as f:
        last = list(csv.DictReader(f))[-1]
    report_path = str(tmp_path / 'r.json')
    assert evaluator.main(['--params', os.path.join(run, 'last.params'), '--batch-size', '32',
                           '--json', report_path, '--no-progress']) == 0
    with open(report_path) as f:
        report = json.load(f)
    assert report['data']['num_images'] == 2000
    assert report['top1'] == pytest.approx(float(last['val_top1']), abs=1e-6)
    assert report['top5'] == pytest.approx(float(last['val_top5']), abs=1e-6)
    assert report['loss'] == pytest.approx(float(last['val_loss']), rel=1e-4)


def _menet_reference():
    weights_dir = os.path.join(SHARED, 'reference', 'menet', 'weights')
    checkpoint = os.path.join(weights_dir, '108-MENet-8x1-group-3.pth.tar')
    ref_json = os.path.join(SHARED, 'reference', 'menet', 'pretrained_menet108_8x1_g3.json')
    photos = os.path.join(weights_dir, 'pretrained_input.npy')
    if not all(os.path.isfile(p) for p in (checkpoint, ref_json, photos)):
        pytest.skip('the MENet authors\' checkpoint and photos are not in %s (unlicensed: '
                    'never shipped)' % weights_dir)
    if 'menet108_8x1_g3' not in gluon_nets.list_models():
        pytest.skip('menet108_8x1_g3 is not registered')
    pytest.importorskip('torch')
    return checkpoint, ref_json, photos


@pytest.mark.parametrize('artefact', ['params', 'symbol', 'onnx'])
def test_menet_official_checkpoint_gives_reference_classes(artefact, tmp_path):
    checkpoint, ref_json, photos = _menet_reference()
    from gluon_nets.convert import main as convert
    params = str(tmp_path / 'menet108.params')
    assert convert(['--model', 'menet108_8x1_g3', '--checkpoint', checkpoint, '--out', params]) == 0
    with open(ref_json) as f:
        ref = json.load(f)
    argv = ['--model', 'menet108_8x1_g3', '--params', params]
    if artefact != 'params':
        from symbols.export import main as export
        fmt = ['--format', 'onnx'] if artefact == 'onnx' else []
        assert export(['--model', 'menet108_8x1_g3', '--params', params, '--out',
                       str(tmp_path / 'deploy')] + fmt) == 0
        argv = (['--onnx', str(tmp_path / 'deploy' / 'menet108_8x1_g3.onnx')] if fmt else
                ['--symbol', str(tmp_path / 'deploy' / 'menet108_8x1_g3')])
    report_path = str(tmp_path / 'r.json')
    assert evaluator.main(argv + ['--npy', photos, '--json', report_path, '--no-progress']) == 0
    with open(report_path) as f:
        predictions = json.load(f)['results'][0]['predictions']
    assert [p['top5'] for p in predictions] == ref['top5']
    assert [p['top5'][0] for p in predictions] == [t[0] for t in ref['top5']]
    assert np.allclose([p['prob'][0] for p in predictions], ref['top1_prob'], atol=1e-3)
    assert [p['names'][0] for p in predictions] == [t[0] for t in ref['top5_names']]


# ------------------------------------------------------- multi-crop, interpolation, devices, CSV
def _eval_json(argv, tmp_path, name='r.json'):
    out = str(tmp_path / name)
    assert evaluator.main(argv + ['--no-progress', '--no-optimize', '--json', out]) == 0
    return json.load(open(out))


def _softmax_metrics(logits, labels):
    logits = logits.astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return float((logits.argmax(1) == labels).mean()), float(-np.log(p[np.arange(len(labels)),
                                                                       labels]).mean())


@pytest.mark.parametrize('flag, views', [('--ten-crop', 10), ('--five-crop', 5)])
def test_multi_crop_is_the_mean_of_the_crops_logits(flag, views, weights, tmp_path):
    """eval.py --ten-crop/--five-crop on 2 batches against crops cut here from the
    resized (side ceil(32 / 0.875) = 37) images: 4 corners, centre (and mirrors)."""
    from gluon_nets import data
    name, params, net, _ = weights
    report = _eval_json(['--model', name, '--params', params, flag, '--num-batches', '2',
                         '--batch-size', '16'], tmp_path)
    assert report['data']['crops'] == views
    info = data.dataset_info(DATASET)
    loader = data.val_loader(dataset=DATASET, batch_size=16, input_size=37, crop_ratio=1.0)
    logits, labels = [], []
    for i, (x, y) in enumerate(loader):
        if i == 2:
            break
        x = x.asnumpy()
        crops = [x[:, :, a:a + 32, b:b + 32] for a, b in ((0, 0), (0, 5), (5, 0), (5, 5), (2, 2))]
        if views == 10:
            crops += [c[:, :, :, ::-1] for c in crops]
        logits.append(np.mean([net(mx.nd.array(np.ascontiguousarray(c))).asnumpy()
                               for c in crops], axis=0))
        labels.append(y.asnumpy().astype(int))
    top1, loss = _softmax_metrics(np.concatenate(logits), np.concatenate(labels))
    assert info['input_size'] == 32
    assert report['data']['num_images'] == 32
    assert report['top1'] == pytest.approx(top1, abs=1e-9)
    assert report['loss'] == pytest.approx(loss, rel=1e-4)


def test_interpolation_bicubic_resizes_here(weights, tmp_path):
    """--interpolation bicubic: the images are decoded and resized with OpenCV's cubic
    rule (checked against mx.image here); the report says so."""
    from gluon_nets import data
    name, params, net, _ = weights
    report = _eval_json(['--model', name, '--params', params, '--interpolation', 'bicubic',
                         '--num-batches', '1', '--batch-size', '20'], tmp_path)
    assert report['data']['interpolation'] == 'bicubic' and report['data']['num_images'] == 20
    info = data.dataset_info(DATASET)
    reader = mx.recordio.MXIndexedRecordIO(info['val_rec'][:-4] + '.idx', info['val_rec'], 'r')
    mean = np.array(info['mean'], np.float32).reshape(3, 1, 1)
    std = np.array(info['std'], np.float32).reshape(3, 1, 1)
    images, labels = [], []
    for key in reader.keys[:20]:
        header, raw = mx.recordio.unpack(reader.read_idx(key))
        img = mx.image.resize_short(mx.image.imdecode(raw), 37, interp=2)
        img, _ = mx.image.center_crop(img, (32, 32))
        images.append((img.asnumpy().astype(np.float32).transpose(2, 0, 1) / 255 - mean) / std)
        labels.append(int(np.asarray(header.label).reshape(-1)[0]))
    logits = net(mx.nd.array(np.stack(images))).asnumpy()
    top1, loss = _softmax_metrics(logits, np.array(labels))
    assert report['top1'] == pytest.approx(top1, abs=1e-9)
    assert report['loss'] == pytest.approx(loss, rel=1e-4)
    bilinear = _eval_json(['--model', name, '--params', params, '--num-batches', '1',
                           '--batch-size', '20'], tmp_path, 'b.json')
    assert bilinear['data']['interpolation'] == 'bilinear'
    assert bilinear['loss'] != report['loss']


def test_results_file_appends_rows_and_aliases(weights, tmp_path, capsys):
    name, params, _, _ = weights
    csv_path = tmp_path / 'results.csv'
    common = ['--model', name, '--params', params, '--num-batches', '1', '--no-progress',
              '--no-optimize', '--results-file', str(csv_path)]
    assert evaluator.main(common + ['-j', '0', '--num-classes', '10']) == 0
    assert evaluator.main(common + ['--five-crop', '--num-data-workers', '0',
                                    '--rgb-mean', '55.92,55.92,55.92',
                                    '--rgb-std', '84.74,84.74,84.74']) == 0
    rows = list(csv.DictReader(open(csv_path)))
    assert [r['crops'] for r in rows] == ['1', '5']
    assert rows[0]['num_images'] == '32' and rows[0]['dtype'] == 'float32'
    assert float(rows[0]['top1']) >= 0 and rows[1]['artefact'].startswith(name)
    other = tmp_path / 'other.csv'
    other.write_text('a,b\n1,2\n')
    capsys.readouterr()
    assert evaluator.main(common[:-1] + [str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --results-file') and 'other columns' in err
    assert other.read_text() == 'a,b\n1,2\n'


@pytest.mark.parametrize('extra, message', [
    (['--ctx', 'gpu0'], '--ctx: 1 GPU(s) asked for, 0 visible (this mxnet build: CPU-only)'),
    (['--num-gpus', '2'], '--num-gpus: 2 GPU(s) asked for, 0 visible'),
    (['--ctx', 'tpu3'], "--ctx: cannot read 'tpu3'"),
    (['--num-gpus', '-1'], '--num-gpus must be >= 0'),
    (['--dtype', 'float16'], '--dtype float16 needs a GPU'),
    (['--num-batches', '0'], '--num-batches must be >= 1'),
    (['-j', '-2'], '-j/--num-data-workers must be >= 0'),
    (['--rgb-mean', '1,2'], '--rgb-mean'),
    (['--rgb-std', '50,50,50', '--std', '0.2,0.2,0.2'], 'both given'),
    (['--results-file', 'FILE/r.csv'], '--results-file'),
])
def test_device_dtype_and_subset_flags_fail_clearly_on_cpu(extra, message, weights, capsys,
                                                           tmp_path):
    name, params, _, _ = weights
    (tmp_path / 'file').write_text('a file, not a folder')
    extra = [e.replace('FILE', str(tmp_path / 'file')) for e in extra]
    status = evaluator.main(['--model', name, '--params', params, '--no-progress'] + extra)
    err = capsys.readouterr().err
    assert status == 2 and err.startswith('error: ') and message in err, err
    assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err


@pytest.mark.parametrize('extra, message', [
    (['--ten-crop', '--five-crop'], 'not allowed with argument'),
    (['--interpolation', 'cubic'], "invalid choice: 'cubic'"),
])
def test_crop_and_interpolation_choices_are_checked_by_the_parser(extra, message, capsys):
    with pytest.raises(SystemExit) as stop:
        evaluator.main(['--model', 'x', '--params', 'y'] + extra)
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize('extra, message', [
    (['--ctx', 'gpu0'], '--ctx: 1 GPU(s) asked for, 0 visible (this mxnet build: CPU-only)'),
    (['--num-gpus', '1'], '--num-gpus: 1 GPU(s) asked for'),
    (['--dtype', 'float16'], '--dtype float16 needs a GPU'),
    (['--ctx', 'gpu'], "--ctx: cannot read 'gpu'"),
])
def test_export_device_flags_fail_clearly_on_cpu(extra, message, tmp_path, capsys):
    import importlib
    export_cli = importlib.import_module('symbols.export')
    status = export_cli.main(['--model', _cheapest_model(), '--out', str(tmp_path / 'e')] + extra)
    err = capsys.readouterr().err
    assert status == 2 and err.startswith('error: ') and message in err, err
    assert not os.path.exists(tmp_path / 'e') or not os.listdir(tmp_path / 'e')
