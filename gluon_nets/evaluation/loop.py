"""The evaluation loop: every artefact on the same batches, one :class:`Tally` each."""
import sys

import numpy as np

from ..utils.metrics import TopK

__all__ = ['EvalError', 'Tally', 'evaluate']


class EvalError(ValueError):
    """Bad flags, weights or data for an evaluation (the message names the problem)."""


class Tally:
    """Running numbers of one artefact: top-1 / top-5 (:class:`~gluon_nets.utils.metrics.TopK`),
    summed cross-entropy, the (classes, classes) confusion matrix (row: true class,
    column: top-1 prediction) and, on request, each image's top-5 with probabilities."""

    def __init__(self, classes, k=5):
        self.classes = classes
        self.k = min(k, classes)
        self.topk = TopK(k=self.k)
        self.n = 0
        self.loss_sum = 0.0
        self.labelled = True
        self.confusion = np.zeros((classes, classes), dtype=np.int64)
        self.predictions = []

    def add(self, logits, labels, keep_predictions=False):
        """Count (N, classes) ``logits`` against (N,) ``labels`` (None: unlabelled images)."""
        logits = logits.astype(np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        if keep_predictions:
            # stable order: ties go to the lower class index, as in the top-k tally
            order = np.argsort(-logits, axis=1, kind='stable')[:, :self.k]
            for row, lp in zip(order, log_prob):
                self.predictions.append({'top5': [int(c) for c in row],
                                         'prob': [float(np.exp(lp[c])) for c in row]})
        self.n += len(logits)
        if labels is None:
            self.labelled = False
            return
        labels = labels.astype(np.int64)
        self.topk.update(logits, labels)
        self.loss_sum += float(-log_prob[np.arange(len(labels)), labels].sum())
        np.add.at(self.confusion, (labels, logits.argmax(axis=1)), 1)

    def summary(self):
        """{'top1', 'top5', 'loss'}: fractions and mean loss, None without labels."""
        if not (self.labelled and self.n):
            return {'top1': None, 'top5': None, 'loss': None}
        return {'top1': self.topk.top1, 'top5': self.topk.topk, 'loss': self.loss_sum / self.n}


def evaluate(predictors, batches, classes, num_images=None, progress=True,
             keep_predictions=False, pad_to=None, max_batches=None):
    """Run every predictor on every batch; returns one :class:`Tally` per predictor.

    batches : iterable of (images (N, C, H, W) float32 numpy, labels (N,) or None).
    pad_to : batch size; a smaller last batch is padded (and the padding dropped) so that
    static-shape graphs see one shape. max_batches : stop after that many batches.
    """
    from tqdm import tqdm
    tallies = [Tally(classes) for _ in predictors]
    bar = tqdm(total=num_images, unit='img', disable=not progress, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    try:
        for index, (images, labels) in enumerate(batches):
            if max_batches is not None and index >= max_batches:
                break
            n = len(images)
            if labels is not None:
                bad = (labels < 0) | (labels >= classes) | (labels != np.floor(labels))
                if bad.any():
                    raise EvalError('batch %d has label %r outside the model\'s %d classes'
                                    % (index, labels[bad][0], classes))
            feed = images
            if pad_to and n < pad_to:
                feed = np.concatenate([images, np.repeat(images[-1:], pad_to - n, axis=0)])
            for predictor, tally in zip(predictors, tallies):
                logits = np.asarray(predictor(feed))[:n]
                if logits.ndim != 2 or logits.shape[1] != classes:
                    raise EvalError('%s returns logits of shape %s, expected (%d, %d)'
                                    % (predictor.label, logits.shape, n, classes))
                if not np.all(np.isfinite(logits)):
                    raise EvalError('%s gives NaN or infinite logits on batch %d: the weights '
                                    'are corrupt or diverged' % (predictor.label, index))
                tally.add(logits, labels, keep_predictions)
            bar.update(n)
            if tallies[0].n and tallies[0].labelled:
                bar.set_postfix(top1='%.4f' % tallies[0].topk.top1)
    finally:
        bar.close()
    if tallies and tallies[0].n == 0:
        raise EvalError('the data source yielded no images')
    return tallies
