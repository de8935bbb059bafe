"""gluon_cifar: the Kaggle CIFAR-10 download to a submission.csv with MXNet Gluon."""

__version__ = "0.5.5"

from .runtime import configure

# Before the first `import mxnet` of the process: MXNet reads these settings when it loads.
STARTUP = configure()

try:
    import mxnet as _mxnet  # noqa: F401
except KeyboardInterrupt:  # Ctrl-C in the seconds MXNet takes to load: nothing has started, nothing to show
    import sys

    from .errors import Interrupted
    print("\ninterrupted", file=sys.stderr)
    raise SystemExit(Interrupted.exit_code) from None
except ImportError as exc:  # mxnet is an extra because CPU and CUDA users need different wheels
    raise ImportError(
        "gluon_cifar needs MXNet 1.9.1, which is not installed. Install the extra for your "
        "machine: pip install 'gluon_cifar[cpu]' (CPU) or pip install 'gluon_cifar[cu112]' "
        "(CUDA 11.2, see README)."
    ) from exc
except AttributeError as exc:  # mxnet 1.9.1 uses np.bool, removed in numpy 1.24
    raise ImportError(
        f"MXNet 1.9.1 cannot import with this numpy ({exc}). Install numpy 1.23: "
        "pip install 'numpy==1.23.5' (the [cpu] and [cu112] extras pin it)."
    ) from exc

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


def predict(run: str, paths: "str | list[str]", **options: object) -> "pandas.DataFrame":  # noqa: F821
    """Predict images with finished run `run`: a pandas DataFrame, one row per image (see
    gluon_cifar.workflow.predict.predict for the columns and the options)."""
    from .workflow.predict import predict as predict_images
    return predict_images(run, paths, **options)
