"""``symbols.export``: an initialised HybridBlock -> one checked deployable artefact.

Four formats, each written with a deployer JSON (``<stem>-deploy.json``, or
``<stem>.onnx.json`` beside an ONNX file; :mod:`symbols.deploy_record`):

========  ==========================================  ==================================
format    files                                       check made before anything is kept
========  ==========================================  ==================================
symbol    ``<stem>-symbol.json`` + ``-0000.params``    reloaded graph == net, bit for bit
fused     same, oneDNN-partitioned (BN folded,         within 1e-5 relative of ``symbol``;
          conv+act+add fused) when that is faster      partitioned and plain graphs timed,
          than the plain graph, else the plain graph   the faster kept (recorded)
onnx      ``<stem>.onnx`` (opset 13)                   ``onnx.checker`` + onnxruntime within
                                                      1e-4 relative of MXNet
int8      same as symbol, quantized graph              top-1 agreement with float32 recorded
========  ==========================================  ==================================

Everything is written to a temporary folder inside the output folder and renamed into
place only when every check passed, so an error never leaves a half-written or
unchecked artefact behind.
"""
import os
import re
import shutil
import tempfile

from . import fused, int8, onnx, symbol
from .checks import ExportError, check_input, error_line
from .deploy_record import deploy_record, export_data_config, registry_name
from .rewrites import split_bn_relu

__all__ = ['export', 'export_files', 'ExistingExport', 'FORMATS']

FORMATS = ('symbol', 'fused', 'onnx', 'int8')
_WRITERS = {'symbol': symbol.save, 'fused': fused.save, 'onnx': onnx.save, 'int8': int8.save}
_STEM_SUFFIX = {'symbol': '', 'fused': '-fused', 'onnx': '', 'int8': '-int8'}


class ExistingExport(ValueError):
    """``out_dir`` already holds files of this export and ``overwrite`` was not given."""


def export_files(name, format='symbol', stem=None):
    """The file names an export of ``name`` in ``format`` writes (``stem`` as in
    :func:`export`): ``<stem>.onnx`` + ``<stem>.onnx.json`` for ONNX, else
    ``<stem>-symbol.json``, ``<stem>-0000.params`` and ``<stem>-deploy.json``."""
    stem = stem or name + _STEM_SUFFIX[format]
    if format == 'onnx':
        return [stem + '.onnx', stem + '.onnx.json']
    return [stem + '-symbol.json', stem + '-0000.params', stem + '-deploy.json']


