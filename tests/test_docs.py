"""The README and docs/ name only what exists: files, modules, functions and flags.

Docs drift when code moves (a module renamed, a flag folded into another); these checks read every
code span and code block of the docs and resolve what they name against the checkout. A name of
the past is allowed only where the same document says where it lives now in git
(`git show REV:PATH`, checked too).
"""
import dataclasses
import glob
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys

import pytest

import gluon_cifar
from gluon_cifar.config import Config
from gluon_cifar.predict_options import PredictOptions
from gluon_cifar.settings import flag
from gluon_cifar.submit_options import SubmitOptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
# Files named in the docs that live outside this repository, and why.
EXTERNAL_FILES = {
    "kaggle_layout.py", "airbench_cpu.py", "d2l_reference.py", "STYLE.md",  # ../shared
    "airbench94.py",  # KellerJordan/cifar10-airbench, the peer's original
}
# Flags of other programs the docs show (pip, pytest, python, tar/7z, ssh, the kaggle CLI, nvidia tools).
EXTERNAL_FLAGS = {"--no-deps", "--quiet", "--disable-pip-version-check", "--upgrade", "--index-url",
                  "--extra-index-url", "--help", "--version", "--user", "--rm", "--logdir", "--durations"}
FILE_SUFFIXES = {"py", "md", "json", "jsonl", "csv", "zip", "7z", "png", "txt", "params", "states", "log", "ipynb",
                 "cfg", "onnx", "npy", "lock", "tmp"}


def code_of(path: str) -> str:
    """Every inline code span and fenced code block of a Markdown file, one per line."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M))
    return "\n".join(blocks + inline)


def repo_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        return {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "**", "*"), recursive=True)}
    return set(out.stdout.split())


def in_git_history(doc: str, path: str) -> bool:
    """Whether `doc` points to `path` as `git show REV:path`, and that object exists."""
    with open(doc, encoding="utf-8") as f:
        revisions = re.findall(rf"git show (\S+?):{re.escape(path)}", f.read())
    return any(subprocess.run(["git", "cat-file", "-e", f"{rev}:{path}"], cwd=ROOT,
                              capture_output=True).returncode == 0 for rev in revisions)


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_every_path_the_docs_name_exists(doc):
    files = repo_files()
    folders = {os.path.dirname(f) for f in files}
    basenames = {os.path.basename(f) for f in files}
    code = code_of(doc)
    missing = []
    for path in set(re.findall(r"(?<![\w/.~-])((?:gluon_cifar|benchmarks|scripts|tests|docs|examples|\.ci)/[\w./-]*\w)",
                               code)):
        if "<" in path or path in files or path.rstrip("/") in folders or in_git_history(doc, path):
            continue
        missing.append(path)
    for name in set(re.findall(r"(?<![\w/.-])([\w-]+\.(?:py|md|ipynb|jsonl))\b", code)):
        if name not in basenames and name not in EXTERNAL_FILES and not any(
                in_git_history(doc, f) for f in re.findall(rf"[\w/.-]*/{re.escape(name)}", open(doc).read())):
            missing.append(name)
    assert not missing, f"{os.path.basename(doc)} names files that do not exist: {sorted(missing)}"


def _our_modules() -> dict[str, list[object]]:
    """Module stem -> the modules of the package with that stem (e.g. "budget": two of them)."""
    stems: dict[str, list[object]] = {}
    for info in pkgutil.walk_packages(gluon_cifar.__path__, "gluon_cifar."):
        if info.name.endswith("__main__"):
            continue  # it runs the command line
        module = importlib.import_module(info.name)
        stems.setdefault(info.name.rsplit(".", 1)[1], []).append(module)
    return stems


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_every_module_function_and_class_the_docs_name_exists(doc):
    stems = _our_modules()
    classes = {name: obj for modules in stems.values() for module in modules for name, obj in vars(module).items()
               if inspect.isclass(obj) and obj.__module__.startswith("gluon_cifar")}
    missing = []
    for dotted in set(re.findall(r"\b((?:gluon_cifar|[a-z_]+|[A-Z]\w+)(?:\.[A-Za-z_]\w*)+)\b", code_of(doc))):
        head, *rest = dotted.split(".")
        if head == "gluon_cifar":
            if not _resolves(dotted):
                missing.append(dotted)
        elif rest[-1] in FILE_SUFFIXES:
            continue  # a file name (config.json, model.params), checked with the paths
        elif head in stems:
            if not any(_defined_in(module, rest[0]) for module in stems[head]):
                missing.append(dotted)
        elif head in classes:
            cls = classes[head]
            fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else ()
            if not hasattr(cls, rest[0]) and rest[0] not in fields:
                missing.append(dotted)
    assert not missing, f"{os.path.basename(doc)} names what the code does not have: {sorted(missing)}"


def _defined_in(module: object, name: str) -> bool:
    """`module` defines `name` (an import of it from elsewhere does not count)."""
    if not hasattr(module, name):
        return False
    obj = getattr(module, name)
    return not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ == module.__name__


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _known_flags() -> set[str]:
    known = set()
    for settings in (Config, SubmitOptions, PredictOptions):
        for f in dataclasses.fields(settings):
            known.add(f"--{flag(f.name)}")
            if f.type in ("bool", bool):
                known.add(f"--no-{flag(f.name)}")  # argparse.BooleanOptionalAction's other half
    sources = [p for folder in ("gluon_cifar", "scripts", "benchmarks")  # not tests/: they may show any flag
               for p in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True)]
    sources += glob.glob(os.path.join(ROOT, "..", "shared", "tools", "*.py"))
    sources += glob.glob(os.path.join(ROOT, "..", "shared", "baseline", "*.py"))
    for path in sources:
        with open(path, encoding="utf-8", errors="replace") as f:
            known.update(re.findall(r"""["'](--[a-z][a-z0-9-]*)["']""", f.read()))
    return known


@pytest.mark.parametrize("doc", DOCS, ids=os.path.basename)
def test_every_flag_the_docs_show_exists(doc):
    known = _known_flags() | EXTERNAL_FLAGS
    shown = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*[a-z0-9])", code_of(doc)))
    assert not shown - known, f"{os.path.basename(doc)} shows flags nothing defines: {sorted(shown - known)}"


