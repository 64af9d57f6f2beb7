"""The ``train_imagenet.py`` command (console script ``gluon_nets.training.cli:main``).

Importing this module does not import MXNet: :func:`gluon_nets.training.trainer.main`
sets OMP_NUM_THREADS from ``--threads`` before anything loads it.
"""
import os
import sys

__all__ = ['main']


def main(argv=None):
    """Run the trainer on ``argv`` (default: the command line); returns the exit status.

    A distributed worker (``DMLC_ROLE=worker``) that fails leaves through ``os._exit``:
    a normal interpreter exit waits in ps-lite's finalising barrier for the other
    workers, so the launcher would never see the failure."""
    from .trainer import main as train
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get('DMLC_ROLE') != 'worker':
        return train(argv)
    try:
        code = train(argv)
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    except BaseException as err:   # what main() did not turn into a status (it handles signals)
        if '--debug' in argv:
            import traceback
            traceback.print_exc()
        else:
            print('train_imagenet.py: error: %s: %s (run with --debug for the traceback)'
                  % (type(err).__name__, err), file=sys.stderr)
        code = 1
    if code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == '__main__':
    sys.exit(main())