def export(net, out_dir, name, format='symbol', input_size=None, batch=1, in_channels=None,
           mean=None, std=None, crop_ratio=None, classes=None, model=None, model_kwargs=None,
           weights=None, class_names=None, data_config=None, calib_data=None,
           num_calib_examples=256, calib_mode='naive', quantize_mode='smart',
           quantize_granularity='channel-wise', stem=None, optimize=False, partition='auto',
           quantized_dtype='auto', exclude_layers=None, overwrite=False):
    """Export an initialised HybridBlock as a deployable artefact.

    Parameters
    ----------
    net : HybridBlock
        Maps (N, C, S, S) float32 images to (N, classes) logits.
    out_dir : str
        Created if missing. Files: see the module docstring.
    name : str
        Used for the file stem (default stem: ``name``, ``name-fused``, ``name``
        (ONNX: ``name.onnx``), ``name-int8``).
    format : 'symbol' | 'fused' | 'onnx' | 'int8'
    data_config : dict, optional
        The preprocessing to record (a run's ``model.json`` ``data_config``); default:
        the registry entry of ``model`` (or of ``name`` when it is a registered model),
        else ImageNet's. ``input_size`` (S), ``in_channels`` (C), ``mean``, ``std``,
        ``crop_ratio`` and ``classes`` override single keys of it.
    batch : int
        Batch of the check input and of the ``input_shape`` recorded for deployers.
        Symbol graphs accept other batch sizes; ONNX is written with a dynamic batch axis.
    classes : int, optional
        The class count to record; default: the net's output size (they must agree).
    model, model_kwargs, weights, class_names
        Recorded in the deployer JSON (``weights`` says where the weights came from).
    calib_data : iterable of (N, C, S, S) arrays, or (data, label) pairs
        int8 only: images (normalised like the training data) whose activation ranges
        calibrate the quantized graph; ``num_calib_examples`` of them are used.
    calib_mode, quantize_mode, quantize_granularity, quantized_dtype
        int8 only: passed to ``mx.contrib.quantization.quantize_net_v2``.
    exclude_layers : None or list of str
        int8 only: layers kept float32 (:func:`symbols.int8.save`): ``'first-conv'``,
        ``'last-conv'``, or node names of the plain graph; None: the int8 default
        (:data:`symbols.int8.DEFAULT_EXCLUDE`).
    partition : 'auto' | 'always'
        fused only: 'auto' times the partitioned graph against the plain one on the
        check input and keeps the partitioned graph only when it is faster by a margin
        (:mod:`symbols.fused`; the deployer JSON records which and both times);
        'always' keeps the partitioned graph.
    overwrite : bool
        Replace an export of the same stem and format already in ``out_dir``; without
        it such files are never touched (:class:`ExistingExport`, before any work).
    optimize : bool
        Export ``gluon_nets.inference.optimize(net)`` (BN folded, family rewrites; within
        1e-5 of ``net``, checked there) instead of ``net``: the checks below then compare
        against the optimized graph. The ``symbols.export`` command line turns it on
        (``--no-optimize`` off).

    Returns
    -------
    dict: the deployer information that was written, with ``files`` (absolute paths,
    the deployer JSON included) and ``checks`` (the numbers measured).

    Raises
    ------
    ExportError naming the operator or the failed check; ValueError for bad arguments;
    ExistingExport (a ValueError) when ``out_dir`` holds this export and not ``overwrite``.
    """
    import mxnet as mx
    from gluon_nets.utils.atomic import write_json_atomic
    if format not in FORMATS:
        raise ValueError('unknown export format %r (one of %s)' % (format, ', '.join(FORMATS)))
    if not re.match(r'^[A-Za-z0-9_.+-]+$', str(name)):
        raise ValueError('export name %r may only hold letters, digits and _.+-' % (name,))
    for label, value in (('input_size', input_size), ('batch', batch), ('in_channels', in_channels)):
        if value is not None and int(value) < 1:
            raise ValueError('%s must be >= 1, got %r' % (label, value))
    model = registry_name(model, name)
    config = export_data_config(model, data_config, input_size=input_size,
                                in_channels=in_channels, mean=mean, std=std,
                                crop_ratio=crop_ratio)
    channels, height, width = config['input_size']
    if height != width:
        raise ValueError('export checks square inputs; data_config input_size is %s'
                         % (config['input_size'],))
    if len(config['mean']) != channels or len(config['std']) != channels:
        raise ValueError('mean and std need %d values each, got %r and %r'
                         % (channels, config['mean'], config['std']))
    if format == 'int8' and calib_data is None:
        raise ValueError('int8 export needs calibration images (calib_data)')
    options = {}
    if format == 'int8':
        options = dict(calib_data=calib_data, num_calib_examples=num_calib_examples,
                       calib_mode=calib_mode, quantize_mode=quantize_mode,
                       quantize_granularity=quantize_granularity,
                       quantized_dtype=quantized_dtype, exclude_layers=exclude_layers)
    elif format == 'fused':
        options = dict(partition=partition)
    stem = stem or name + _STEM_SUFFIX[format]
    found = [f for f in export_files(name, format, stem)
             if os.path.lexists(os.path.join(out_dir, f))]
    if found and not overwrite:
        raise ExistingExport('%s already holds an export named %s (%s): pass overwrite=True '
                             'to replace it' % (out_dir, stem, ', '.join(found)))

    os.makedirs(out_dir, exist_ok=True)
    out_dir = os.path.abspath(out_dir)
    tmp = tempfile.mkdtemp(prefix='.export-%s-' % stem, dir=out_dir)
    try:
        x = check_input(batch, width, channels)
        if optimize:
            from gluon_nets.inference import optimize as optimize_net
            net = optimize_net(net, (batch, channels, height, width), backend=None)
        net.hybridize(static_alloc=True, static_shape=True)
        try:
            ref = net(mx.nd.array(x))
        except Exception as err:  # shape errors from the graph: say which input
            raise ExportError('%s does not run on a (%d, %d, %d, %d) input: %s'
                              % (name, batch, channels, height, width, error_line(err))) from None
        if isinstance(ref, (list, tuple)):
            raise ExportError('%s returns %d outputs; export expects one logits output'
                              % (name, len(ref)))
        ref = ref.asnumpy()
        config['num_classes'] = _class_count(classes, ref, class_names)
        plain = os.path.join(tmp, '.plain')
        net.export(plain)
        checks = {}
        if format == 'fused':
            # the graph as exported, kept when partitioning does not pay (the rewrites
            # below serve the partitioner only)
            original = os.path.join(tmp, '.original')
            shutil.copyfile(plain + '-symbol.json', original + '-symbol.json')
            shutil.copyfile(plain + '-0000.params', original + '-0000.params')
            options['original'] = original
        if format != 'symbol':
            # exact rewrite for the ONNX exporter and the oneDNN passes; checked by the
            # format against ``ref`` like everything else
            split = split_bn_relu(plain + '-symbol.json')
            if split:
                checks['bn_relu_split'] = split
        files = _WRITERS[format](tmp, stem, plain, x, ref, checks, **options)
        files['deploy'] = stem + ('.onnx.json' if format == 'onnx' else '-deploy.json')
        producer = onnx.versions() if format == 'onnx' else None
        if format == 'fused':
            # the file holds the partitioned graph, or the plain one (faster here)
            producer = {'partitioned': checks.get('fused_kept', 'plain') != 'plain'}
        record = deploy_record(format, name, model, model_kwargs, config, class_names, weights,
                               batch, files, checks, producer=producer)
        write_json_atomic(os.path.join(tmp, files['deploy']), record)
        for filename in files.values():
            os.replace(os.path.join(tmp, filename), os.path.join(out_dir, filename))
        record['files'] = {k: os.path.join(out_dir, v) for k, v in files.items()}
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _class_count(classes, ref, class_names):
    """The recorded class count: the net's output size (N, classes) ``ref``, which a
    given ``classes`` and ``class_names`` must match."""
    measured = int(ref.shape[-1])
    if classes is not None and int(classes) != measured:
        raise ValueError('classes=%s, but the net outputs %d logits' % (classes, measured))
    if class_names is not None and len(class_names) != measured:
        raise ValueError('%d class names for a net with %d outputs' % (len(class_names), measured))
    return measured

