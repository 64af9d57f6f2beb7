"""Octave-convolution building blocks (Chen et al., "Drop an Octave", ICCV 2019).

A feature map is a pair ``(x_high, x_low)``: ``x_low`` has half the height and width of
``x_high``; either part may be absent (``None``). Every block here takes the pair as two
positional arguments and returns a 2-tuple, so blocks chain as ``y = blk(*x)``.

Channel specs
-------------
A channel spec is a tuple ``(c_high, c_low)``; ``-1`` (or any value <= 0) means "this
part does not exist". A plain int ``C`` means ``(C, -1)`` (high only).
:func:`split_channels` turns a total width and a ratio ``alpha`` into a spec the way the
reference does: ``low = int(alpha * C)`` (truncation), ``high = C - low``, zero -> ``-1``.
Which paths a layer has follows from its input and output specs: the first octave layer
(input ``(C, -1)``) has only h->h and h->l, a layer with output ``(C, -1)`` merges the low
part back (h->h and l->h only).

Blocks
------
``OctConv2D(channels, kernel_size, strides=1, padding=0, groups=1, in_channels=(ch, cl),
use_bias=False, ...)``
    The four paths h->h, h->l, l->l, l->h. All internal convolutions have stride 1;
    stride 2 is average pooling (h->h: 2x2 pool then conv; h->l: one 4x4 pool, or two 2x2
    pools with ``h2l_pool='double'``; l->l: 2x2 pool; l->h: conv at low resolution,
    nearest x2 upsampling only when the stride is 1). ``y_high = h2h + l2h``,
    ``y_low = h2l + l2l``.

    Options that select the reference's two API flavours:

    * ``pool_mode``: ``'full'`` (ceil, Gluon API, default) or ``'valid'`` (floor, Symbol API);
      pools never count padding.
    * ``h2l_pool``: ``'single'`` (one ``2s x 2s`` pool, Gluon) or ``'double'`` (2x2 pool of the
      already pooled map, Symbol).
    * ``clip_groups``: ``False`` (every path uses ``groups``, Gluon) or ``True``
      (``min(path_out_channels, groups)`` per path, Symbol).
    * ``bias_mode``: ``'gluon'`` (one bias per output part: on h2h, or on l2h without h2h;
      on h2l, or on l2l without h2l) or ``'symbol'`` (bias only on h2h and h2l).
    * ``depthwise``: ``None`` = detect as the Gluon reference does (``groups == ch + cl``
      with ``-1`` counted as written); ``True``/``False`` to force (the Symbol API never
      detects it). Depthwise layers have only h2h and l2l, with groups = the part's channels.

    Speed: with ``merge=True`` (default) paths that read inputs of the same resolution and
    write the same output part run as ONE convolution over the concatenated inputs (at
    stride 1: h2l + l2l; at stride 2: h2h + l2h and h2l + l2l). This is exact (the weights
    are the concatenation of the paths' weights along the input axis) and has the same
    multiply-adds. Grouped and depthwise layers are never merged. ``upsample='add'`` fuses
    the nearest x2 upsampling of l2h with the addition to h2h into one broadcast add.

    Children (structural names): ``conv_h2h``, ``conv_h2l``, ``conv_l2l``, ``conv_l2h``
    for unmerged paths, ``conv_h`` (= [h2h | l2h] over ``concat(x_h', x_l')``) and
    ``conv_l`` (= [h2l | l2l]) for merged ones. Their Gluon prefixes are ``-h2h_``, ...,
    ``-h_``, ``-l_`` (so with the reference's block prefixes the unmerged parameter names
    equal the reference's ``ParameterDict`` names). :meth:`OctConv2D.param_sources` says
    which reference paths feed each of our parameters; :func:`reference_mapping` uses it
    to map a whole net.

``OctBatchNorm(in_channels=(ch, cl), **bn_kwargs)``
    ``bn_h`` / ``bn_l`` (prefixes ``-h_`` / ``-l_``), a ``gluon.nn.BatchNorm`` per present
    part (eps, momentum, ``use_global_stats`` etc. pass through).
``OctActivation(act='relu')``
    The fused ``Activation`` operator on each part (``'relu6'`` = ``clip(0, 6)``).
``OctPool2D(pool_type, pool_size, strides, padding, ceil_mode, count_include_pad)``
    The same pooling on each part.
``OctSE(channels, in_channels=(ch, cl))``
    Squeeze-excitation over both parts: global average pool each part, concatenate,
    1x1 conv (``conv1``, bias) + ReLU, 1x1 convs (``conv2_h`` / ``conv2_l``, bias) + sigmoid,
    rescale each part. Prefixes ``-conv1_``, ``-conv2-h_``, ``-conv2-l_``.
``oct_add(F, a, b)``, ``oct_concat(F, a, b)``
    Part-wise sum / channel concatenation of two pairs (absent parts pass through).

Reference names
---------------
:func:`reference_mapping(net, style)` gives ``{our structural name: reference key or
((keys...), fn)}`` for a net built from these blocks whose attribute tree mirrors the
reference's: ``style='params'`` uses the Gluon ``ParameterDict`` names (the blocks'
prefixes), ``style='attr'`` the attribute paths that ``save_parameters`` writes
(``L1_B0.conv1.conv_h2h.weight``).
"""
import numpy as np
from mxnet import autograd
from mxnet.gluon import nn
from mxnet.gluon.block import HybridBlock

