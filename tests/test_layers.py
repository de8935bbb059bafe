"""The package's layers, kept by a test: a lower layer never imports a higher one, so each can be read, tested
and reused without what sits above it (every import counts, those inside functions too)."""
import ast
import os

import pytest

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "gluon_cifar")
# Bottom to top. A module may import its own layer and those below it; the top-level modules not named
# (errors, atomic, config, precision, runtime, ...) are the base every layer may use.
LAYERS = [
    {"models", "data"},
    {"training", "inference", "runs", "distributed"},
    {"workflow", "commands", "flags", "cli", "presets", "submit_options", "predict_options"},
]


def imported_modules(path: str, package: str) -> set[str]:
    """The gluon_cifar modules (dotted, without "gluon_cifar.") and benchmark modules that the file `path` of
    subpackage `package` ("" at the top) imports, each as `module.name` for a `from module import name`."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the file's own package, or node.level - 1 above it
                parts = ["gluon_cifar", *filter(None, package.split("."))]
                module = ".".join([*parts[:len(parts) - node.level + 1], *filter(None, [module])])
            names = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name.removeprefix("gluon_cifar.") for name in names
                  if name.startswith("gluon_cifar.") or name.split(".")[0] == "benchmarks"}
    return found


def package_files() -> list[tuple[str, str]]:
    """(path, subpackage: "" at the top) of every module of the package."""
    files = []
    for folder, _, names in os.walk(PACKAGE):
        package = os.path.relpath(folder, PACKAGE).replace(os.sep, ".") if folder != PACKAGE else ""
        files += [(os.path.join(folder, name), package) for name in names if name.endswith(".py")]
    return files


def layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    return next((i for i, names in enumerate(LAYERS) if top in names), None)


def violations(path: str, package: str) -> list[str]:
    own = (package or os.path.splitext(os.path.basename(path))[0]).split(".")[0]
    own_layer = layer_of(own)
    wrong = []
    for module in sorted(imported_modules(path, package)):
        top = module.split(".")[0]
        if top == "benchmarks":
            wrong.append(module)  # the benchmark scripts are not part of the package
        elif own_layer is not None and layer_of(module) is not None and layer_of(module) > own_layer:
            wrong.append(module)
    return [f"{os.path.relpath(path, ROOT)} imports {module}" for module in wrong]


def test_no_lower_layer_imports_a_higher_one():
    found = [v for path, package in package_files() for v in violations(path, package)]
    assert found == []


@pytest.mark.parametrize("source, package, module", [
    ("from ..workflow.train import train\n", "training", "workflow.train.train"),
    ("def f():\n    from ..commands import train\n", "inference", "commands.train"),
    ("from gluon_cifar.training.engine import fit\n", "models", "training.engine.fit"),
    ("import benchmarks.common\n", "runs", "benchmarks.common"),
])
def test_the_check_catches_each_kind_of_import_it_forbids(tmp_path, source, package, module):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert module in imported_modules(str(path), package)
    assert violations(str(path), package) == [f"{os.path.relpath(path, ROOT)} imports {module}"]


def test_every_module_of_the_package_is_short_enough_to_read():
    """No module over 260 lines: a longer one is two jobs."""
    long = {os.path.relpath(path, ROOT): n for path, _ in package_files()
            if (n := sum(1 for _ in open(path, encoding="utf-8"))) > 260}
    assert long == {}
