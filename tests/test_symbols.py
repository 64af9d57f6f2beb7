"""symbols/: export -> reload without gluon_nets (bit-identical), oneDNN-fused graph
(within 1e-5), ONNX -> onnxruntime (within 1e-4, or a refusal naming the operator),
INT8, deployer JSON, atomic writes, the CLI.

Zoo coverage is parametrised over ``gluon_nets.list_models()``: by default one
representative per family (its cheapest non-slow model) at the model's smallest input;
every model at its own input size under ``-m full``.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import MXNET_THREADS, ROOT

mx = pytest.importorskip('mxnet')
sys.path.insert(0, ROOT)
import gluon_nets  # noqa: E402
from gluon_nets.model_zoo import cheapest_per_family  # noqa: E402
import symbols  # noqa: E402
import symbols.onnx as onnx_format  # noqa: E402
from symbols.checks import relative_error  # noqa: E402
from symbols.fused import TOLERANCE as FUSED_TOLERANCE  # noqa: E402
from symbols.onnx import TOLERANCE as ONNX_TOLERANCE  # noqa: E402
from mxnet.gluon import nn  # noqa: E402
from mxnet.gluon.block import HybridBlock  # noqa: E402

CLASSES = 10


# ----------------------------------------------------------------------------- helpers

def _model_params():
    chosen = set(cheapest_per_family())
    out = []
    for name in gluon_nets.list_models():
        if name in chosen:
            out.append(pytest.param(name, id=name))
        else:
            out.append(pytest.param(name, id=name, marks=pytest.mark.full))
    return out


@pytest.fixture(autouse=True)
def _full_is_opt_in(request):
    if request.node.get_closest_marker('full') and 'full' not in (request.config.getoption('-m') or ''):
        pytest.skip('every model of a family: run with -m full')


def _size(name, request):
    info = gluon_nets.get_model_info(name)
    if request.node.get_closest_marker('full'):
        return info.input_size
    return max(info.min_input_size, 32)


def _randomise(net, seed=0):
    """Non-trivial BN statistics and affine terms, so that folding BN into the conv
    (fused graph, ONNX) is really exercised."""
    rng = np.random.RandomState(seed)
    for name, param in net.collect_params().items():
        shape = param.shape
        if name.endswith(('running_var', 'moving_var')):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, shape)))
        elif name.endswith(('running_mean', 'moving_mean', 'beta')):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, shape)))
        elif name.endswith('gamma'):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.0, shape)))


def _zoo_net(name, size):
    mx.random.seed(0)
    net = gluon_nets.get_model(name, classes=CLASSES)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net(mx.nd.zeros((1, 3, size, size)))
    _randomise(net)
    return net


def _logits(net, x):
    net.hybridize(static_alloc=True, static_shape=True)
    return net(mx.nd.array(x)).asnumpy()


def _new_entries(directory, before):
    return sorted(set(os.listdir(directory)) - set(before))


# A reload script that cannot import gluon_nets: it checks the artefact needs only mxnet.
RELOAD = textwrap.dedent('''
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "gluon_nets" or name.startswith("gluon_nets.") or name == "gluoncv":
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
    sys.path.insert(0, sys.argv[1])
    import os
    # Module's executor applies the oneDNN subgraph pass by default (fused = not bitwise)
    os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"
    import numpy as np, mxnet as mx
    import symbols
    prefix, x_file, out_file = sys.argv[2], sys.argv[3], sys.argv[4]
    x = np.load(x_file)
    block = symbols.load(prefix)
    via_block = block(mx.nd.array(x)).asnumpy()
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    mod.bind(data_shapes=[("data", x.shape)], for_training=False)
    mod.set_params(args, aux)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
    via_module = mod.get_outputs()[0].asnumpy()
    try:
        import gluon_nets
        leaked = True
    except ImportError:
        leaked = False
    np.savez(out_file, block=via_block, module=via_module, leaked=leaked,
             info=repr(block.deploy_info["model"]))
''')


def _reload_elsewhere(prefix, x, tmp_path):
    np.save(str(tmp_path / 'x.npy'), x)
    script = tmp_path / 'reload.py'
    script.write_text(RELOAD)
    env = dict(os.environ, OMP_NUM_THREADS=MXNET_THREADS)
    proc = subprocess.run([sys.executable, str(script), ROOT, prefix, str(tmp_path / 'x.npy'),
                           str(tmp_path / 'out.npz')], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(str(tmp_path / 'out.npz'))


# ----------------------------------------------------------------------------- a small net
# (not registered: it exercises the operators with exporter quirks whatever families exist)

class _Probe(HybridBlock):
    """conv-BN-ReLU stem, a residual add, a channel shuffle (Reshape with -4/-3 codes),
    bilinear resize with align_corners=False (needs the ONNX half_pixel patch), nearest
    upsampling, concat, SE-style gate (multiply), global pooling, dense."""

    def __init__(self, classes=CLASSES, tail=None, **kwargs):
        super().__init__(**kwargs)
        self.tail = tail
        with self.name_scope():
            self.stem = nn.HybridSequential()
            self.stem.add(nn.Conv2D(12, 3, padding=1, use_bias=False, in_channels=3),
                          nn.BatchNorm(in_channels=12), nn.Activation('relu'))
            self.conv_a = nn.Conv2D(12, 3, padding=1, groups=3, use_bias=False, in_channels=12)
            self.bn_a = nn.BatchNorm(in_channels=12)
            self.relu = nn.Activation('relu')
            self.conv_b = nn.Conv2D(12, 1, use_bias=False, in_channels=12)
            self.bn_b = nn.BatchNorm(in_channels=12)
            self.gate = nn.Conv2D(24, 1, in_channels=24)
            self.sigmoid = nn.Activation('sigmoid')
            self.fc = nn.Dense(classes, in_units=24)

    def hybrid_forward(self, F, x):
        x = self.stem(x)
        y = self.relu(self.bn_a(self.conv_a(x)) + x)
        y = F.reshape(F.swapaxes(F.reshape(y, (0, -4, 3, -1, -2)), 1, 2), (0, -3, -2))
        small = F.Pooling(y, kernel=(3, 3), stride=(3, 3), pool_type='avg')
        up = F.contrib.BilinearResize2D(small, height=14, width=14, align_corners=False)
        coarse = F.UpSampling(F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type='max'),
                              scale=2, sample_type='nearest')
        z = F.concat(self.bn_b(self.conv_b(up)), coarse, dim=1)
        z = F.broadcast_mul(z, self.sigmoid(self.gate(
            F.Pooling(z, global_pool=True, pool_type="avg", kernel=(1, 1)))))
        if self.tail == 'adaptive2':
            z = F.contrib.AdaptiveAvgPooling2D(z, output_size=2)
        elif self.tail == 'like':
            z = F.contrib.BilinearResize2D(z, y, mode='like')
        return self.fc(F.Pooling(z, global_pool=True, pool_type='avg', kernel=(1, 1)))


PROBE_SIZE = 14


def _probe(tail=None):
    mx.random.seed(1)
    net = _Probe(tail=tail)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    _randomise(net, seed=1)
    return net


def _x(batch, size, seed=3):
    return np.random.RandomState(seed).uniform(-2, 2, (batch, 3, size, size)).astype(np.float32)


# ----------------------------------------------------------------------------- probe tests

def test_probe_symbol_reload_is_bit_identical_without_gluon_nets(tmp_path):
    net = _probe()
    info = symbols.export(net, str(tmp_path), 'probe', input_size=PROBE_SIZE, batch=2)
    x = _x(3, PROBE_SIZE)
    want = _logits(net, x)
    got = _reload_elsewhere(str(tmp_path / 'probe'), x, tmp_path)
    assert not got['leaked']
    assert np.array_equal(got['block'], want)
    assert np.array_equal(got['module'], want)
    assert info['checks']['reload_bit_identical'] is True
    with open(info['files']['deploy']) as f:
        deploy = json.load(f)
    assert deploy['input_shape'] == [2, 3, PROBE_SIZE, PROBE_SIZE]
    assert deploy['model'] is None                  # not a registered model
    assert deploy['data_config']['num_classes'] == CLASSES
    assert deploy['data_config']['input_size'] == [3, PROBE_SIZE, PROBE_SIZE]
    assert deploy['data_config']['mean'] == list(symbols.IMAGENET_MEAN)
    assert deploy['gluon_nets_version'] == gluon_nets.__version__
    assert sorted(os.listdir(str(tmp_path))) == sorted(
        ['probe-symbol.json', 'probe-0000.params', 'probe-deploy.json', 'x.npy', 'reload.py',
         'out.npz'])


def test_probe_fused_graph_is_fused_and_close(tmp_path):
    net = _probe()
    info = symbols.export(net, str(tmp_path), 'probe', format='fused', input_size=PROBE_SIZE)
    assert info['checks']['fused_ops'].get('_sg_mkldnn_conv', 0) >= 3
    x = _x(4, PROBE_SIZE)
    fused = symbols.load(str(tmp_path / 'probe-fused'))
    for _ in range(3):   # static memory: MXNet 1.9.1's fused-FC output broke from call 2 on
        assert relative_error(fused(mx.nd.array(x)).asnumpy(), _logits(net, x)) < FUSED_TOLERANCE
    with open(str(tmp_path / 'probe-fused-symbol.json')) as f:
        ops = {n['op'] for n in json.load(f)['nodes']}
    assert '_sg_mkldnn_fully_connected' not in ops and 'FullyConnected' in ops


def test_probe_onnx_matches_onnxruntime_with_patched_resize(tmp_path):
    onnx = pytest.importorskip('onnx')
    net = _probe()
    info = symbols.export(net, str(tmp_path), 'probe', format='onnx', input_size=PROBE_SIZE)
    model = onnx.load(info['files']['onnx'])
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [13]
    resize = [n for n in model.graph.node if n.op_type == 'Resize']
    modes = {a.s for n in resize for a in n.attribute if a.name == 'coordinate_transformation_mode'}
    assert modes == {b'half_pixel'}
    assert info['checks']['onnx_patched_resize_nodes']
    runner = symbols.load_onnx(info['files']['onnx'], threads=1)
    for batch in (1, 5):                       # dynamic batch axis
        x = _x(batch, PROBE_SIZE, seed=batch)
        assert relative_error(runner(x), _logits(net, x)) < ONNX_TOLERANCE


def test_unpatched_resize_would_be_wrong(tmp_path):
    """The half_pixel patch is needed: mxnet 1.9.1's own file differs from MXNet."""
    onnx = pytest.importorskip('onnx')
    net = _probe()
    info = symbols.export(net, str(tmp_path), 'probe', format='onnx', input_size=PROBE_SIZE)
    model = onnx.load(info['files']['onnx'])
    for node in model.graph.node:
        if node.op_type == 'Resize':
            for attr in node.attribute:
                if attr.name == 'coordinate_transformation_mode':
                    attr.s = b'align_corners'
    path = str(tmp_path / 'unpatched.onnx')
    onnx.save(model, path)
    x = _x(2, PROBE_SIZE)
    assert relative_error(symbols.load_onnx(path)(x), _logits(net, x)) > 1e-3


