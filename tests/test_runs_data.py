"""Issue 15, data / evaluation / convert / export half: undecodable images are named
(or skipped) instead of killing the process, nothing from a checkpoint runs code, class
lists must agree, and bad output paths / full disks / broken graphs are one-line errors.

Everything is tiny: .rec files of a few dozen records cut from the embedded set, with
corrupt records written as a valid header around garbage JPEG bytes."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

mx = pytest.importorskip('mxnet')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from gluon_nets import data  # noqa: E402
from gluon_nets.data import DataError, check, make_rec  # noqa: E402

GARBAGE_JPEG = b'\xff\xd8\xff\xe0' + bytes(range(256)) * 2   # a JPEG start, then junk
TINY_CNN = '''
from mxnet.gluon import nn
from gluon_nets.model_zoo import list_families, list_models, register_family, register_model


def runs_data_cnn(classes=1000, **kwargs):
    """One conv-BN-ReLU layer and a classifier, (N, 3, H, W) -> (N, classes)."""
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1, in_channels=3), nn.BatchNorm(), nn.Activation('relu'),
            nn.GlobalAvgPool2D(), nn.Dense(classes))
    return net


if 'runs_data_test' not in list_families():
    register_family('runs_data_test', paper='none: a test net')
if 'runs_data_cnn' not in list_models():
    register_model('runs_data_test', name='runs_data_cnn')(runs_data_cnn)
'''


def cut_rec(path, count, bad=(), split='val', start=0):
    """``path`` (.rec + .idx): ``count`` records of the embedded ``split``, those at the
    positions in ``bad`` replaced by a valid header around garbage JPEG bytes."""
    info = data.dataset_info('fashion-mnist-mini')
    src = info['val_rec'] if split == 'val' else info['train_rec'][0]
    reader = mx.recordio.MXIndexedRecordIO(src[:-4] + '.idx', src, 'r')
    writer = mx.recordio.MXIndexedRecordIO(str(path)[:-4] + '.idx', str(path), 'w')
    for i, key in enumerate(reader.keys[start:start + count]):
        record = reader.read_idx(key)
        if i in bad:
            header, _ = mx.recordio.unpack(record)
            record = mx.recordio.pack(header, GARBAGE_JPEG)
        writer.write_idx(i, record)
    writer.close()
    reader.close()
    return str(path)


def image_tree(root, classes, per_class=2, size=(20, 20)):
    import cv2
    rng = np.random.RandomState(0)
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            cv2.imwrite(os.path.join(root, c, '%d.png' % i),
                        rng.randint(0, 255, size + (3,)).astype(np.uint8))
    return str(root)


def labels_of(loader):
    return np.concatenate([y.asnumpy() for _, y in loader]).astype(int).tolist()


# ------------------------------------------------------------------ undecodable images
def test_undecodable_record_is_named_or_skipped_never_a_crash(tmp_path):
    rec = cut_rec(tmp_path / 'val.rec', 24, bad=(5, 17))
    with pytest.raises(DataError) as err:
        data.val_loader(rec_val=rec, batch_size=8, input_size=32, num_classes=10)
    message = str(err.value)
    assert '\n' not in message and rec in message
    assert 'record 5 (key 5)' in message and 'record 17 (key 17)' in message
    assert '--skip-bad-images' in message and 'gluon_nets.data.check' in message
    loader = data.val_loader(rec_val=rec, batch_size=8, input_size=32, num_classes=10,
                             skip_bad_images=True)
    assert [b.index for b in loader.skipped_images] == [5, 17]
    assert loader.num_samples == 22 and len(labels_of(loader)) == 22   # read to the end
    train = cut_rec(tmp_path / 'train.rec', 40, bad=(0,), split='train')
    with pytest.raises(DataError, match='record 0 '):
        data.train_loader(rec_train=train, batch_size=8, input_size=32, num_classes=10,
                          num_workers=1)
    loader = data.train_loader(rec_train=train, batch_size=8, input_size=32, num_classes=10,
                               num_workers=1, skip_bad_images=True)
    assert loader.num_samples == 39 and len(list(loader)) == 4


def test_clean_records_read_exactly_as_before(tmp_path):
    """The decode check changes nothing for clean data (same images, same order)."""
    rec = cut_rec(tmp_path / 'val.rec', 20)
    loader = data.val_loader(rec_val=rec, batch_size=8, input_size=32, num_classes=10)
    assert loader.skipped_images == [] and loader.shards[0].rec == rec
    reader = mx.recordio.MXIndexedRecordIO(rec[:-4] + '.idx', rec, 'r')
    expected = [int(mx.recordio.unpack(reader.read_idx(k))[0].label) for k in reader.keys]
    assert labels_of(loader) == expected


def test_check_cli_lists_bad_records_with_exit_status(tmp_path, capsys):
    bad = cut_rec(tmp_path / 'bad.rec', 12, bad=(3,))
    clean = cut_rec(tmp_path / 'clean.rec', 12)
    assert check.main([bad]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(bad + ' record 3 (key 3): not a decodable image')
    assert out[-1] == '%s: 1 of 12 images undecodable' % bad
    assert check.main([clean]) == 0
    assert 'all 12 images decode' in capsys.readouterr().out
    assert check.main([str(tmp_path / 'missing.rec')]) == 2
    assert capsys.readouterr().err.startswith('error: ')
    tree = image_tree(tmp_path / 'tree', ['a', 'b'])
    (tmp_path / 'tree' / 'b' / 'fake.jpg').write_text('not an image')
    assert check.main([tree]) == 1
    assert os.path.join(tree, 'b', 'fake.jpg') + ': not a decodable image' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        make_rec.main(['--check', bad])
    assert exit_.value.code == 1
    proc = subprocess.run([sys.executable, '-m', 'gluon_nets.data.check', bad], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 1 and 'record 3 (key 3)' in proc.stdout


def test_make_rec_never_writes_an_undecodable_image(tmp_path, capsys):
    tree = image_tree(tmp_path / 'tree', ['a', 'b'], per_class=3)
    (tmp_path / 'tree' / 'a' / 'zero.jpg').write_bytes(b'')
    (tmp_path / 'tree' / 'b' / 'fake.jpg').write_bytes(GARBAGE_JPEG)
    recs = make_rec.write_shards(tree, str(tmp_path / 'rec' / 'all'), resize=0, workers=1)
    err = capsys.readouterr().err
    assert os.path.join(tree, 'a', 'zero.jpg') in err and os.path.join(tree, 'b', 'fake.jpg') in err
    assert 'skipped 2 of 8 images' in err
    total, bad = check.check_path(recs[0])
    assert (total, bad) == (6, [])


def test_folder_with_zero_byte_or_fake_jpg_is_one_line_error(tmp_path):
    root = tmp_path / 'data'
    image_tree(root / 'train', ['a', 'b'], per_class=4)
    image_tree(root / 'val', ['a', 'b'])
    zero = root / 'train' / 'a' / 'zero.jpg'
    zero.write_bytes(b'')
    with pytest.raises(DataError) as err:
        data.train_loader(data_dir=str(root), batch_size=2, input_size=16, num_workers=0)
    assert str(zero) in str(err.value) and 'empty (0 bytes)' in str(err.value)
    assert '\n' not in str(err.value)
    loader = data.train_loader(data_dir=str(root), batch_size=2, input_size=16, num_workers=0,
                               skip_bad_images=True)
    assert loader.num_samples == 8 and [b.where for b in loader.skipped_images] == [str(zero)]
    fake = root / 'val' / 'b' / 'fake.jpg'
    fake.write_text('hello')
    with pytest.raises(DataError, match=str(fake)):
        data.val_loader(data_dir=str(root), batch_size=2, input_size=16)


# ------------------------------------------------------------------ class lists
def test_val_folder_must_have_the_training_classes(tmp_path):
    root = tmp_path / 'data'
    image_tree(root / 'train', ['cat', 'dog', 'fox'])
    image_tree(root / 'val', ['cat', 'fox'])            # lacks dog: fox would become label 1
    with pytest.raises(DataError) as err:
        data.val_loader(data_dir=str(root), batch_size=2, input_size=16,
                        class_names=['cat', 'dog', 'fox'])
    assert 'lacks 1 class(es) of the training tree: dog' in str(err.value)
    image_tree(root / 'val', ['emu'])
    with pytest.raises(DataError, match='does not: emu'):
        data.val_loader(data_dir=str(root), batch_size=2, input_size=16,
                        class_names=['cat', 'dog', 'fox'])
    # a subset matched by name (the evaluator's rule) keeps each class's index
    subset = data.val_loader(data_dir=str(root / 'train'), batch_size=2, input_size=16,
                             class_names=['ant', 'cat', 'dog', 'fox'], class_subset=True)
    assert labels_of(subset) == [1, 1, 2, 2, 3, 3]


def test_make_rec_labels_a_val_tree_by_the_training_class_list(tmp_path, capsys):
    image_tree(tmp_path / 'train', ['cat', 'dog', 'fox'], per_class=1)
    image_tree(tmp_path / 'val', ['cat', 'fox'], per_class=1)
    make_rec.main([str(tmp_path / 'train'), str(tmp_path / 'rec' / 'train'), '--workers', '1'])
    classes = str(tmp_path / 'rec' / 'train-classes.txt')
    make_rec.main([str(tmp_path / 'val'), str(tmp_path / 'rec' / 'val'), '--no-shuffle',
                   '--workers', '1', '--classes', classes])
    loader = data.val_loader(rec_val=str(tmp_path / 'rec' / 'val.rec'), batch_size=2,
                             input_size=16)
    assert labels_of(loader) == [0, 2]           # fox keeps its training label
    image_tree(tmp_path / 'val', ['emu'], per_class=1)
    with pytest.raises(SystemExit) as exit_:
        make_rec.main([str(tmp_path / 'val'), str(tmp_path / 'rec' / 'val2'), '--workers', '1',
                       '--classes', classes])
    assert 'error: ' in str(exit_.value.code) and 'emu' in str(exit_.value.code)


def _train(tmp_path, capsys, *flags):
    """train_imagenet.py in this process (a subprocess would spend most of its time
    importing): (exit status, stdout + stderr)."""
    from gluon_nets.training.trainer import main
    if not (tmp_path / 'runs_data_plugin.py').exists():
        (tmp_path / 'runs_data_plugin.py').write_text(TINY_CNN)
    sys.path.insert(0, str(tmp_path))
    try:
        status = main(['--import-module', 'runs_data_plugin', '--model', 'runs_data_cnn',
                       '--num-epochs', '1', '--max-iters', '2', '-j', '1', '--threads', '1',
                       '--batch-size', '8', '--input-size', '32', '--num-classes', '10',
                       '--no-progress'] + list(flags))
    except SystemExit as exit_:
        status = exit_.code
    finally:
        sys.path.remove(str(tmp_path))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_trainer_stops_before_the_first_epoch_on_a_bad_val_image(tmp_path, capsys):
    train = cut_rec(tmp_path / 'train.rec', 32, split='train')
    val = cut_rec(tmp_path / 'val.rec', 16, bad=(9,))
    run = tmp_path / 'run'
    status, log = _train(tmp_path, capsys, '--rec-train', train, '--rec-val', val,
                         '--save-dir', str(run))
    assert status == 2, log[-2000:]
    lines = [line for line in log.splitlines() if 'error:' in line]
    assert len(lines) == 1 and 'record 9 (key 9)' in lines[0] and val in lines[0]
    assert 'Traceback' not in log
    assert not run.exists() or not [f for f in os.listdir(run) if f.endswith('.params')]
    status, log = _train(tmp_path, capsys, '--rec-train', train, '--rec-val', val,
                         '--save-dir', str(tmp_path / 'run2'), '--skip-bad-images')
    assert status in (0, None), log[-3000:]
    with open(str(tmp_path / 'run2' / 'train_imagenet.log')) as f:
        assert 'left out 1 undecodable validation image' in f.read()
    with open(str(tmp_path / 'run2' / 'metrics.csv')) as f:
        assert len(list(csv.DictReader(f))) == 1


def test_trainer_refuses_a_val_folder_without_a_training_class(tmp_path, capsys):
    root = tmp_path / 'data'
    image_tree(root / 'train', ['cat', 'dog', 'fox'], per_class=8, size=(32, 32))
    image_tree(root / 'val', ['cat', 'fox'], size=(32, 32))
    # -j 0: no DataLoader worker processes forked from the test process
    status, log = _train(tmp_path, capsys, '--data-dir', str(root), '--num-classes', '3',
                         '--save-dir', str(tmp_path / 'run'), '-j', '0')
    assert status == 2, log[-2000:]
    lines = [line for line in log.splitlines() if 'error:' in line]
    assert len(lines) == 1 and 'lacks 1 class(es) of the training tree: dog' in lines[0]


# ------------------------------------------------------------------ evaluation
@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """A run directory as train_imagenet.py leaves it: last.params + model.json with
    class names (the tiny CNN, random weights, 3 classes)."""
    from gluon_nets.model_zoo import model_record
    folder = tmp_path_factory.mktemp('run')
    mx.random.seed(0)
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1, in_channels=3), nn.BatchNorm(), nn.Activation('relu'),
            nn.GlobalAvgPool2D(), nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 16, 16)))
    return folder, net, model_record


def _symbol_export(tmp_path, net, class_names):
    """An exported Symbol graph with a deployer JSON that records ``class_names``."""
    import symbols
    from gluon_nets.model_zoo import resolve_data_config
    config = resolve_data_config(None, input_size=(3, 16, 16), num_classes=len(class_names))
    info = symbols.export(net, str(tmp_path / 'deploy'), 'tiny', data_config=config,
                          class_names=class_names)
    return os.path.join(str(tmp_path / 'deploy'), 'tiny')


def test_eval_labels_a_folder_by_the_saved_class_names(run_dir, tmp_path):
    import eval as evaluator
    _, net, _ = run_dir
    prefix = _symbol_export(tmp_path, net, ['ant', 'bee', 'cat'])
    tree = image_tree(tmp_path / 'val', ['bee', 'cat'])      # a subset, sorted bee < cat
    report_path = str(tmp_path / 'r.json')
    assert evaluator.main(['--symbol', prefix, '--data-dir', tree, '--json', report_path,
                           '--no-progress', '--batch-size', '4']) == 0
    with open(report_path) as f:
        report = json.load(f)
    assert report['data']['num_images'] == 4
    # the labels are the export's indices: bee -> 1, cat -> 2 (not the folder's 0, 1)
    loader = data.val_loader(data_dir=tree, batch_size=4, input_size=16,
                             class_names=['ant', 'bee', 'cat'], class_subset=True)
    assert labels_of(loader) == [1, 1, 2, 2]
    image_tree(tmp_path / 'val', ['dog'])
    assert evaluator.main(['--symbol', prefix, '--data-dir', tree, '--no-progress']) == 2


@pytest.fixture(scope='module')
def export10(tmp_path_factory):
    """An exported 10-class Symbol graph (any input size) with a deployer JSON."""
    import symbols
    from gluon_nets.model_zoo import resolve_data_config
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(10, in_units=3))
    net.initialize(mx.init.Xavier())
    folder = tmp_path_factory.mktemp('export10')
    config = resolve_data_config(None, input_size=(3, 32, 32), num_classes=10)
    symbols.export(net, str(folder), 'm', data_config=config)
    return str(folder / 'm')


def test_eval_bad_image_and_output_paths_fail_before_evaluating(export10, tmp_path, capsys):
    import eval as evaluator
    rec = cut_rec(tmp_path / 'val.rec', 12, bad=(4,))
    argv = ['--symbol', export10, '--rec-val', rec, '--no-progress']
    capsys.readouterr()
    assert evaluator.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'record 4 (key 4)' in err and err.count('\n') == 1
    blocker = tmp_path / 'a-file'
    blocker.write_text('x')
    for flag, target in (('--json', str(blocker / 'r.json')), ('--per-class', str(blocker)),
                         ('--json', str(tmp_path))):
        assert evaluator.main(argv + ['--skip-bad-images', flag, target]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith('error: %s ' % flag) and captured.err.count('\n') == 1
        assert captured.out == ''       # refused before the evaluation printed anything
    report_path = str(tmp_path / 'r.json')
    assert evaluator.main(argv + ['--skip-bad-images', '--json', report_path]) == 0
    assert 'left out 1 undecodable image' in capsys.readouterr().err
    with open(report_path) as f:
        report = json.load(f)
    assert report['data']['num_images'] == 11
    assert report['data']['skipped_images'][0].startswith(rec + ' record 4 (key 4)')


def test_symbol_json_of_an_empty_list_is_a_clear_error(tmp_path, capsys):
    import eval as evaluator
    import symbols
    (tmp_path / 'm-symbol.json').write_text('[]')
    (tmp_path / 'm-0000.params').write_bytes(b'')
    with pytest.raises(ValueError, match='m-symbol.json is not an MXNet symbol JSON: it holds a list'):
        symbols.load(str(tmp_path / 'm'))
    assert evaluator.main(['--symbol', str(tmp_path / 'm'), '--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1


def test_onnx_file_at_another_input_size_is_refused_before_the_loop(tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    import eval as evaluator
    import symbols
    from gluon_nets.model_zoo import resolve_data_config
    from mxnet.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(2, 3, padding=1, in_channels=3), nn.Flatten(), nn.Dense(10))
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 24, 24)))
    config = resolve_data_config(None, input_size=(3, 24, 24), num_classes=10)
    info = symbols.export(net, str(tmp_path / 'deploy'), 'm', format='onnx', data_config=config)
    onnx_file = info['files']['onnx'] if 'onnx' in info['files'] else \
        [p for p in info['files'].values() if p.endswith('.onnx')][0]
    os.remove(onnx_file + '.json')          # no deployer JSON: the data's 32 px are used
    capsys.readouterr()
    assert evaluator.main(['--onnx', onnx_file, '--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
    assert 'takes inputs of shape (None, 3, 24, 24)' in err or '24, 24)' in err


# ------------------------------------------------------------------ convert
def _menet_state():
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from golden import golden_weights, load
    golden = load(os.path.join(ROOT, 'tests', 'data', 'golden', 'menet', 'menet108_8x1_g3.json'))
    return golden_weights(golden['params'])


class _WritesMarker:
    """Unpickling this runs ``open(marker, 'w')``: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickled_checkpoint_never_runs_code_without_trust(tmp_path, capsys):
    torch = pytest.importorskip('torch')
    from gluon_nets.convert import ConversionError, load_checkpoint, main
    marker = tmp_path / 'MARKER'
    state = {k: torch.from_numpy(v) for k, v in _menet_state().items()}
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': state, 'extra': _WritesMarker(str(marker))}, path)
    out = str(tmp_path / 'out.params')
    assert main(['--model', 'menet108_8x1_g3', '--checkpoint', path, '--out', out]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: %s is a legacy pickled checkpoint' % path)
    assert '--trust-checkpoint' in err and err.count('\n') == 1
    assert not marker.exists() and not os.path.exists(out)
    with pytest.raises(ConversionError, match='legacy pickled'):
        load_checkpoint(path)
    assert not marker.exists()
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'not a checkpoint')
    with pytest.raises(ConversionError, match='not a PyTorch checkpoint, or a corrupt one') as err:
        load_checkpoint(str(broken))
    assert 'weights_only' not in str(err.value)    # no advice to unpickle a corrupt file
    # trusted: it is unpickled (so the payload is real) after a warning naming the file
    with pytest.warns(UserWarning, match='evil.pth'):
        load_checkpoint(path, trust=True)
    assert marker.exists()
    marker.unlink()
    assert main(['--model', 'menet108_8x1_g3', '--checkpoint', path, '--out', out,
                 '--trust-checkpoint']) == 0
    assert 'warning: unpickling trusted checkpoint %s' % path in capsys.readouterr().err
    assert os.path.isfile(out)