from .blocks import concat_channels

__all__ = ['split_channels', 'as_parts', 'OctConv2D', 'OctBatchNorm', 'OctActivation',
           'OctPool2D', 'OctSE', 'NormOnlyBatchNorm', 'BatchNormReLU', 'ModeGraphMixin',
           'channel_concat',
           'fused_bn_relu_available', 'oct_add', 'oct_concat',
           'reference_mapping']


def split_channels(channels, alpha):
    """``(high, low)`` spec of ``channels`` at ratio ``alpha``: ``low = int(alpha*C)``
    (truncated as the reference does), ``high = C - low``; an empty part is ``-1``."""
    low = int(alpha * channels)
    high = channels - low
    return (high if high > 0 else -1, low if low > 0 else -1)


def as_parts(spec, what='channels'):
    """Normalise a channel spec to a ``(high, low)`` tuple with ``-1`` for absent parts."""
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ValueError('%s must be an int or a (high, low) pair, got %r' % (what, spec))
        high, low = int(spec[0]), int(spec[1])
    else:
        high, low = int(spec), -1
    if high == 0 or low == 0:
        raise ValueError('%s %r: a part of 0 channels is ambiguous; write -1 for an absent part'
                         % (what, spec))
    return (high if high > 0 else -1, low if low > 0 else -1)


def _present(c):
    return c > 0


def oct_add(F, a, b):
    """Part-wise sum of two (high, low) pairs; a part absent in one passes through."""
    return tuple(x if y is None else (y if x is None else x + y) for x, y in zip(a, b))


def oct_concat(F, a, b):
    """Part-wise channel concatenation of two pairs (:func:`channel_concat`)."""
    return tuple(x if y is None else (y if x is None else channel_concat(F, x, y))
                 for x, y in zip(a, b))


def channel_concat(F, *arrays):
    """Channel concatenation of (N, C_i, H, W) maps.

    In training mode it uses :func:`gluon_nets.nn.concat_channels`: MXNet 1.9.1's oneDNN
    Concat backward fails ("could not construct a sub-memory") when a part starts at a
    channel offset that is not a multiple of the blocked layout (e.g. 24 channels; the
    reference's DenseNet at alpha 0.25 cannot train because of it). In inference the
    plain 4-D oneDNN concat is used. The values are identical either way.
    """
    if len(arrays) == 1:
        return arrays[0]
    if not autograd.is_training():
        return F.concat(*arrays, dim=1)
    return concat_channels(F, *arrays)


def _cat_in(*arrays):
    return np.concatenate(arrays, axis=1)


def _path(path, kind):
    """One path parameter of an octave conv, e.g. ``('h2h', 'weight')``."""
    return (path, kind)