@pytest.mark.parametrize('tail, operator', [
    ('adaptive2', '_contrib_AdaptiveAvgPooling2D'),
    ('like', '_contrib_BilinearResize2D'),
])
def test_onnx_refusal_names_the_operator_and_leaves_nothing(tmp_path, tail, operator):
    pytest.importorskip('onnx')
    net = _probe(tail)
    before = os.listdir(str(tmp_path))
    with pytest.raises(symbols.ExportError, match=operator):
        symbols.export(net, str(tmp_path), 'probe', format='onnx', input_size=PROBE_SIZE)
    assert _new_entries(str(tmp_path), before) == []


def test_failed_check_leaves_no_file(tmp_path, monkeypatch):
    """A failed numeric check aborts the export with nothing written."""
    monkeypatch.setattr(onnx_format, 'TOLERANCE', 0.0)
    with pytest.raises(symbols.ExportError, match='onnxruntime differs'):
        symbols.export(_probe(), str(tmp_path), 'probe', format='onnx', input_size=PROBE_SIZE)
    assert os.listdir(str(tmp_path)) == []


def test_probe_int8_quantizes_and_stays_close(tmp_path):
    net = _probe()
    calib = _x(64, PROBE_SIZE, seed=7)
    info = symbols.export(net, str(tmp_path), 'probe', format='int8', input_size=PROBE_SIZE,
                          calib_data=calib, num_calib_examples=64)
    ops = info['checks']['quantized_ops']
    assert ops.get('_sg_mkldnn_conv', 0) >= 3 and ops.get('_contrib_quantize_v2', 0) >= 1
    assert info['checks']['int8_top1_agreement_on_calibration'] >= 0.9
    block = symbols.load(str(tmp_path / 'probe-int8'))
    x = _x(8, PROBE_SIZE, seed=8)
    for _ in range(3):
        # 8-bit activations of a random net: ~13% of the largest logit; a wrong graph ~100%
        assert relative_error(block(mx.nd.array(x)).asnumpy(), _logits(net, x)) < 0.25


