"""gluon_nets.data: embedded set, make_rec shards, loaders, clear errors on bad data."""
import os
import shutil

import numpy as np
import pytest

mx = pytest.importorskip('mxnet')
from gluon_nets import data  # noqa: E402
from gluon_nets.data import DataError, make_rec  # noqa: E402


def _tree(root, classes, per_class, size=(40, 30), seed=0):
    import cv2
    rng = np.random.RandomState(seed)
    for c in range(classes):
        os.makedirs(os.path.join(root, 'c%02d' % c), exist_ok=True)
        for i in range(per_class):
            img = np.full(size + (3,), 6 * c, np.uint8) + rng.randint(0, 5, size + (3,)).astype(np.uint8)
            cv2.imwrite(os.path.join(root, 'c%02d' % c, '%d.png' % i), img)
    return root


@pytest.fixture(scope='module')
def shards(tmp_path_factory):
    """40 one-image classes (label == identity) packed into 3 shuffled shards."""
    tmp = tmp_path_factory.mktemp('rec')
    root = _tree(str(tmp / 'tree'), classes=40, per_class=1)
    recs = make_rec.write_shards(root, str(tmp / 'rec' / 'train'), shards=3, resize=32, workers=1)
    return tmp, root, recs


def test_embedded_dataset_is_balanced_and_normalised():
    info = data.dataset_info('fashion-mnist-mini')
    assert info['num_classes'] == 10 and len(info['class_names']) == 10
    assert all(os.path.isfile(p) for p in info['train_rec'] + [info['val_rec']])
    assert os.path.isfile(info['licence'])
    loader = data.val_loader('fashion-mnist-mini', batch_size=300, input_size=32)
    labels, total, sq = [], 0.0, 0.0
    for x, y in loader:
        assert x.shape[1:] == (3, 32, 32) and x.dtype == np.float32
        labels.append(y.asnumpy())
        total += float(x.sum().asscalar())
        sq += float((x ** 2).sum().asscalar())
    labels = np.concatenate(labels).astype(int)
    assert len(labels) == loader.num_samples == 2000 and len(loader) == 7
    assert (np.bincount(labels) == 200).all()
    n = 2000 * 3 * 32 * 32
    assert abs(total / n) < 0.3 and 0.8 < sq / n < 1.4  # roughly zero mean, unit variance (centre crop drops some border)


def test_dataset_info_preprocessing_is_a_data_config():
    from gluon_nets.model_zoo import IMAGENET_DATA_CONFIG, resolve_data_config
    for name in data.list_datasets():
        info = data.dataset_info(name)
        config = info['data_config']
        assert resolve_data_config(None, **config) == config     # the registry's structure
        # the flat keys older callers read are the same values
        assert (info['num_classes'], info['input_size'], info['crop_ratio'], info['mean'],
                info['std']) == (config['num_classes'], config['input_size'][-1],
                                 config['crop_ratio'], config['mean'], config['std'])
    assert data.dataset_info('imagenet')['data_config'] == IMAGENET_DATA_CONFIG
    small = data.dataset_info('fashion-mnist-mini')['data_config']
    assert small['input_size'] == (3, 32, 32) and small['num_classes'] == 10
    small['num_classes'] = 3   # a fresh dict each call
    assert data.dataset_info('fashion-mnist-mini')['data_config']['num_classes'] == 10


def test_class_count_is_one_rule(tmp_path):
    _tree(str(tmp_path / 'tree' / 'train'), classes=3, per_class=1)
    assert data.class_count(7, dataset='fashion-mnist-mini') == 7            # the flag first
    assert data.class_count(data_dir=str(tmp_path / 'tree')) == 3            # then class folders
    assert data.class_count(data_dir=str(tmp_path / 'tree' / 'train')) == 3  # no train/ level
    assert data.class_count(dataset='fashion-mnist-mini') == 10              # then the dataset
    assert data.class_count() == 1000 and data.class_count(default=5) == 5   # then the model's
    with pytest.raises(DataError, match='does not exist'):
        data.class_count(data_dir=str(tmp_path / 'nope'))


