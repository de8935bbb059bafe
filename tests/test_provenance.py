"""config.json says what code made the run: the package's version and, from a git checkout, the commit."""
import json
import os
import subprocess

import pytest

from gluon_cifar import __version__
from gluon_cifar.provenance import source_commit
from tests.conftest import ROOT


def git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_the_commit_of_a_checkout_and_whether_its_tracked_files_differ(tmp_path):
    assert source_commit(str(tmp_path)) is None  # not a checkout: an installed package
    git(tmp_path, "init", "-q")
    (tmp_path / "module.py").write_text("x = 1\n")
    git(tmp_path, "add", "module.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "notes.txt").write_text("untracked: not a change of the code\n")
    assert source_commit(str(tmp_path)) == head and len(head) == 40
    (tmp_path / "module.py").write_text("x = 2\n")
    assert source_commit(str(tmp_path)) == head + "-dirty"


@pytest.mark.slow  # trains the shared one-epoch run
def test_a_run_records_the_package_version_and_the_checkout_it_ran_from(half_trained_run):
    with open(os.path.join(half_trained_run, "config.json")) as f:
        versions = json.load(f)["versions"]
    assert versions["gluon_cifar"] == __version__
    assert versions["gluon_cifar_commit"] == source_commit()  # the tests run from a git checkout
    assert versions["gluon_cifar_commit"].split("-")[0] == git(ROOT, "rev-parse", "HEAD")