def test_bad_arguments_are_refused(tmp_path):
    net = _probe()
    with pytest.raises(ValueError, match='unknown export format'):
        symbols.export(net, str(tmp_path), 'probe', format='tflite')
    with pytest.raises(ValueError, match='calib'):
        symbols.export(net, str(tmp_path), 'probe', format='int8', input_size=PROBE_SIZE)
    with pytest.raises(ValueError, match='export name'):
        symbols.export(net, str(tmp_path), '../evil', input_size=PROBE_SIZE)
    with pytest.raises(symbols.ExportError, match='does not run on'):
        symbols.export(net, str(tmp_path), 'probe', input_size=PROBE_SIZE, in_channels=4,
                       mean=(0,) * 4, std=(1,) * 4)
    assert [e for e in os.listdir(str(tmp_path)) if not e.startswith('.')] == []
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(FileNotFoundError, match='no exported graph'):
        symbols.load(str(tmp_path / 'missing'))


def test_export_module_is_callable_like_the_function(tmp_path):
    import symbols.export  # noqa: F401  (binds the submodule to symbols.export)
    info = symbols.export(_probe(), str(tmp_path), 'probe', input_size=PROBE_SIZE)
    assert os.path.isfile(info['files']['symbol'])


# ----------------------------------------------------------------------------- the zoo

