"""Top-k accuracy, the one implementation the trainer, the evaluator and the tests use."""
import numpy as np

__all__ = ['TopK', 'topk_correct']


def topk_correct(scores, labels, ks=(1, 5)):
    """Number of rows of ``scores`` (N, C) whose label (N,) is among the ``k`` highest
    scores, for each ``k`` in ``ks`` (``k`` is capped at C). Returns a tuple of ints."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    kmax = min(max(ks), scores.shape[1])
    # a stable descending order: ties go to the lower class index, like argmax
    order = np.argsort(-scores, axis=1, kind='stable')[:, :kmax]
    hits = order == labels[:, None]
    return tuple(int(hits[:, :min(k, kmax)].any(axis=1).sum()) for k in ks)


class TopK:
    """Running top-1 / top-k tally over batches: ``update(scores, labels)``, then
    ``top1``, ``topk`` (fractions) and ``n``."""

    def __init__(self, k=5):
        self.k = k
        self.n = 0
        self.correct1 = 0
        self.correctk = 0

    def update(self, scores, labels):
        c1, ck = topk_correct(scores, labels, (1, self.k))
        self.n += len(np.asarray(labels).reshape(-1))
        self.correct1 += c1
        self.correctk += ck

    @property
    def top1(self):
        return self.correct1 / self.n if self.n else 0.0

    @property
    def topk(self):
        return self.correctk / self.n if self.n else 0.0