def test_train_loader_reseeds_per_epoch_and_drops_partial_batch():
    loader = data.train_loader(batch_size=1000, input_size=32, num_workers=1, seed=3)
    assert len(loader) == 12
    first = np.concatenate([y.asnumpy() for _, y in loader])
    loader.set_epoch(1)
    second = np.concatenate([y.asnumpy() for _, y in loader])
    loader.set_epoch(0)
    again = np.concatenate([y.asnumpy() for _, y in loader])
    assert len(first) == 12000 and (first == again).all() and not (first == second).all()


def test_make_rec_shards_hold_every_image_once(shards):
    tmp, root, recs = shards
    assert len(recs) == 3
    classes = open(str(tmp / 'rec' / 'train') + '-classes.txt').read().split()
    assert classes == sorted(os.listdir(root))
    loader = data.val_loader(rec_val=','.join(recs), batch_size=7, input_size=24, crop_ratio=1.0,
                             mean=(0, 0, 0), std=(1, 1, 1))
    xs, ys = zip(*[(x.asnumpy(), y.asnumpy()) for x, y in loader])
    labels = np.concatenate(ys).astype(int)
    assert sorted(labels.tolist()) == list(range(40))
    # pixel value encodes the class (6 * c + noise < 5): the right image has the right label
    means = np.concatenate(xs).mean(axis=(1, 2, 3)) * 255
    assert np.all(np.abs(means - 6 * labels - 2) < 2)
    # a glob gives the same shards
    assert data.val_loader(rec_val=str(tmp / 'rec' / 'train-*.rec'), input_size=24).num_samples == 40


def test_parts_are_disjoint_and_equal(shards):
    _, _, recs = shards
    seen = []
    for r in range(2):
        loader = data.train_loader(rec_train=recs, batch_size=4, input_size=24, num_workers=1,
                                   num_parts=2, part_index=r)
        labels = np.concatenate([y.asnumpy() for _, y in loader]).astype(int)
        assert len(loader) == 4 and len(labels) == 16 and len(set(labels)) == 16
        seen.append(set(labels))
    assert not seen[0] & seen[1]