def test_another_familys_checkpoint_is_summarised_in_one_line(tmp_path, capsys):
    from gluon_nets.convert import main
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from golden import golden_weights, load
    golden_dir = os.path.join(ROOT, 'tests', 'data', 'golden', 'scalenet')
    golden = load(os.path.join(golden_dir, sorted(os.listdir(golden_dir))[0]))
    torch = pytest.importorskip('torch')
    path = str(tmp_path / 'scalenet.pth')
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v))
                for k, v in golden_weights(golden['params']).items()}, path)
    assert main(['--model', 'menet108_8x1_g3', '--checkpoint', path,
                 '--out', str(tmp_path / 'o.params')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and len(err) < 800, err
    assert 'missing (' in err and 'unexpected (' in err and 'another model or family' in err


def test_convert_errors_are_one_line(tmp_path, capsys, monkeypatch):
    from gluon_nets import convert
    junk = tmp_path / 'junk.params'
    junk.write_bytes(os.urandom(500))
    good = tmp_path / 'ok.params'
    mx.nd.save(str(good), {k: mx.nd.array(np.ascontiguousarray(v), dtype='float32')
                           for k, v in _menet_state().items()})
    argv = ['--model', 'menet108_8x1_g3', '--checkpoint']
    assert convert.main(argv + [str(junk), '--out', str(tmp_path / 'o.params')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Invalid NDArray file format' in err
    assert 'Stack trace' not in err and 'Traceback' not in err
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    for out in (blocker / 'o.params', tmp_path):
        assert convert.main(argv + [str(good), '--out', str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: --out ') and err.count('\n') == 1, err
    # a full disk: MXNet's writer stops short; the old output stays as it was
    out = tmp_path / 'o.params'
    out.write_bytes(b'earlier')

    def short_write(net, path):
        raise mx.base.MXNetError('[12:00:00] src/io/local_filesys.cc:54: Check failed: '
                                 'std::fwrite(ptr, 1, size, fp_) == size: FileStream.Write '
                                 'incomplete\nStack trace:\n  [bt] (0) libmxnet.so')
    monkeypatch.setattr(convert, 'save_params_atomic', short_write)
    assert convert.main(argv + [str(good), '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert 'the disk is full' in err and err.count('\n') == 1
    assert out.read_bytes() == b'earlier'


# ------------------------------------------------------------------ export CLI
def test_export_out_path_is_checked_first(tmp_path, capsys):
    from symbols.export import main
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    for out in (blocker, blocker / 'sub'):
        assert main(['--model', 'menet108_8x1_g3', '--out', str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: --out ') and err.count('\n') == 1, err
    assert blocker.read_text() == 'x'


def test_an_existing_export_is_never_replaced_without_overwrite(tmp_path, capsys, monkeypatch):
    from symbols import export as export_cli
    from symbols.export import main
    earlier = {'menet108_8x1_g3-symbol.json': '{"nodes": []}', 'menet108_8x1_g3-0000.params': 'w'}
    for name, text in earlier.items():
        (tmp_path / name).write_text(text)
    calls = []
    monkeypatch.setattr(export_cli, '_export', lambda *a, **k: calls.append(k) or
                        {'model': 'menet108_8x1_g3', 'format': 'symbol', 'checks': {}, 'files': {}})
    argv = ['--model', 'menet108_8x1_g3', '--input-size', '64', '--out', str(tmp_path)]
    assert main(argv) == 2 and not calls
    err = capsys.readouterr().err
    assert err.startswith('error: --out %s already holds an export named menet108_8x1_g3' % tmp_path)
    assert '--overwrite' in err and err.count('\n') == 1
    assert {n: (tmp_path / n).read_text() for n in earlier} == earlier
    assert main(argv + ['--format', 'onnx']) == 0 and len(calls) == 1   # another format: its own files
    assert main(argv + ['--name', 'other']) == 0 and len(calls) == 2
    assert main(argv + ['--overwrite']) == 0 and len(calls) == 3


def test_full_disk_in_an_export_is_one_line(tmp_path, capsys, monkeypatch):
    import errno
    from symbols import export as export_cli
    from symbols.export import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device', str(tmp_path / 'x-symbol.json'))
    monkeypatch.setattr(export_cli, '_export', full)
    assert main(['--model', 'menet108_8x1_g3', '--input-size', '64', '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'the disk is full' in errors[0] and 'x-symbol.json' in errors[0]
    assert 'Traceback' not in err


def test_folder_training_batches_are_a_function_of_seed_and_epoch(tmp_path):
    """--seed --deterministic with image folders: the augmentation runs in forked
    DataLoader workers, whose generators the trainer's reseeding never reaches; each
    image's crop/flip/jitter must come from (seed, epoch, position) only."""
    tree = image_tree(tmp_path / 'train', ['a', 'b'], per_class=4, size=(24, 24))

    def batches(seed, epoch, workers):
        loader = data.train_loader(data_dir=tree, batch_size=4, input_size=16, num_workers=workers,
                                   seed=seed)
        loader.set_epoch(epoch)
        return [x.asnumpy() for x, _ in loader]

    first = batches(3, 1, 1)
    assert all(np.array_equal(a, b) for a, b in zip(first, batches(3, 1, 1)))
    assert all(np.array_equal(a, b) for a, b in zip(first, batches(3, 1, 0)))   # any worker count
    assert not all(np.array_equal(a, b) for a, b in zip(first, batches(3, 2, 1)))


def test_a_truncated_or_foreign_idx_is_refused_not_half_the_data(tmp_path, capsys):
    """An .idx that stops early (cut off, or another file's) used to train silently on
    the records it lists; now it is one error naming both files and the fix."""
    rec = cut_rec(tmp_path / 'train.rec', 24, split='train')
    idx = rec[:-4] + '.idx'
    lines = open(idx).read().splitlines(True)
    with open(idx, 'w') as f:
        f.writelines(lines[:10])
    with pytest.raises(DataError) as err:
        data.train_loader(rec_train=rec, batch_size=4, input_size=16, num_classes=10)
    assert 'lists 10 records' in str(err.value) and '--reindex %s' % rec in str(err.value)
    assert check.main([rec]) == 1
    assert '1 RecordIO file(s) unreadable' in capsys.readouterr().out
    make_rec.main(['--reindex', rec])
    assert len(open(idx).read().splitlines()) == 24
    assert check.main([rec]) == 0


@pytest.mark.parametrize('signum', [2, 15])
def test_eval_stops_on_sigint_or_sigterm_with_one_line(monkeypatch, capsys, signum):
    """eval.py: a signal mid-evaluation was a KeyboardInterrupt traceback (SIGINT) or a
    silent death (SIGTERM); now one line and 128 + signal, handlers restored after."""
    import signal
    import time
    from gluon_nets.evaluation import cli

    def evaluating(argv):
        os.kill(os.getpid(), signum)
        time.sleep(5)
        return 0
    monkeypatch.setattr(cli, '_main', evaluating)
    before = signal.getsignal(signum)
    assert cli.main([]) == 128 + signum
    err = capsys.readouterr().err
    assert err == 'eval.py: stopped by %s\n' % signal.Signals(signum).name
    assert signal.getsignal(signum) is before