class OctConv2D(HybridBlock):
    """Octave convolution on a (high, low) pair; see the module docstring.

    Parameters
    ----------
    channels : int or (int, int)
        Output spec (an int means high only).
    kernel_size, padding : int
        Shared by all paths (square).
    strides : 1 or 2
    groups : int
    in_channels : int or (int, int)
        Input spec (required: the paths are decided from it).
    use_bias : bool

    Inputs ``x_high`` (N, ch, H, W), ``x_low`` (N, cl, H/2, W/2) (or None);
    outputs the pair for ``channels`` at ``H/s``.
    """

    def __init__(self, channels, kernel_size, strides=1, padding=0, groups=1, in_channels=None,
                 use_bias=False, depthwise=None, pool_mode='full', h2l_pool='single',
                 clip_groups=False, bias_mode='gluon', merge=True, upsample='nearest',
                 weight_initializer=None, prefix=None, params=None):
        super(OctConv2D, self).__init__(prefix=prefix, params=params)
        if in_channels is None:
            raise ValueError('OctConv2D needs in_channels: the paths are decided from it')
        c_h, c_l = as_parts(channels, 'channels')
        in_h, in_l = as_parts(in_channels, 'in_channels')
        if in_h < 0 and in_l < 0:
            raise ValueError('in_channels %r has no part' % (in_channels,))
        if strides not in (1, 2, (1, 1), (2, 2)):
            raise ValueError('octave convolutions support strides 1 and 2 only, got %r'
                             % (strides,))
        s = strides[0] if isinstance(strides, tuple) else strides
        if pool_mode not in ('full', 'valid'):
            raise ValueError("pool_mode must be 'full' or 'valid', got %r" % pool_mode)
        if h2l_pool not in ('single', 'double'):
            raise ValueError("h2l_pool must be 'single' or 'double', got %r" % h2l_pool)
        if bias_mode not in ('gluon', 'symbol'):
            raise ValueError("bias_mode must be 'gluon' or 'symbol', got %r" % bias_mode)
        if upsample not in ('nearest', 'add'):
            raise ValueError("upsample must be 'nearest' or 'add', got %r" % upsample)
        # the Gluon reference sums the spec as written (an absent part counts -1)
        raw_in = [int(v) for v in (in_channels if isinstance(in_channels, (tuple, list))
                                   else (in_channels, -1))]
        if depthwise is None:
            depthwise = groups == raw_in[0] + raw_in[1]
        if depthwise:
            if (c_h, c_l) != (in_h, in_l):
                raise ValueError('depthwise octave conv needs channels == in_channels, got %r vs %r'
                                 % ((c_h, c_l), (in_h, in_l)))
        elif groups > 1:
            for part in (in_h, in_l):
                if _present(part) and part < groups:
                    raise ValueError('in_channels %r: each part needs at least groups=%d channels'
                                     % ((in_h, in_l), groups))
        self.strides = s
        self.kernel_size = kernel_size
        self.padding = padding
        self.in_parts = (in_h, in_l)
        self.out_parts = (c_h, c_l)
        self.depthwise = bool(depthwise)
        self.pool_mode = pool_mode
        self.h2l_pool = h2l_pool
        self.upsample = upsample
        paths = {
            'h2h': _present(in_h) and _present(c_h),
            'h2l': _present(in_h) and _present(c_l) and not depthwise,
            'l2l': _present(in_l) and _present(c_l),
            'l2h': _present(in_l) and _present(c_h) and not depthwise,
        }
        self.paths = paths
        ins = {'h2h': in_h, 'h2l': in_h, 'l2l': in_l, 'l2h': in_l}
        outs = {'h2h': c_h, 'h2l': c_l, 'l2l': c_l, 'l2h': c_h}

        def path_groups(p):
            if depthwise:
                return ins[p]
            return min(outs[p], groups) if clip_groups else groups
        self._groups = {p: path_groups(p) for p in paths}
        for p, on in paths.items():
            if on and (ins[p] % self._groups[p] or outs[p] % self._groups[p]):
                raise ValueError('octave conv path %s: %d -> %d channels cannot be split into '
                                 '%d groups'
                                 % (p, ins[p], outs[p], self._groups[p]))
        # one bias per output part
        if bias_mode == 'gluon':
            bias = {'h2h': use_bias and paths['h2h'], 'l2h': use_bias and not paths['h2h'],
                    'h2l': use_bias and paths['h2l'], 'l2l': use_bias and not paths['h2l']}
        else:
            bias = {'h2h': use_bias, 'h2l': use_bias, 'l2h': False, 'l2l': False}
        self._bias = {p: bool(bias[p] and paths[p]) for p in paths}

        # which paths run merged: same input resolution, same output part, plain groups
        can_merge = merge and not depthwise and all(g == 1 for p, g in self._groups.items()
                                                    if paths[p])
        self.merge_h = can_merge and s == 2 and paths['h2h'] and paths['l2h']
        self.merge_l = can_merge and paths['h2l'] and paths['l2l']

        def conv(cout, cin, g, bias_on, pfx):
            return nn.Conv2D(cout, kernel_size, strides=1, padding=padding, groups=g,
                             use_bias=bias_on, in_channels=cin,
                             weight_initializer=weight_initializer, prefix=pfx)
        self._sources = {}
        with self.name_scope():
            # creation order l2l, l2h, h2l, h2h = the reference's parameter order
            if self.merge_l:
                self.conv_l = conv(c_l, in_h + in_l, 1, self._bias['h2l'] or self._bias['l2l'],
                                   '-l_')
                self._sources['conv_l.weight'] = ((_path('h2l', 'weight'), _path('l2l', 'weight')),
                                                  _cat_in)
                for p in ('h2l', 'l2l'):
                    if self._bias[p]:
                        self._sources['conv_l.bias'] = ((_path(p, 'bias'),), None)
            if self.merge_h:
                self.conv_h = conv(c_h, in_h + in_l, 1, self._bias['h2h'] or self._bias['l2h'],
                                   '-h_')
                self._sources['conv_h.weight'] = ((_path('h2h', 'weight'), _path('l2h', 'weight')),
                                                  _cat_in)
                for p in ('h2h', 'l2h'):
                    if self._bias[p]:
                        self._sources['conv_h.bias'] = ((_path(p, 'bias'),), None)
            for p in ('l2l', 'l2h', 'h2l', 'h2h'):
                if not paths[p] or (self.merge_l and p in ('h2l', 'l2l')) \
                        or (self.merge_h and p in ('h2h', 'l2h')):
                    continue
                setattr(self, 'conv_' + p,
                        conv(outs[p], ins[p], self._groups[p], self._bias[p], '-%s_' % p))
                self._sources['conv_%s.weight' % p] = ((_path(p, 'weight'),), None)
                if self._bias[p]:
                    self._sources['conv_%s.bias' % p] = ((_path(p, 'bias'),), None)

    def param_sources(self):
        """{local structural name: (((path, kind), ...), fn or None)}: which reference
        paths' parameters make each of ours, e.g. ``(('h2h', 'weight'), ('l2h', 'weight'))``;
        ``fn`` concatenates several (reference names: ``<prefix>-h2h_weight`` or
        ``<attr path>.conv_h2h.weight``)."""
        return dict(self._sources)

    def ref_sources(self):
        """:meth:`param_sources` with refs as ``(child attribute, child prefix, param)``."""
        return {local: (tuple(('conv_' + p, '-%s_' % p, k) for p, k in refs), fn)
                for local, (refs, fn) in self._sources.items()}

    def _pool(self, F, x, k):
        return F.Pooling(x, kernel=(k, k), stride=(k, k), pool_type='avg',
                         pooling_convention=self.pool_mode, count_include_pad=False)

    def _up_add(self, F, high, low):
        """high + nearest_x2(low)."""
        if self.upsample == 'add':
            high6 = F.reshape(high, shape=(0, 0, -4, -1, 2, -4, -1, 2))
            low6 = F.expand_dims(F.expand_dims(low, axis=3), axis=5)
            return F.reshape(F.broadcast_add(high6, low6), shape=(0, 0, -3, -3))
        return high + F.UpSampling(low, scale=2, sample_type='nearest')

    def hybrid_forward(self, F, x_high, x_low=None):
        p, s = self.paths, self.strides
        if not _present(self.in_parts[0]):
            x_high = None
        if not _present(self.in_parts[1]):
            x_low = None
        # inputs of each path at its conv's resolution
        xh_s = self._pool(F, x_high, 2) if (s == 2 and x_high is not None) else x_high
        need_h2l = p['h2l']
        if need_h2l:
            if s == 1 or self.h2l_pool == 'double':
                xh_l = self._pool(F, xh_s, 2)
            else:
                xh_l = self._pool(F, x_high, 4)
        xl_s = self._pool(F, x_low, 2) if (s == 2 and p['l2l']) else x_low

        if self.merge_h:
            y_h = self.conv_h(channel_concat(F, xh_s, x_low))
        else:
            y_h = self.conv_h2h(xh_s) if p['h2h'] else None
            if p['l2h']:
                l2h = self.conv_l2h(x_low)
                if s == 1:
                    y_h = (F.UpSampling(l2h, scale=2, sample_type='nearest') if y_h is None
                           else self._up_add(F, y_h, l2h))
                else:
                    y_h = l2h if y_h is None else y_h + l2h
        if self.merge_l:
            y_l = self.conv_l(channel_concat(F, xh_l, xl_s))
        else:
            y_l = self.conv_h2l(xh_l) if p['h2l'] else None
            if p['l2l']:
                l2l = self.conv_l2l(xl_s)
                y_l = l2l if y_l is None else y_l + l2l
        return (y_h, y_l)