def test_image_folder_loader(tmp_path):
    root = _tree(str(tmp_path / 'img'), classes=3, per_class=4)
    os.makedirs(str(tmp_path / 'd'))
    shutil.move(root, str(tmp_path / 'd' / 'train'))
    shutil.copytree(str(tmp_path / 'd' / 'train'), str(tmp_path / 'd' / 'val'))
    tl = data.train_loader(data_dir=str(tmp_path / 'd'), batch_size=5, input_size=16, num_workers=0)
    batches = list(tl)
    assert len(batches) == len(tl) == 2 and batches[0][0].shape == (5, 3, 16, 16)
    vl = data.val_loader(data_dir=str(tmp_path / 'd'), batch_size=5, input_size=16)
    labels = np.concatenate([y.asnumpy() for _, y in vl]).astype(int)
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    with pytest.raises(DataError, match='num-classes 2'):
        data.val_loader(data_dir=str(tmp_path / 'd'), num_classes=2)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(DataError, match='does not exist'):
        data.val_loader(data_dir=str(tmp_path / 'nope'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='is empty'):
        data.val_loader(data_dir=str(tmp_path / 'empty'))
    (tmp_path / 'empty' / 'cls').mkdir()
    with pytest.raises(DataError, match='has no images'):
        data.val_loader(data_dir=str(tmp_path / 'empty'))


def _copy(recs, tmp_path):
    out = []
    for r in recs:
        for ext in ('.rec', '.idx'):
            src = os.path.splitext(r)[0] + ext
            shutil.copy(src, str(tmp_path / os.path.basename(src)))
        out.append(str(tmp_path / os.path.basename(r)))
    return out


def test_bad_record_files_name_file_and_record(shards, tmp_path):
    _, _, recs = shards
    rec = _copy(recs[:1], tmp_path)[0]
    idx = os.path.splitext(rec)[0] + '.idx'
    n = len(open(idx).read().split('\n')) - 1
    size = os.path.getsize(rec)
    with open(rec, 'r+b') as f:  # truncated: the last record is cut off
        f.truncate(size - 10)
    with pytest.raises(DataError, match=r'train-00000\.rec is truncated.*record %d' % (n - 1)):
        data.val_loader(rec_val=rec)
    with open(rec, 'r+b') as f:  # corrupt: record 1's magic number overwritten
        f.seek(int(open(idx).read().split('\n')[1].split('\t')[1]))
        f.write(b'\0\0\0\0')
    with pytest.raises(DataError, match=r'corrupt: record 1 '):
        data.val_loader(rec_val=rec)
    with open(idx, 'a') as f:
        f.write('garbage\n')
    with pytest.raises(DataError, match=r'train-00000\.idx line %d is corrupt' % (n + 1)):
        data.val_loader(rec_val=rec)
    os.remove(idx)
    with pytest.raises(DataError, match=r'index file .*train-00000\.idx .*does not exist'):
        data.val_loader(rec_val=rec)
    with pytest.raises(DataError, match=r'missing\.rec does not exist'):
        data.train_loader(rec_train=str(tmp_path / 'missing.rec'))
    open(str(tmp_path / 'zero.rec'), 'wb').close()
    with pytest.raises(DataError, match=r'zero\.rec is empty'):
        data.train_loader(rec_train=str(tmp_path / 'zero.rec'))


def test_label_beyond_num_classes(shards, tmp_path):
    _, _, recs = shards
    with pytest.raises(DataError, match=r'label \d+ >= --num-classes 10'):
        data.train_loader(rec_train=recs, num_classes=10)


def test_reindex_rebuilds_index(shards, tmp_path):
    _, _, recs = shards
    rec = _copy(recs[1:2], tmp_path)[0]
    idx = os.path.splitext(rec)[0] + '.idx'
    original = open(idx).read()
    os.remove(idx)
    make_rec.reindex(rec)
    assert open(idx).read() == original


def _left_bright_tree(root, images=8):
    """One class of 32x32 images whose left half is white and right half black."""
    import cv2
    os.makedirs(os.path.join(root, 'c0'))
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = 255
    for i in range(images):
        cv2.imwrite(os.path.join(root, 'c0', '%d.png' % i), img)
    return root


@pytest.mark.parametrize('kind', ['folder', 'rec'])
def test_no_flip_keeps_every_training_image_unmirrored(tmp_path, kind):
    """``flip=False`` (--no-flip) leaves out the random horizontal flip; with it some
    of 16 crops of a left-bright image come out right-bright."""
    root = _left_bright_tree(str(tmp_path / 'train'))
    source = dict(data_dir=str(tmp_path)) if kind == 'folder' else dict(
        rec_train=make_rec.write_shards(root, str(tmp_path / 'rec' / 'train'), shards=1,
                                        resize=32, workers=1))
    mirrored = {}
    for flip in (False, True):
        loader = data.train_loader(batch_size=8, input_size=24, num_workers=1, seed=5,
                                   min_random_area=1.0, jitter=0.0, lighting=0.0, flip=flip,
                                   num_classes=1, **source)
        counts = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            for batch, _ in loader:
                x = batch.asnumpy()
                counts += list(x[:, :, :, :12].mean(axis=(1, 2, 3)) < x[:, :, :, 12:].mean(axis=(1, 2, 3)))
        mirrored[flip] = sum(counts)
        assert len(counts) == 16
    assert mirrored[False] == 0 and mirrored[True] > 0, mirrored
