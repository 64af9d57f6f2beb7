"""Registry v2: one literal entry per name, generated numbers and docs, data configs,
aliases, patterns, layering, all-or-nothing family imports, and the bottom-layer helpers."""
import ast
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from gluon_nets import model_zoo, summary
from gluon_nets.model_zoo import (IMAGENET_DATA_CONFIG, get_model_info, list_families,
                                  list_models, model_record, read_model_record,
                                  resolve_data_config)

PACKAGE = os.path.join(ROOT, 'gluon_nets')
NAMES = list_models()


def _source_lines(info, around=4):
    path, line = info.source.rsplit(':', 1)
    with open(os.path.join(ROOT, path)) as f:
        lines = f.read().splitlines()
    start = int(line) - 1
    return lines[start:start + around]


@pytest.mark.parametrize('name', NAMES)
def test_every_name_is_a_literal_at_its_registration(name):
    """grep finds every model: its name is written at the line the registry points to."""
    info = get_model_info(name)
    text = '\n'.join(_source_lines(info))
    assert ("'%s'" % name in text) or ('def %s(' % name in text), \
        '%s: %s does not spell the name:\n%s' % (name, info.source, text)


def test_every_name_written_once_in_the_models_package():
    """No name is registered twice in spirit: each appears at exactly one registration."""
    counts = {}
    for dirpath, _, files in os.walk(os.path.join(PACKAGE, 'models')):
        for fname in files:
            if fname.endswith('.py'):
                with open(os.path.join(dirpath, fname)) as f:
                    text = f.read()
                for name in NAMES:
                    hits = text.count("def %s(" % name) + text.count("name='%s'" % name) \
                        + text.count("register_alias('%s'" % name)
                    counts[name] = counts.get(name, 0) + hits
    assert {n: c for n, c in counts.items() if c != 1} == {}


def test_numbers_file_has_exactly_the_registered_models():
    numbers = model_zoo.load_numbers()
    canonical = {n for n in NAMES if not get_model_info(n).alias_of}
    assert set(numbers) == canonical
    for name, row in numbers.items():
        assert row['params'] > 0 and row['macs'] > 0
        assert row['input_size'] == get_model_info(name).input_size


def test_alias_shares_its_target_and_numbers():
    alias = get_model_info('oct_resnet152')
    target = get_model_info('oct_resnet152_v1f')
    assert alias.alias_of == 'oct_resnet152_v1f' and alias.canonical_name == target.name
    assert (alias.params, alias.macs) == (target.params, target.macs)
    assert alias.fn is target.fn and alias.default_kwargs == target.default_kwargs
    assert 'oct_resnet152' not in model_zoo.load_numbers()      # numbers written once


@pytest.mark.parametrize('name', NAMES)
def test_entry_metadata_complete(name):
    info = get_model_info(name)
    config = info.data_config
    assert set(config) == set(IMAGENET_DATA_CONFIG)
    assert config['input_size'] == (3, info.input_size, info.input_size)
    assert 0 < config['crop_ratio'] <= 1
    assert len(config['mean']) == len(config['std']) == 3
    assert all(0 <= m <= 1 for m in config['mean']) and all(0 < s <= 1 for s in config['std'])
    assert config['interpolation'] in ('bilinear', 'bicubic', 'nearest', 'area', 'lanczos')
    assert config['num_classes'] == 1000
    assert info.family in list_families() and info.paper and info.reference
    assert info.classifier and info.converter is not None, '%s: no converter' % name
    assert info.description, '%s: the model function needs a docstring' % name


def test_list_models_patterns():
    oct_resnets = list_models('oct_resnet*')
    assert oct_resnets and all(n.startswith('oct_resnet') for n in oct_resnets)
    assert list_models('octconv') == list_models(family='octconv')      # a family name
    assert list_models('no_such_model*') == []
    without = list_models('oct_resnet*', exclude='*_v1e')
    assert without and not any(n.endswith('_v1e') for n in without)
    assert set(list_models(['menet*', 'scalenet*'])) == \
        set(list_models('menet*')) | set(list_models('scalenet*'))
    assert len(list_models(include_aliases=False)) == len(model_zoo.load_numbers())


