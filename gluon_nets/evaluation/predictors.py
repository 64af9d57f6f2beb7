"""The artefacts to evaluate, each as a :class:`Predictor`: a zoo model with its
``--params`` (and the run's ``model.json``), exported Symbol graphs (``--symbol``) and
ONNX files (``--onnx``), with the model record that says how to feed them."""
import os
import time

from ..model_zoo import get_model_info, read_model_record
from .loop import EvalError

__all__ = ['Predictor', 'load_predictors', 'read_deploy_record']


class Predictor:
    """One artefact: ``label``, ``kind``, ``classes`` (None: unknown until run),
    ``record`` (``model_zoo.read_model_record`` form: the preprocessing it was made
    with, or None), ``model`` (registry name of a ``--model`` net, else None),
    ``min_input_size``; calling it maps an (N, C, H, W) float32 numpy batch to (N,
    classes) numpy logits and adds the time to ``seconds``."""

    def __init__(self, label, kind, fn, classes, record=None, model=None, min_input_size=None):
        self.label, self.kind, self.fn, self.classes = label, kind, fn, classes
        self.record, self.model, self.min_input_size = record, model, min_input_size
        self.seconds = 0.0

    def __call__(self, batch):
        start = time.perf_counter()
        out = self.fn(batch)
        self.seconds += time.perf_counter() - start
        return out


def _mxnet_fn(block, args=None):
    """numpy batch -> numpy logits through ``block`` on the first ``--ctx`` device, cast
    to ``--dtype`` (float16: the logits come back as float32)."""
    import mxnet as mx
    contexts = getattr(args, 'contexts', None) or [mx.cpu()]
    ctx, dtype = contexts[0], getattr(args, 'dtype', 'float32') or 'float32'
    if ctx.device_type != 'cpu':
        block.collect_params().reset_ctx(ctx)
    if dtype != 'float32':
        block.cast(dtype)

    def run(batch):
        out = block(mx.nd.array(batch, ctx=ctx, dtype=dtype))
        return out.astype('float32').asnumpy()    # asnumpy waits for the result
    return run


def read_deploy_record(info, where):
    """A deployer JSON (``symbols.read_deploy_info``) -> ``read_model_record`` form, or
    None. JSONs written before deploy records were model records keep their
    preprocessing in ``preprocess`` and the input size in ``input_shape``."""
    if info is None:
        return None
    if 'data_config' not in info and isinstance(info.get('preprocess'), dict):
        shape = info.get('input_shape') or []
        info = dict(info, kwargs=info.get('model_kwargs'),
                    input_size=shape[-1] if len(shape) == 4 else None,
                    **{k: info['preprocess'].get(k) for k in ('mean', 'std', 'crop_ratio')})
    try:
        return read_model_record(info, where=where)
    except ValueError as err:
        raise EvalError(str(err)) from None


def _zoo_predictor(args):
    from symbols.zoo import build_net, parse_model_kwargs
    info = get_model_info(args.model)
    record = args.run_record
    kwargs = parse_model_kwargs(args.model_kwargs, args.alpha)
    if record and record['model'] == info.canonical_name and args.model_kwargs in (None, '{}'):
        kwargs = dict(record['kwargs'], **kwargs)      # the run's architecture options
    net, _, classes = build_net(info.name, params=args.params, classes=args.classes, **kwargs)
    net.hybridize(static_alloc=True, static_shape=True)
    if not getattr(args, 'no_optimize', False):
        # the exact fast graph (BN folded, family rewrites; within 1e-5, checked) at the
        # input size the run will use
        from ..inference import optimize
        size = args.input_size or (record or {}).get('data_config', {}).get(
            'input_size', info.data_config['input_size'])
        size = size if isinstance(size, int) else size[-1]
        net = optimize(net, (1, 3, size, size))
    return Predictor('%s (%s)' % (info.name, os.path.basename(args.params)), 'gluon',
                     _mxnet_fn(net, args), classes, record, model=info.name,
                     min_input_size=info.min_input_size)


def _symbol_predictor(prefix, args=None):
    import symbols
    from symbols.loaders import strip_prefix
    try:
        block = symbols.load(prefix)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise EvalError(str(err)) from None
    record = read_deploy_record(block.deploy_info, strip_prefix(prefix) + '-deploy.json')
    return Predictor(os.path.basename(strip_prefix(prefix)),
                     block.deploy_info['format'] if block.deploy_info else 'symbol',
                     _mxnet_fn(block, args),
                     record['data_config']['num_classes'] if record else None,
                     record)


def _onnx_predictor(path, threads):
    import symbols
    try:
        model = symbols.load_onnx(path, threads=threads)
    except (FileNotFoundError, ValueError) as err:
        raise EvalError(str(err)) from None
    record = read_deploy_record(model.deploy_info, path + '.json')
    return Predictor(os.path.basename(path), 'onnx', model,
                     record['data_config']['num_classes'] if record else None, record)


def load_predictors(args, threads):
    """[Predictor] for the flags: ``--model`` first, then ``--symbol``, then ``--onnx``
    (``threads``: onnxruntime's intra-op threads)."""
    predictors = [_zoo_predictor(args)] if args.model else []
    predictors += [_symbol_predictor(prefix, args) for prefix in args.symbol]
    predictors += [_onnx_predictor(path, threads) for path in args.onnx]
    return predictors
