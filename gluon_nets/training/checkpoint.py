"""A run directory: atomic checkpoints, the best model, metrics CSV and curves PNG.

Layout of ``--save-dir``::

    args.json                 the full argument set (written at start)
    model.json                how to rebuild the net: model_zoo.model_record (model, kwargs,
                              data_config, class_names) plus params/best_params and the data
    epoch-0007.params/.states the last complete epoch (params + trainer states)
    checkpoint.json           commit record: epoch, files, metrics so far, best, schedule position
    last.params               the same parameters as the last complete epoch (for eval.py)
    best.params / best.json   the best epoch by validation top-1
    metrics.csv, curves.png   one row / point per epoch
    <model>-<epoch>.params    GluonCV-named copies every --save-frequency epochs

A checkpoint is committed by the atomic rename of ``checkpoint.json``, written after
its params/states files are complete; older epoch files are removed only after
that, so a ``kill -9`` at any moment leaves the previous checkpoint usable.
"""
import csv
import json
import os
import shutil

from ..utils.atomic import TEMP_PREFIX, atomic_path, save_params_atomic, write_json_atomic

__all__ = ['RunDir', 'METRIC_FIELDS']

METRIC_FIELDS = ['epoch', 'train_loss', 'train_acc', 'val_loss', 'val_top1', 'val_top5', 'lr',
                 'epoch_time_s', 'train_img_per_s']


class RunDir:
    """Reads and writes one run's directory (see the module doc)."""

    def __init__(self, path, model_name):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.model_name = model_name
        os.makedirs(self.path, exist_ok=True)

    def remove_stale_temps(self):
        """Delete half-written ``.tmp-*`` files a killed run left behind."""
        for name in os.listdir(self.path):
            if name.startswith(TEMP_PREFIX):
                try:
                    os.remove(self.file(name))
                except OSError:
                    pass

    def file(self, name):
        """The path of ``name`` inside the run directory."""
        return os.path.join(self.path, name)

    def write_json(self, name, obj):
        """Write ``obj`` as JSON to the run directory's ``name``, atomically."""
        write_json_atomic(self.file(name), obj)

    def read_json(self, name):
        """The JSON in the run directory's ``name``, or None if there is no such file."""
        path = self.file(name)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except ValueError as err:
            raise ValueError('%s is corrupt (%s)' % (path, err)) from None

    def save_params(self, net, name):
        """``net``'s parameters to the run directory's ``name``, atomically."""
        save_params_atomic(net, self.file(name))

    def load(self):
        """The committed checkpoint record, or None if no epoch completed."""
        path = self.file('checkpoint.json')
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                record = json.load(f)
        except ValueError as err:
            raise ValueError('%s is corrupt (%s); remove it to restart the run' % (path, err)) from None
        for key in ('params', 'states'):
            if record.get(key) and not os.path.isfile(self.file(record[key])):
                raise ValueError('%s names %s, which is missing' % (path, record[key]))
        return record

    def save_epoch(self, epoch, net, trainer, record, keep_copy=False):
        """Write epoch files, then commit ``record`` (it gets 'params'/'states' added)."""
        stem = 'epoch-%04d' % epoch
        self.save_params(net, stem + '.params')
        if trainer is not None:
            with atomic_path(self.file(stem + '.states')) as tmp:
                trainer.save_states(tmp)
            record['states'] = stem + '.states'
        else:
            record['states'] = None
        record['params'] = stem + '.params'
        previous = self.load()
        self.write_json('checkpoint.json', record)
        self._link(stem + '.params', 'last.params')
        if keep_copy:
            self._link(stem + '.params', '%s-%d.params' % (self.model_name, epoch))
            if trainer is not None:
                self._link(stem + '.states', '%s-%d.states' % (self.model_name, epoch))
        if previous:
            for key in ('params', 'states'):
                old = previous.get(key)
                if old and old != record[key] and os.path.exists(self.file(old)):
                    os.remove(self.file(old))

    def save_best(self, epoch, net, val_top1):
        self.save_params(net, 'best.params')
        self.write_json('best.json', {'epoch': epoch, 'val_top1': val_top1, 'params': 'best.params'})

    def _link(self, src, dst):
        """``dst`` becomes the same file as ``src`` (hard link; a copy where links fail), atomically."""
        with atomic_path(self.file(dst)) as tmp:
            os.remove(tmp)
            try:
                os.link(self.file(src), tmp)
            except OSError:
                shutil.copyfile(self.file(src), tmp)

    def write_metrics(self, rows):
        """Rewrite metrics.csv and curves.png from all rows so far (no gaps, no duplicates)."""
        with atomic_path(self.file('metrics.csv')) as tmp:
            with open(tmp, 'w', newline='') as f:
                writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: row.get(k) for k in METRIC_FIELDS})
        try:
            self._plot(rows)
        except Exception as err:  # a plotting problem must not stop training
            import logging
            logging.getLogger('gluon_nets.train').warning('could not draw curves.png: %s', err)

    def _plot(self, rows):
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        epochs = [r['epoch'] for r in rows]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        ax_loss.plot(epochs, [r['train_loss'] for r in rows], 'o-', label='train')
        ax_loss.plot(epochs, [r['val_loss'] for r in rows], 's-', label='val')
        ax_loss.set_xlabel('epoch')
        ax_loss.set_ylabel('cross-entropy loss')
        ax_loss.legend()
        ax_acc.plot(epochs, [r['train_acc'] for r in rows], 'o-', label='train acc')
        ax_acc.plot(epochs, [r['val_top1'] for r in rows], 's-', label='val top-1')
        ax_acc.plot(epochs, [r['val_top5'] for r in rows], '^-', label='val top-5')
        ax_acc.set_xlabel('epoch')
        ax_acc.set_ylabel('accuracy')
        ax_acc.legend()
        fig.suptitle(self.model_name)
        fig.tight_layout()
        with atomic_path(self.file('curves.png')) as tmp:
            fig.savefig(tmp, format='png', dpi=80)
        plt.close(fig)