@pytest.mark.parametrize('name', _model_params())
def test_zoo_export_reload_bit_identical(name, tmp_path, request):
    size = _size(name, request)
    net = _zoo_net(name, size)
    symbols.export(net, str(tmp_path), name, input_size=size, model=name,
                   weights='test: random')
    x = _x(2, size)
    want = _logits(net, x)
    got = _reload_elsewhere(str(tmp_path / name), x, tmp_path)
    assert not got['leaked']
    assert np.array_equal(got['block'], want)
    assert np.array_equal(got['module'], want)


@pytest.mark.parametrize('name', _model_params())
def test_zoo_fused_within_tolerance(name, tmp_path, request):
    size = _size(name, request)
    net = _zoo_net(name, size)
    info = symbols.export(net, str(tmp_path), name, format='fused', input_size=size)
    assert sum(info['checks']['fused_ops'].values()) > 0
    x = _x(2, size, seed=5)
    fused = symbols.load(str(tmp_path / (name + '-fused')))
    for _ in range(2):
        assert relative_error(fused(mx.nd.array(x)).asnumpy(), _logits(net, x)) < FUSED_TOLERANCE


@pytest.mark.parametrize('name', _model_params())
def test_zoo_onnx_matches_or_names_the_operator(name, tmp_path, request):
    pytest.importorskip('onnx')
    size = _size(name, request)
    net = _zoo_net(name, size)
    try:
        info = symbols.export(net, str(tmp_path), name, format='onnx', input_size=size)
    except symbols.ExportError as err:
        assert 'operator' in str(err), str(err)
        assert os.listdir(str(tmp_path)) == []
        pytest.xfail('ONNX refused: %s' % err)
    x = _x(3, size, seed=6)
    runner = symbols.load_onnx(info['files']['onnx'], threads=1)
    assert relative_error(runner(x), _logits(net, x)) < ONNX_TOLERANCE


# ----------------------------------------------------------------------------- CLI