class NormOnlyBatchNorm(HybridBlock):
    """BatchNorm without learnable affine parameters (the reference's
    ``BatchNorm(center=False, scale=False)``): only running statistics.

    The reference still holds frozen ``gamma`` (unused: fixed to 1) and ``beta`` (added,
    normally its initial 0). We hold no frozen parameters, so that the parameter count
    is the learnable one; a checkpoint's beta is folded into the running mean when
    converting (``mean - beta * sqrt(var + eps)``: the same inference output).
    """

    def __init__(self, in_channels, epsilon=1e-5, momentum=0.9, use_global_stats=False,
                 axis=1, prefix=None, params=None, **kwargs):
        super(NormOnlyBatchNorm, self).__init__(prefix=prefix, params=params)
        # center/scale are False by construction (OctBatchNorm picks this class for them);
        # the initializers of a net-wide norm_kwargs have no parameter here to initialise
        unknown = set(kwargs) - {'center', 'scale', 'gamma_initializer', 'beta_initializer'}
        if kwargs.get('center') or kwargs.get('scale'):
            raise ValueError('NormOnlyBatchNorm has no affine parameters: center and scale '
                             'must be False')
        if unknown:
            raise TypeError('NormOnlyBatchNorm got unexpected arguments %s' % sorted(unknown))
        self._kw = dict(eps=epsilon, momentum=momentum, fix_gamma=True, axis=axis,
                        use_global_stats=use_global_stats)
        self.running_mean = self.params.get('running_mean', grad_req='null', shape=(in_channels,),
                                            init='zeros', allow_deferred_init=True,
                                            differentiable=False)
        self.running_var = self.params.get('running_var', grad_req='null', shape=(in_channels,),
                                           init='ones', allow_deferred_init=True,
                                           differentiable=False)

    def hybrid_forward(self, F, x, running_mean, running_var):
        ones = F.ones_like(running_var)
        return F.BatchNorm(x, ones, F.zeros_like(running_var), running_mean, running_var,
                           name='fwd', **self._kw)

    def ref_sources(self):
        """{local name: (refs, fn)}, refs ``(child attribute, child prefix, param)``."""
        eps = self._kw['eps']

        def fold(mean, var, beta):
            return mean - beta * np.sqrt(var + eps)
        return {'running_mean': (((None, '', 'running_mean'), (None, '', 'running_var'),
                                  (None, '', 'beta')), fold),
                'running_var': (((None, '', 'running_var'),), None)}

    def ignored_sources(self):
        return [(None, '', 'gamma')]