def test_resolve_data_config_and_records_round_trip():
    config = resolve_data_config('menet108_8x1_g3', input_size=32, num_classes=10,
                                 mean=(0.5, 0.5, 0.5))
    assert config['input_size'] == (3, 32, 32) and config['num_classes'] == 10
    with pytest.raises(ValueError, match='unknown data_config key'):
        resolve_data_config(None, resolution=3)
    record = model_record('oct_resnet152', {'alpha': 0.125}, config, ['a'] * 10, params='x')
    assert record['model'] == 'oct_resnet152_v1f'                 # canonical name
    back = read_model_record(json.loads(json.dumps(record)))
    assert back['data_config'] == config and back['params'] == 'x'
    legacy = read_model_record({'model': 'm', 'classes': 10, 'input_size': 32,
                                'mean': [0.1] * 3, 'std': [0.2] * 3, 'crop_ratio': 0.9})
    assert legacy['data_config']['num_classes'] == 10
    assert legacy['data_config']['input_size'] == (3, 32, 32)
    with pytest.raises(ValueError, match='run/model.json'):
        read_model_record([], where='run/model.json')


def test_failed_family_import_leaves_registry_unchanged():
    before = (dict(model_zoo._REGISTRY), dict(model_zoo._FAMILIES), dict(model_zoo._CONVERTERS))
    with pytest.raises(ImportError, match='broken_family'):
        with model_zoo.family_import('gluon_nets.models.broken_family'):
            model_zoo.register_family('broken')

            @model_zoo.register_model('broken')
            def broken_net(classes=1000):
                """A model whose module then fails."""
            raise RuntimeError('module body failed after registering')
    after = (dict(model_zoo._REGISTRY), dict(model_zoo._FAMILIES), dict(model_zoo._CONVERTERS))
    assert after == before


def test_register_model_needs_its_family_and_no_pasted_numbers():
    with pytest.raises(ValueError, match='register_family'):
        model_zoo.register_model('no_such_family')(lambda classes=1000: None)
    with pytest.raises(TypeError, match='model_numbers.json'):
        model_zoo.register_model('menet', params=1)


def _run_python(code):
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_import_layers_at_run_time():
    res = _run_python(
        'import sys, gluon_nets.model_zoo\n'
        'print(sorted(m for m in sys.modules if m.startswith(("gluon_nets.models", "mxnet"))))\n'
        'import gluon_nets.models\n'
        'print(sorted(m for m in sys.modules if m.split(".")[:2] in (["gluon_nets", "convert"],'
        ' ["gluon_nets", "training"], ["gluon_nets", "evaluation"], ["gluon_nets", "summary"])'
        ' or m.startswith("symbols")))\n')
    assert res.returncode == 0, res.stderr
    registry_only, after_models = res.stdout.splitlines()
    assert registry_only == '[]'          # the registry imports no family (and no MXNet)
    assert after_models == '[]'           # the families import nothing above them


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ''
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name


def _resolve(path, level, module):
    """Absolute module name of a (possibly relative) import in file ``path``."""
    if level == 0:
        return module
    package = os.path.relpath(os.path.dirname(path), ROOT).split(os.sep)
    base = package[:len(package) - (level - 1)]
    return '.'.join(base + ([module] if module else []))


_ALLOWED = {
    'nn': ('gluon_nets.nn', 'gluon_nets.utils'),
    'utils': ('gluon_nets.utils',),
    'models': ('gluon_nets.nn', 'gluon_nets.utils', 'gluon_nets.model_zoo', 'gluon_nets.models'),
    'model_zoo.py': ('gluon_nets.utils', 'gluon_nets.nn', 'gluon_nets._compat'),
}


@pytest.mark.parametrize('layer', sorted(_ALLOWED))
def test_static_import_layers(layer):
    """A lower layer never imports a higher one (nn, utils <- model_zoo <- models)."""
    root = os.path.join(PACKAGE, layer)
    files = [root] if layer.endswith('.py') else [
        os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith('.py')]
    bad = []
    for path in files:
        for level, module in _imports(path):
            name = _resolve(path, level, module)
            if name.startswith('gluon_nets') and not name.startswith(_ALLOWED[layer]):
                bad.append('%s imports %s' % (os.path.relpath(path, ROOT), name))
    assert bad == []


