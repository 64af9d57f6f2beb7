"""The deployer JSON: ``gluon_nets.model_zoo.model_record`` -- the structure a run
directory's ``model.json`` has (``model``, ``kwargs``, ``data_config``,
``class_names``) -- plus what a server needs to feed the file.

Written at export time only (it imports gluon_nets when called); the loaders read it
back as plain JSON (``symbols.loaders.read_deploy_info``).
"""
import datetime

from .loaders import INPUT_NAME

__all__ = ['export_data_config', 'deploy_record', 'registry_name']


def registry_name(model, name):
    """The registry name an export describes: ``model`` (which must be registered), else
    the export ``name`` when it is a registered model, else None (a net of your own)."""
    from gluon_nets.model_zoo import get_model_info
    if model:
        return get_model_info(model).canonical_name
    try:
        return get_model_info(name).canonical_name
    except ValueError:
        return None


def export_data_config(model, data_config=None, input_size=None, in_channels=None,
                       **overrides):
    """The ``data_config`` an export records: ``data_config`` (e.g. a run's
    ``model.json``), else the registry entry of ``model``, else ImageNet's; then the
    ``overrides`` that are not None (``mean``, ``std``, ``crop_ratio``,
    ``num_classes``, ``interpolation``), ``input_size`` (int: a square side) and
    ``in_channels``."""
    from gluon_nets.model_zoo import resolve_data_config
    base = resolve_data_config(None, **data_config) if data_config else resolve_data_config(model)
    channels, height, width = base['input_size']
    if input_size is not None:
        height = width = int(input_size)
    if in_channels is not None:
        channels = int(in_channels)
    return resolve_data_config(None, **dict(base, input_size=(channels, height, width),
                                            **{k: v for k, v in overrides.items() if v is not None}))


def deploy_record(format, name, model, kwargs, data_config, class_names, weights, batch,
                  files, checks, producer=None):
    """The deployer JSON of one artefact (a dict; see docs/deploy.md). ``data_config``
    is complete (as :func:`export_data_config`); ``files`` are names inside the output
    folder; ``producer`` adds format-specific versions (e.g. the ONNX opset)."""
    import mxnet as mx
    import gluon_nets
    from gluon_nets.model_zoo import model_record
    channels, height, width = data_config['input_size']
    extra = {
        'format': format,
        'export_name': name,
        'weights': weights or 'unspecified',
        'input_name': INPUT_NAME,
        'input_shape': [int(batch), int(channels), int(height), int(width)],
        'input_dtype': 'float32',
        'layout': 'NCHW',
        'channel_order': 'RGB',
        'preprocessing': 'data_config: shorter side to ceil(size / crop_ratio) (%s), centre '
                         'crop, ((pixel / 255) - mean) / std per RGB channel'
                         % data_config['interpolation'],
        'output': 'logits (N, num_classes); softmax gives probabilities',
        'files': files,
        'checks': checks,
        'gluon_nets_version': gluon_nets.__version__,
        'mxnet_version': mx.__version__,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }
    extra.update(producer or {})
    return model_record(model, kwargs, data_config, class_names, **extra)