def fused_bn_relu_available():
    """True where ``contrib.BatchNormWithReLU`` runs: MXNet built with oneDNN (MKLDNN),
    used on CPU (the operator has no GPU kernel, so any visible GPU turns it off)."""
    global _FUSED
    if _FUSED is None:
        import mxnet as mx
        try:
            _FUSED = bool(mx.runtime.Features().is_enabled('MKLDNN')) and mx.context.num_gpus() == 0
        except Exception:  # pylint: disable=broad-except
            _FUSED = False
    return _FUSED


_FUSED = None


class BatchNormReLU(nn.BatchNorm):
    """``relu(BatchNorm(x))``; in inference one oneDNN operator
    (``contrib.BatchNormWithReLU``: the same result in one pass over the tensor instead
    of two). In training mode it is BatchNorm + Activation, because the fused operator's
    backward fails on some layouts in MXNet 1.9.1 ("could not construct a sub-memory").

    The choice is made when the graph is built: a hybridized net must rebuild its graph
    when it switches between training and inference (see :class:`ModeGraphMixin`).
    """

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        if autograd.is_training():
            y = F.BatchNorm(x, gamma, beta, running_mean, running_var, name='fwd', **self._kwargs)
            return F.Activation(y, act_type='relu')
        return F.contrib.BatchNormWithReLU(x, gamma, beta, running_mean, running_var,
                                           name='fwd', **self._kwargs)