def test_models_of_one_family_import_no_other_family():
    bad = []
    models = os.path.join(PACKAGE, 'models')
    for dirpath, _, files in os.walk(models):
        for fname in files:
            if not fname.endswith('.py') or fname == '__init__.py' and dirpath == models:
                continue
            path = os.path.join(dirpath, fname)
            rel = os.path.relpath(path, models).split(os.sep)
            own = 'gluon_nets.models.' + (rel[0][:-3] if len(rel) == 1 else rel[0])
            for level, module in _imports(path):
                name = _resolve(path, level, module)
                if name.startswith('gluon_nets.models') and name != 'gluon_nets.models' \
                        and not name.startswith(own) and not (own.startswith('gluon_nets.models.octconv')
                                                              and name.startswith('gluon_nets.models.octconv')):
                    bad.append('%s imports %s' % (os.path.relpath(path, ROOT), name))
    assert bad == []


def test_generated_docs_are_fresh():
    assert summary.stale_docs() == [], 'run: python -m gluon_nets.summary --write-docs'


def test_summary_where_points_at_the_definition(capsys):
    assert summary.main(['--where', 'oct_resnet101_v1e']) == 0
    out = capsys.readouterr().out
    path, line = out.split()[1].rsplit(':', 1)
    with open(os.path.join(ROOT, path)) as f:
        text = '\n'.join(f.read().splitlines()[int(line) - 1:int(line) + 3])
    assert 'oct_resnet101_v1e' in text
    assert summary.main(['--where', 'oct_resnet152']) == 0
    assert 'alias of oct_resnet152_v1f' in capsys.readouterr().out
    assert summary.main(['--where', 'nosuch']) == 2


def test_count_macs_of_non_image_inputs():
    import mxnet as mx
    from gluon_nets.profile import count_macs, count_params
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(32), mx.gluon.nn.Dense(10))
    net.initialize()
    assert count_macs(net, (1, 64)) == 64 * 32 + 32 * 10
    assert count_macs(net, (8, 64)) == 64 * 32 + 32 * 10       # per sample
    assert count_params(net, (1, 64)) == 64 * 32 + 32 + 32 * 10 + 10
    with pytest.raises(ValueError, match='input_shape'):
        count_macs(net, (64,))


# --------------------------------------------------------------------- bottom layer
def test_atomic_write_honours_umask_and_keeps_target_on_failure(tmp_path):
    from gluon_nets.utils.atomic import atomic_path, write_json_atomic
    old = os.umask(0o022)
    try:
        target = tmp_path / 'run' / 'model.json'
        write_json_atomic(str(target), {'a': 1})
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
        with pytest.raises(RuntimeError):
            with atomic_path(str(target)) as tmp:
                with open(tmp, 'w') as f:
                    f.write('half')
                raise RuntimeError('killed mid-write')
        assert json.load(open(target)) == {'a': 1}
        assert os.listdir(target.parent) == ['model.json']        # no temp file left
    finally:
        os.umask(old)


def test_topk_metric():
    from gluon_nets.utils.metrics import TopK, topk_correct
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4]])
    labels = np.array([1, 2, 0])
    assert topk_correct(scores, labels, (1, 2)) == (1, 2)
    assert topk_correct(scores, labels, (1, 5)) == (1, 3)          # k capped at C
    tally = TopK(k=2)
    tally.update(scores[:2], labels[:2])
    tally.update(scores[2:], labels[2:])
    assert (tally.n, tally.top1, tally.topk) == (3, 1 / 3, 2 / 3)


def test_threads_from_argv():
    from gluon_nets.utils import threads
    assert threads.threads_in_argv(['--threads', '3', '--x']) == '3'
    assert threads.threads_in_argv(['--threads=4']) == '4'
    with pytest.raises(threads.ThreadsError, match='positive integer'):
        threads.set_threads('zero')
    res = _run_python('import sys; from gluon_nets.utils.threads import set_threads_from_argv; '
                      'set_threads_from_argv(["--threads", "-1"], prog="x")')
    assert res.returncode == 2 and res.stderr.strip() == \
        'x: error: --threads must be a positive integer, got \'-1\''