def test_the_readmes_results_table_is_what_the_benchmark_records_make():
    checked = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "results.py"), "--check"],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_results_table_holds_current_recipes_run_as_shipped_on_two_seeds(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import results
    zen5 = "2 cores (2 logical CPUs), AMD EPYC (family 26, model 2), 24 GB RAM"
    run = dict(preset="cpu-fast", flags=["--time-budget", "45"], machine=zen5, total_s=2700.0, epochs=13)
    peaks = dict(train_peak_memory=2.79e9, submit_peak_memory=0.91e9)
    records = [
        {**run, "seed": 0, "holdout_acc": 0.92, "commit": "9bdd2c3", **peaks},
        {**run, "seed": 1, "holdout_acc": 0.93, "commit": "9bdd2c3", **peaks, "train_peak_memory": 2.5e9},
        {**run, "seed": 2, "holdout_acc": 0.80, "commit": "c7a10b5"},  # before the recipe's last change (pieces)
        {**run, "seed": 3, "holdout_acc": 0.80, "commit": "9bdd2c3", "flags": ["--epochs", "3"]},  # not as shipped
        {**run, "seed": 0, "holdout_acc": 0.80, "commit": "9bdd2c3", "machine": zen5.replace("26, model 2",
                                                                                             "25, model 1")},
    ]
    (row,) = results.rows(records)  # the Zen 3 run has one seed: no row
    assert row.startswith("| `cpu-fast` (") and "| AMD Zen 5 |" in row and "--seeds 0 1 --time-budget 45`" in row
    assert "| **0.9250** (0.9200–0.9300) | 45.0 (45.0–45.0) | 13 | 2.8 / 0.9 |" in row  # the higher peak of two
    # at the peer's wall clock, on the layout of the scored images alone; the peer's records name AMX in their stamp
    xeon = "2 cores (2 logical CPUs), Intel(R) Xeon(R) Processor (family 6, model 167), 24 GB RAM"
    at_peer_time = {**run, "flags": ["--time-budget", "8.07"], "peer_time": True, "machine": xeon + ", AMX"}
    (row,) = results.rows([{**at_peer_time, "seed": 0, "holdout_acc": 0.91, "commit": "d029540"},
                           {**at_peer_time, "seed": 1, "holdout_acc": 0.90, "commit": "d029540"},
                           {**at_peer_time, "seed": 1, "holdout_acc": 0.70, "commit": "03ae5c2"}])  # (old timing)
    assert "| Intel Xeon (family 6, model 167) with AMX |" in row and "| **0.9050** (0.9000–0.9100) |" in row
    assert "`python benchmarks/holdout.py --data-dir SCORED --preset cpu-fast --seeds 0 1 --peer-python PY " \
           "--peer-time`" in row
    assert results.machine_kind({"machine": xeon}) == "Intel Xeon (family 6, model 167)"
    doc = tmp_path / "README.md"
    doc.write_text(f"above\n{results.BEGIN}\nold\n{results.END}\nbelow\n")
    assert subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "results.py"), "--check", "--readme",
                           str(doc)], capture_output=True).returncode == 1  # a stale table is caught