class ModeGraphMixin(object):
    """For a top-level HybridBlock holding :class:`BatchNormReLU` layers: drop the cached
    graph when the autograd mode (training / inference) differs from the one it was
    built in, so that each mode runs its own graph (a rebuild per switch, e.g. once per
    epoch for validation)."""

    def forward(self, x, *args):
        mode = autograd.is_training()
        if getattr(self, '_graph_mode', mode) != mode:
            self._clear_cached_op()
        self._graph_mode = mode
        return super(ModeGraphMixin, self).forward(x, *args)


class OctBatchNorm(HybridBlock):
    """BatchNorm on each present part (``bn_h`` / ``bn_l``); kwargs go to gluon BatchNorm.
    ``center=False, scale=False`` gives :class:`NormOnlyBatchNorm` parts. ``act='relu'``
    applies ReLU after the BN, fused into it (:class:`BatchNormReLU`) when
    ``fuse`` (default: :func:`fused_bn_relu_available`)."""

    def __init__(self, in_channels, act=None, fuse=None, prefix=None, params=None, **kwargs):
        super(OctBatchNorm, self).__init__(prefix=prefix, params=params)
        c_h, c_l = as_parts(in_channels, 'in_channels')
        norm_only = kwargs.get('center', True) is False and kwargs.get('scale', True) is False
        if act not in (None, 'relu'):
            raise ValueError("OctBatchNorm act must be None or 'relu', got %r" % (act,))
        if fuse is None:
            fuse = fused_bn_relu_available()
        self.act = act
        self.fused = bool(act and fuse and not norm_only)
        bn = NormOnlyBatchNorm if norm_only else (BatchNormReLU if self.fused else nn.BatchNorm)
        with self.name_scope():
            if _present(c_h):
                self.bn_h = bn(in_channels=c_h, prefix='-h_', **kwargs)
            if _present(c_l):
                self.bn_l = bn(in_channels=c_l, prefix='-l_', **kwargs)
        self.parts = (c_h, c_l)

    def hybrid_forward(self, F, x_high, x_low=None):
        out = (self.bn_h(x_high) if _present(self.parts[0]) else None,
               self.bn_l(x_low) if _present(self.parts[1]) else None)
        if self.act and not self.fused:
            out = tuple(None if y is None else F.Activation(y, act_type=self.act) for y in out)
        return out


class OctActivation(HybridBlock):
    """The same activation on both parts: the fused ``Activation`` operator for
    relu / sigmoid / tanh / softrelu / softsign, ``clip(0, 6)`` for ``'relu6'``."""

    def __init__(self, act='relu', **kwargs):
        super(OctActivation, self).__init__(**kwargs)
        if act not in ('relu', 'relu6', 'sigmoid', 'tanh', 'softrelu', 'softsign'):
            raise ValueError('unknown activation %r' % act)
        self.act = act

    def _f(self, F, x):
        if x is None:
            return None
        if self.act == 'relu6':
            return F.clip(x, 0, 6)
        return F.Activation(x, act_type=self.act)

    def hybrid_forward(self, F, x_high, x_low=None):
        return (self._f(F, x_high), self._f(F, x_low))


