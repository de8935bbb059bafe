"""How a setting is declared and checked, for every options object (Config, SubmitOptions, PredictOptions):
a dataclass field whose metadata carries its help, group, choices and check; the flags are generated from it
(flags.py)."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import field
from typing import Any, Callable

from .errors import ConfigError


def setting(default: Any, help: str, group: str = "training", **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, "group": group, **kw})


def parse_gpu_ids(gpus: str) -> list[int]:
    """"0,1" -> [0, 1]; "" -> [] (the CPU)."""
    try:
        ids = [int(g) for g in gpus.split(",") if g.strip()]
    except ValueError:
        raise ConfigError(f"--gpus takes comma-separated integers such as 0,1; got {gpus!r}") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ConfigError(f"--gpus must list distinct ids >= 0, got {gpus!r}")
    return ids


def gpus_setting() -> Any:
    return setting("", "comma-separated GPU ids, e.g. 0,1 (empty: CPU)", "devices", check=parse_gpu_ids)


def cpus_setting() -> Any:
    return setting(1, "number of CPU contexts to split each batch over (ignored with --gpus)", "devices")


def whole_if_integral(value: float) -> float:
    """`value` as an int where it is whole (a run length of 10.0 epochs is 10), else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_fields(settings: Any) -> None:
    """What each field's metadata says: finite numbers, one of its `choices` where it has them, and
    its own `check` (raising ConfigError) where it has one."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"--{flag(f.name)} must be a finite number, got {value}")
        if "choices" in f.metadata and value not in f.metadata["choices"] and value is not None:
            raise ConfigError(f"--{flag(f.name)} must be one of {', '.join(f.metadata['choices'])}, got {value!r}")
        if "check" in f.metadata:
            f.metadata["check"](value)


def check_at_least(settings: Any, low: int, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if value is not None and value < low:
            raise ConfigError(f"--{flag(name)} must be {'at least 1' if low == 1 else f'>= {low}'}, got {value}")


def flag(name: str) -> str:
    """The command-line flag of setting `name`, without its dashes: batch_size -> batch-size."""
    return name.replace("_", "-")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# What a settings field's annotation accepts from JSON, and how to say it; a type not listed is not checked.
_JSON_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: _is_number(v) and float(v).is_integer(), "a whole number"),
    "float": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "int | str": (lambda v: isinstance(v, str) or _is_number(v) and float(v).is_integer(),
                  "a whole number or a string"),
    "tuple[tuple[int, float], ...]": (lambda v: isinstance(v, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(map(_is_number, p)) for p in v),
        "a list of [epoch, length] pairs"),
}


def check_types(settings: type, values: dict[str, Any], source: str) -> dict[str, Any]:
    """`values` for dataclass `settings`, each of its field's type as JSON holds it (a whole float such as 3.0
    taken for an int): a ConfigError naming the key and `source` (the file) otherwise."""
    types = {f.name: f.type for f in dataclasses.fields(settings)}
    checked = dict(values)
    for key, value in values.items():
        accepts, said = _JSON_TYPES.get(str(types.get(key)), (lambda v: True, ""))
        if not accepts(value):
            raise ConfigError(f"{source}: \"{key}\" must be {said}, got {json.dumps(value)}: was it edited by hand? "
                              "Restore it, or start a new run")
        if types.get(key) == "int" and isinstance(value, float):
            checked[key] = int(value)
    return checked