def _cli_model():
    # the package's own families only: other test modules register toy families
    reps = [n for n in cheapest_per_family() if gluon_nets.model_zoo.get_family(
        gluon_nets.get_model_info(n).family).module.startswith('gluon_nets.models')]
    if not reps:
        pytest.skip('no model registered yet')
    return min(reps, key=lambda n: gluon_nets.get_model_info(n).macs or 0)


def test_cli_exports_with_params_and_deploy_json(tmp_path, capsys):
    from symbols.export import main
    name = _cli_model()
    size = max(gluon_nets.get_model_info(name).min_input_size, 32)
    net = _zoo_net(name, size)
    params = str(tmp_path / 'w.params')
    net.save_parameters(params)
    out = str(tmp_path / 'out')
    assert main(['--model', name, '--params', params, '--input-size', str(size),
                 '--out', out, '--batch', '2']) == 0
    with open(os.path.join(out, name + '-deploy.json')) as f:
        deploy = json.load(f)
    assert deploy['model'] == name
    assert deploy['data_config']['num_classes'] == CLASSES            # read from params
    assert deploy['weights'] == os.path.abspath(params)
    assert deploy['input_shape'] == [2, 3, size, size]
    block = symbols.load(os.path.join(out, name))
    x = _x(2, size)
    # the CLI exports the optimized net by default (BN folded): the same function to 1e-5
    assert relative_error(block(mx.nd.array(x)).asnumpy(), _logits(net, x)) <= 1e-5
    plain = str(tmp_path / 'plain')
    assert main(['--model', name, '--params', params, '--input-size', str(size),
                 '--out', plain, '--batch', '2', '--no-optimize']) == 0
    block = symbols.load(os.path.join(plain, name))       # as trained: bit for bit
    assert np.array_equal(block(mx.nd.array(x)).asnumpy(), _logits(net, x))


