"""What code made a run: the package's version and, run from a git checkout, its commit (config.json's
`versions`), so that a result can be traced to the code that produced it."""
from __future__ import annotations

import os
import platform
import subprocess

from . import STARTUP, __version__

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_commit(checkout: str = CHECKOUT) -> str | None:
    """The commit `checkout` holds, with "-dirty" where tracked files differ from it; None outside a git
    checkout (an installed wheel) or without git."""
    if not os.path.exists(os.path.join(checkout, ".git")):
        return None
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", checkout, *args], capture_output=True, text=True, check=True,
                                  timeout=10).stdout.strip()
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    """The versions config.json records: this package (and its commit, from a checkout), its libraries,
    Python and the OpenMP threads."""
    import gluoncv
    import mxnet
    import numpy

    commit = source_commit()
    return {"gluon_cifar": __version__, **({"gluon_cifar_commit": commit} if commit else {}),
            "mxnet": mxnet.__version__, "numpy": numpy.__version__, "gluoncv": gluoncv.__version__,
            "python": platform.python_version(), "omp_threads": STARTUP.threads}
