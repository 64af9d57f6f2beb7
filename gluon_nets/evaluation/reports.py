"""What an evaluation reports: one result per artefact, the printed table, and
per-class tables (CSV) with confusion matrices (PNG), written atomically
(:mod:`gluon_nets.utils.atomic`)."""
import csv
import os

import numpy as np

from ..utils.atomic import atomic_path

__all__ = ['result', 'per_class_rows', 'write_per_class', 'print_results',
           'print_per_class', 'check_results_file', 'append_results_csv', 'RESULT_COLUMNS']


def result(predictor, tally, class_names):
    """The numbers of one artefact (a JSON-able dict)."""
    out = {'artefact': predictor.label, 'kind': predictor.kind, 'classes': tally.classes,
           'num_images': tally.n}
    out.update(tally.summary())
    out.update(top5_k=tally.k,
               img_per_s=tally.n / predictor.seconds if predictor.seconds > 0 else None,
               forward_seconds=predictor.seconds)
    if tally.predictions:
        for pred in tally.predictions:
            if class_names:
                pred['names'] = [class_names[c] if c < len(class_names) else str(c)
                                 for c in pred['top5']]
        out['predictions'] = tally.predictions
    return out


def _name(class_names, c):
    return class_names[c] if class_names and c < len(class_names) else str(c)


def per_class_rows(tally, class_names):
    """One row per class: images, correct (top-1), accuracy and the class its images
    are most often taken for (from the confusion matrix)."""
    rows = []
    for c in range(tally.classes):
        counts = tally.confusion[c]
        others = counts.copy()
        others[c] = 0
        rows.append({'class': c, 'name': _name(class_names, c),
                     'images': int(counts.sum()), 'correct': int(counts[c]),
                     'accuracy': int(counts[c]) / int(counts.sum()) if counts.sum() else None,
                     'most_confused_with': int(others.argmax()) if others.any() else None,
                     'most_confused_count': int(others.max()) if others.any() else 0})
    return rows


def write_per_class(out_dir, label, rows, confusion):
    """``<label>_per_class.csv`` and ``<label>_confusion.png`` (row-normalised) in
    ``out_dir``; returns their paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    stem = ''.join(ch if ch.isalnum() or ch in '._-' else '_' for ch in label)
    csv_path = os.path.join(out_dir, stem + '_per_class.csv')
    with atomic_path(csv_path) as partial:
        with open(partial, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    classes = confusion.shape[0]
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, np.maximum(totals, 1), dtype=np.float64)
    side = min(4 + 0.35 * classes, 40)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    image = ax.imshow(normalised, cmap='Blues', vmin=0, vmax=1, interpolation='nearest')
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='fraction of the true class')
    if classes <= 50:
        names = [rows[c]['name'] for c in range(classes)]
        ax.set_xticks(range(classes))
        ax.set_yticks(range(classes))
        ax.set_xticklabels(names, rotation=90, fontsize=8)
        ax.set_yticklabels(names, fontsize=8)
        if classes <= 20:
            for i in range(classes):
                for j in range(classes):
                    if confusion[i, j]:
                        ax.text(j, i, str(confusion[i, j]), ha='center', va='center', fontsize=7,
                                color='white' if normalised[i, j] > 0.5 else 'black')
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    ax.set_title('confusion matrix: %s' % label)
    fig.tight_layout()
    png_path = os.path.join(out_dir, stem + '_confusion.png')
    with atomic_path(png_path) as partial:
        fig.savefig(partial, dpi=100, format='png')
    plt.close(fig)
    return csv_path, png_path


def _fmt(value, spec='%.4f'):
    return '-' if value is None else spec % value


def print_results(report, results, classes, batch_size, predictions=False):
    """The table of every artefact (and, with ``predictions``, each image's top-5)."""
    data = report['data']
    print('%d images, %dx%d, batch %d, %s threads' % (data['num_images'], data['input_size'],
                                                     data['input_size'], batch_size,
                                                     report['threads']))
    print('%-40s %-14s %8s %8s %8s %9s' % ('artefact', 'kind', 'top-1', 'top-%d' % min(5, classes),
                                           'loss', 'img/s'))
    for r in results:
        print('%-40s %-14s %8s %8s %8s %9s' % (r['artefact'][:40], r['kind'], _fmt(r['top1']),
                                               _fmt(r['top5']), _fmt(r['loss']),
                                               _fmt(r['img_per_s'], '%.1f')))
    if predictions:
        for r in results:
            print('predictions of %s:' % r['artefact'])
            for i, pred in enumerate(r['predictions']):
                names = pred.get('names') or [str(c) for c in pred['top5']]
                print('  image %d: %s' % (i, ', '.join('%s %s (%.3f)' % (c, n, p) for c, n, p in
                                                       zip(pred['top5'], names, pred['prob']))))


def print_per_class(r):
    """The per-class table of one result (the 20 worst classes when there are > 50)."""
    rows = r['per_class']
    print('\nper-class accuracy of %s (%s, %s):' % (r['artefact'], r['per_class_csv'],
                                                    r['confusion_png']))
    shown = rows if len(rows) <= 50 else sorted(
        (x for x in rows if x['images']), key=lambda x: x['accuracy'])[:20]
    if len(rows) > 50:
        print('  (the 20 worst classes of %d)' % len(rows))
    for row in shown:
        print('  %4d %-24s %6d images  top-1 %s  most confused with %s'
              % (row['class'], row['name'][:24], row['images'], _fmt(row['accuracy']),
                 '-' if row['most_confused_with'] is None else
                 '%d (%d)' % (row['most_confused_with'], row['most_confused_count'])))



#: the columns of ``--results-file`` (one row per artefact and evaluation)
RESULT_COLUMNS = ('artefact', 'kind', 'top1', 'top5', 'loss', 'img_per_s', 'num_images',
                  'classes', 'input_size', 'crop_ratio', 'interpolation', 'crops', 'dtype',
                  'ctx', 'batch_size', 'source')


def check_results_file(path):
    """A ``--results-file`` that exists must be a CSV with our header (rows are
    appended): EvalError-style ``ValueError`` naming it otherwise."""
    if not os.path.exists(path):
        return
    try:
        with open(path, newline='') as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError('--results-file %s: cannot read it as CSV (%s)' % (path, err)) from None
    if header is not None and tuple(header) != RESULT_COLUMNS:
        raise ValueError('--results-file %s has other columns (%s); give a new file'
                         % (path, ','.join(header[:6])))


def append_results_csv(path, report, results):
    """Add one row per artefact to the CSV ``path`` (header written once); the file is
    replaced atomically, so a failure leaves the old rows intact."""
    data = report['data']
    source = data.get('dataset') or data.get('rec_val') or data.get('data_dir') or data.get('npy')
    rows = []
    for r in results:
        row = {k: r.get(k) for k in ('artefact', 'kind', 'top1', 'top5', 'loss', 'img_per_s',
                                     'num_images', 'classes')}
        row.update({k: data.get(k) for k in ('input_size', 'crop_ratio', 'interpolation',
                                             'crops', 'dtype', 'ctx', 'batch_size')})
        row['source'] = source
        rows.append(row)
    old = ''
    if os.path.exists(path):
        with open(path, newline='') as f:
            old = f.read()
    with atomic_path(path) as tmp:
        with open(tmp, 'w', newline='') as f:
            f.write(old)
            writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
            if not old:
                writer.writeheader()
            writer.writerows(rows)