def _structure(value):
    """Keys and types of a JSON value, values left out."""
    if isinstance(value, dict):
        return {key: _structure(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_structure(v) for v in value]
    return type(value).__name__


def test_export_of_a_run_records_the_runs_data_config(tmp_path):
    """A deployer JSON is the same record as a run directory's model.json: exporting a
    run (``--params RUN_DIR``, no --model) copies its model, kwargs, data_config and
    class names, in the same structure."""
    from gluon_nets.model_zoo import model_record
    from symbols.export import main
    name = _cli_model()
    size = max(gluon_nets.get_model_info(name).min_input_size, 32)
    run = tmp_path / 'run'
    run.mkdir()
    _zoo_net(name, size).save_parameters(str(run / 'last.params'))
    config = dict(gluon_nets.get_model_info(name).data_config, input_size=(3, size, size),
                  mean=(0.25, 0.25, 0.25), std=(0.5, 0.5, 0.5), num_classes=CLASSES)
    names = ['class %d' % i for i in range(CLASSES)]
    run_json = model_record(name, {}, config, names, dataset='fashion-mnist-mini',
                            params='last.params')
    (run / 'model.json').write_text(json.dumps(run_json))
    assert main(['--params', str(run), '--out', str(tmp_path / 'out')]) == 0
    with open(str(tmp_path / 'out' / (name + '-deploy.json'))) as f:
        deploy = json.load(f)
    assert _structure(deploy['data_config']) == _structure(run_json['data_config'])
    assert deploy['data_config'] == json.loads(json.dumps(run_json['data_config']))
    for key in ('model', 'kwargs', 'class_names'):
        assert deploy[key] == run_json[key], key
    # and both read back into the same preprocessing
    from gluon_nets.model_zoo import read_model_record
    assert read_model_record(deploy)['data_config'] == read_model_record(run_json)['data_config']


@pytest.mark.parametrize('name', cheapest_per_family())
def test_class_count_is_read_from_the_registrys_classifier(name):
    """One rule for the class count of a weights file: the output size of the layer the
    registry names as the classifier (a scalenet stage also has a 7-wide weight)."""
    from symbols.zoo import classes_in_params
    from types import SimpleNamespace
    net = gluon_nets.get_model(name, classes=7)      # shapes only: nothing is initialised
    shapes = {key: SimpleNamespace(shape=param.shape)
              for key, param in net._collect_params_with_prefix().items()}
    assert classes_in_params(name, 'unused.params', shapes) == 7
    with pytest.raises(ValueError, match='pass --classes'):
        classes_in_params(name, 'unused.params', {'other.weight': SimpleNamespace(shape=(7, 3))})


def test_export_defaults_to_the_registry_data_config(tmp_path):
    name = _cli_model()
    info = gluon_nets.get_model_info(name)
    size = max(info.min_input_size, 32)
    out = symbols.export(_zoo_net(name, size), str(tmp_path), name, input_size=size)
    want = dict(info.data_config, input_size=(3, size, size), num_classes=CLASSES)
    assert out['data_config'] == {k: list(v) if isinstance(v, tuple) else v
                                  for k, v in want.items()}
    with pytest.raises(ValueError, match='outputs 10 logits'):
        symbols.export(_zoo_net(name, size), str(tmp_path), name, input_size=size, classes=5,
                       overwrite=True)


def test_python_export_never_replaces_an_export_unless_asked(tmp_path):
    from symbols.exporter import ExistingExport
    name = _cli_model()
    size = max(gluon_nets.get_model_info(name).min_input_size, 32)
    first = symbols.export(_zoo_net(name, size), str(tmp_path), name, input_size=size)
    before = {path: open(path, 'rb').read() for path in first['files'].values()}
    with pytest.raises(ExistingExport, match=name + '-symbol.json'):
        symbols.export(_zoo_net(name, size), str(tmp_path), name, input_size=size)
    assert {p: open(p, 'rb').read() for p in before} == before
    assert sorted(os.listdir(str(tmp_path))) == sorted(os.path.basename(p) for p in before)
    # another format has other files: no clash
    symbols.export(_zoo_net(name, size), str(tmp_path), name, input_size=size, format='onnx')
    again = symbols.export(_zoo_net(name, size), str(tmp_path), name, input_size=size,
                           overwrite=True)
    assert sorted(again['files'].values()) == sorted(before)


def test_cli_takes_the_trainers_flag_spellings(tmp_path):
    """One flag vocabulary: --batch-size, --num-classes and --rgb-mean/--rgb-std (0-255,
    train_imagenet.py's) give the same export as --batch, --classes, --mean/--std."""
    from symbols.export import main
    name = _cli_model()
    size = max(gluon_nets.get_model_info(name).min_input_size, 32)
    records = []
    for out, argv in (('a', ['--batch', '2', '--classes', '10', '--mean', '0.5,0.25,0.125',
                             '--std', '0.2,0.2,0.4']),
                      ('b', ['--batch-size', '2', '--num-classes', '10',
                             '--rgb-mean', '127.5,63.75,31.875', '--rgb-std', '51,51,102'])):
        assert main(['--model', name, '--input-size', str(size), '--no-optimize',
                     '--out', str(tmp_path / out)] + argv) == 0
        with open(str(tmp_path / out / (name + '-deploy.json'))) as f:
            records.append(json.load(f))
    for key in ('input_shape', 'data_config'):
        assert records[0][key] == records[1][key], key
    assert records[1]['input_shape'][0] == 2 and records[1]['data_config']['num_classes'] == 10
    assert np.allclose(records[1]['data_config']['mean'], (0.5, 0.25, 0.125))


@pytest.mark.parametrize('argv, message', [
    (['--model', 'no_such_net'], 'unknown model'),
    (['--fuse', '--format', 'onnx'], '--fuse applies'),
    (['--format', 'int8'], 'calibration'),
    (['--params', '/nonexistent.params'], 'does not exist'),
    (['--model-kwargs', '[1]'], 'JSON object'),
    (['--rgb-mean', '1,2,3', '--mean', '0.1,0.1,0.1'], '--rgb-mean and --mean both given'),
    (['--rgb-std', '1,2'], '--rgb-std must be three comma-separated numbers'),
])
def test_cli_bad_input_is_a_clear_error(argv, message, tmp_path, capsys):
    from symbols.export import main
    args = ['--model', _cli_model(), '--out', str(tmp_path / 'out')]
    rc = main(args + argv)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / 'out')) or os.listdir(str(tmp_path / 'out')) == []


def test_cli_subprocess_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'symbols.export', '--model', 'no_such_net',
                           '--out', str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert 'error: unknown model' in proc.stderr