class OctPool2D(HybridBlock):
    """The same pooling (``'avg'`` or ``'max'``) on each part."""

    def __init__(self, pool_type, pool_size, strides=None, padding=0, ceil_mode=False,
                 count_include_pad=False, **kwargs):
        super(OctPool2D, self).__init__(**kwargs)
        if pool_type not in ('avg', 'max'):
            raise ValueError("pool_type must be 'avg' or 'max', got %r" % pool_type)
        strides = pool_size if strides is None else strides
        self._kw = dict(kernel=(pool_size, pool_size), stride=(strides, strides),
                        pad=(padding, padding), pool_type=pool_type,
                        pooling_convention='full' if ceil_mode else 'valid')
        if pool_type == 'avg':
            self._kw['count_include_pad'] = count_include_pad

    def hybrid_forward(self, F, x_high, x_low=None):
        return tuple(None if x is None else F.Pooling(x, **self._kw) for x in (x_high, x_low))


class OctSE(HybridBlock):
    """Squeeze-excitation over a pair; ``channels`` = hidden width."""

    def __init__(self, channels, in_channels, prefix=None, params=None):
        super(OctSE, self).__init__(prefix=prefix, params=params)
        c_h, c_l = as_parts(in_channels, 'in_channels')
        total = sum(c for c in (c_h, c_l) if _present(c))
        self.parts = (c_h, c_l)
        with self.name_scope():
            self.conv1 = nn.Conv2D(channels, 1, in_channels=total, prefix='-conv1_')
            if _present(c_h):
                self.conv2_h = nn.Conv2D(c_h, 1, in_channels=channels, prefix='-conv2-h_')
            if _present(c_l):
                self.conv2_l = nn.Conv2D(c_l, 1, in_channels=channels, prefix='-conv2-l_')

    def hybrid_forward(self, F, x_high, x_low=None):
        pooled = [F.contrib.AdaptiveAvgPooling2D(x, output_size=1)
                  for x, c in zip((x_high, x_low), self.parts) if _present(c)]
        z = pooled[0] if len(pooled) == 1 else F.concat(*pooled, dim=1)
        z = F.Activation(self.conv1(z), act_type='relu')
        out = []
        for x, c, name in zip((x_high, x_low), self.parts, ('conv2_h', 'conv2_l')):
            if _present(c):
                w = F.Activation(getattr(self, name)(z), act_type='sigmoid')
                out.append(F.broadcast_mul(x, w))
            else:
                out.append(None)
        return tuple(out)


def reference_mapping(net, style='params', prefix='', ignored=None):
    """``{our structural name: reference key | ((keys...), fn)}`` for ``net``.

    ``style='params'``: reference keys are Gluon ``ParameterDict`` names (our prefixes are
    the reference's, and an octave conv path ``p`` of a conv with prefix ``P`` is
    ``P-p_weight``). ``style='attr'``: keys are the attribute paths of the reference's
    ``save_parameters`` files (our attribute tree mirrors the reference's; a path is
    ``<conv>.conv_p.weight``). Blocks with a ``ref_sources()`` method say themselves
    where their parameters come from; reference keys they deliberately drop are added to
    the set ``ignored`` when one is given.
    """
    if style not in ('params', 'attr'):
        raise ValueError("style must be 'params' or 'attr', got %r" % style)
    out = {}

    def key(block, path, ref):
        attr, pfx, pname = ref
        if style == 'params':
            return '%s%s%s' % (block.prefix, pfx, pname)
        return '%s%s%s' % (path, attr + '.' if attr else '', pname)

    def walk(block, path):
        if hasattr(block, 'ref_sources'):
            for local, (refs, fn) in block.ref_sources().items():
                keys = tuple(key(block, path, r) for r in refs)
                out[path + local] = (keys, fn) if fn is not None else keys[0]
            if ignored is not None and hasattr(block, 'ignored_sources'):
                ignored.update(key(block, path, r) for r in block.ignored_sources())
            return
        for pname, param in block._reg_params.items():
            out[path + pname] = param.name if style == 'params' else path + pname
        for cname, child in block._children.items():
            walk(child, '%s%s.' % (path, cname))

    walk(net, prefix)
    return out