class _BNReLU(HybridBlock):
    """conv -> the fused _contrib_BatchNormWithReLU (as the OctConv models use) -> dense."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(8, 3, padding=1, use_bias=False, in_channels=3)
            self.bn = nn.BatchNorm(in_channels=8)
            self.fc = nn.Dense(CLASSES, in_units=8)

    def hybrid_forward(self, F, x):
        x = self.conv(x)
        params = [self.bn.params.get(n).var() if F is mx.sym else self.bn.params.get(n).data()
                  for n in ('gamma', 'beta', 'running_mean', 'running_var')]
        x = F.contrib.BatchNormWithReLU(x, *params, fix_gamma=False, use_global_stats=True)
        return self.fc(F.Pooling(x, global_pool=True, pool_type='avg', kernel=(1, 1)))


def test_batchnorm_with_relu_is_split_for_onnx_and_fusion(tmp_path):
    pytest.importorskip('onnx')
    net = _BNReLU()
    net.initialize(mx.init.Xavier())
    _randomise(net, seed=2)
    x = _x(3, PROBE_SIZE, seed=9)
    info = symbols.export(net, str(tmp_path), 'bnrelu', format='onnx', input_size=PROBE_SIZE)
    assert info['checks']['bn_relu_split'] == 1
    assert relative_error(symbols.load_onnx(info['files']['onnx'])(x), _logits(net, x)) < ONNX_TOLERANCE
    info = symbols.export(net, str(tmp_path), 'bnrelu', format='fused', input_size=PROBE_SIZE)
    fused = symbols.load(str(tmp_path / 'bnrelu-fused'))
    assert relative_error(fused(mx.nd.array(x)).asnumpy(), _logits(net, x)) < FUSED_TOLERANCE


# ----------------------------------------------------------------------------- OctConv fusion

def _residual_add_graph():
    """``add(bn(conv_a(x) + conv_b(x)), bn(conv_c(x)))`` -- OctConv's residual add, whose
    first operand is not a (batch-normalised) conv output -- and ``add(bn(conv_d(x)), x)``,
    whose conv operand is first already; with parameters for both."""
    x = mx.sym.var('data')

    def conv(name, data):
        return mx.sym.Convolution(data, num_filter=4, kernel=(1, 1), no_bias=True, name=name)
    merged = mx.sym.BatchNorm(conv('a', x) + conv('b', x), name='bn_ab')
    swapped = mx.sym.elemwise_add(merged, mx.sym.BatchNorm(conv('c', x), name='bn_c'), name='add1')
    kept = mx.sym.elemwise_add(mx.sym.BatchNorm(conv('d', swapped), name='bn_d'), swapped,
                               name='add2')
    shapes, _, aux_shapes = kept.infer_shape(data=(2, 4, 5, 5))
    rng = np.random.RandomState(4)
    args = {n: mx.nd.array(rng.uniform(0.5, 1.5, s))
            for n, s in zip(kept.list_arguments(), shapes)}
    aux = {n: mx.nd.array(rng.uniform(0.5, 1.5, s))
           for n, s in zip(kept.list_auxiliary_states(), aux_shapes)}
    return kept, args, aux


def test_conv_operand_first_swaps_only_the_miswired_pattern_and_is_exact(tmp_path, monkeypatch):
    from symbols.rewrites import conv_operand_first
    monkeypatch.setenv('MXNET_SUBGRAPH_BACKEND', 'NONE')     # bind: the plain graph
    sym, args, aux = _residual_add_graph()
    path = str(tmp_path / 'g-symbol.json')
    sym.save(path)
    assert conv_operand_first(path) == 1
    rewritten = mx.sym.load(path)
    with open(path) as f:
        nodes = json.load(f)['nodes']
    add1 = next(n for n in nodes if n['name'] == 'add1')
    assert nodes[add1['inputs'][0][0]]['name'] == 'bn_c'
    assert conv_operand_first(path) == 0                    # idempotent

    def run(s):
        return s.bind(mx.cpu(), args=args, aux_states=aux).forward()[0].asnumpy()
    want = run(sym)
    assert np.array_equal(run(rewritten), want)             # bit for bit
    # the cause, pinned: mxnet 1.9.1's oneDNN pass miswires the original graph's
    # conv+sum fusion, and partitions the rewritten one right
    with pytest.raises(mx.base.MXNetError, match='Shape inconsistent'):
        sym.optimize_for('MKLDNN', args, aux)
    fused = rewritten.optimize_for('MKLDNN', args, aux)
    assert relative_error(run(fused), want) <= FUSED_TOLERANCE


def test_octconv_resnet_fused_export_works_and_is_exact(tmp_path):
    # the smallest OctConv ResNet at 32 px: MXNet 1.9.1's partitioner failed on it (and on
    # every OctConv ResNet/ResNeXt) until conv_operand_first
    name, size = 'oct_resnet26_v1b', 32
    net = _zoo_net(name, size)
    info = symbols.export(net, str(tmp_path), name, format='fused', input_size=size)
    assert info['checks']['conv_operand_first'] >= 1
    assert info['checks']['fused_ops']['_sg_mkldnn_conv'] > 50
    assert info['checks']['fused_max_rel_err'] <= FUSED_TOLERANCE
    x = _x(2, size, seed=6)
    fused = symbols.load(str(tmp_path / (name + '-fused')))
    for _ in range(2):
        assert relative_error(fused(mx.nd.array(x)).asnumpy(), _logits(net, x)) <= FUSED_TOLERANCE


def test_openvino_runs_the_onnx_export_like_onnxruntime(tmp_path):
    pytest.importorskip('onnx')
    pytest.importorskip('openvino')
    from symbols.openvino import load_openvino
    net = _probe()
    info = symbols.export(net, str(tmp_path), 'probe', format='onnx', input_size=PROBE_SIZE)
    model = load_openvino(info['files']['onnx'], threads=1)
    assert model.deploy_info['format'] == 'onnx'
    for batch in (1, 3):                       # one compiled model per input shape
        x = _x(batch, PROBE_SIZE, seed=batch)
        assert relative_error(model(x), _logits(net, x)) < ONNX_TOLERANCE
    with pytest.raises(FileNotFoundError):
        load_openvino(str(tmp_path / 'missing.onnx'))


def test_optimized_octconv_export_has_no_upsampling_and_runs_everywhere(tmp_path):
    # optimize writes OctConv's nearest upsampling as a depthwise Deconvolution: the
    # symbol, fused and ONNX exports of that graph must all stay exact
    pytest.importorskip('onnxruntime')
    import mxnet as mx
    net = gluon_nets.get_model('oct_mobilenet_v1_075', classes=10)
    net.initialize(mx.init.Xavier())
    x = _x(2, 32)
    expected = _logits(net, x)
    for fmt in ('symbol', 'fused', 'onnx'):
        info = symbols.export(net, str(tmp_path), 'oct-' + fmt, format=fmt, input_size=32,
                              optimize=True)
        if fmt == 'symbol':
            with open(info['files']['symbol']) as f:
                ops = {n['op'] for n in json.load(f)['nodes']}
            assert 'Deconvolution' in ops and 'UpSampling' not in ops and 'BatchNorm' not in ops
            out = symbols.load(info['files']['symbol'])(mx.nd.array(x)).asnumpy()
            assert relative_error(out, expected) <= 1e-5
        elif fmt == 'fused':
            assert info['checks']['fused_max_rel_err'] <= FUSED_TOLERANCE
        else:
            model = symbols.load_onnx(info['files']['onnx'], threads=1)
            assert relative_error(model(x), expected) <= 1e-5


def test_optimized_scalenet_exports_to_onnx(tmp_path):
    # optimize leaves ScaleNet's zero-padded weights computed in the graph (Concat with
    # _zeros): the ONNX writer's shape inference needs the parameter shapes for them
    pytest.importorskip('onnxruntime')
    import mxnet as mx
    net = gluon_nets.get_model('scalenet50_light', classes=10)
    net.initialize(mx.init.Xavier())
    info = symbols.export(net, str(tmp_path), 'scalenet', format='onnx', input_size=221,
                          optimize=True)
    assert info['checks']['onnxruntime_max_rel_err'] <= ONNX_TOLERANCE
