"""Command-line flags generated from the settings dataclasses (Config, SubmitOptions, PredictOptions), and a run's
Config made from them: defaults < preset < the flags the user gave."""
from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from .config import Config
from .errors import ConfigError
from .presets import PRESETS
from .settings import flag

log = logging.getLogger(__name__)


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), settings: type = Config) -> None:
    """Add one flag per field of `settings` (Config, SubmitOptions, PredictOptions); defaults are None so only
    flags the user gave override (presets, a saved run, the dataclass's defaults)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(settings):
        if f.name in skip or not f.metadata.get("flag", True):
            continue  # skipped, or set by the run itself
        group_name = f.metadata["group"]
        group = groups.get(group_name) or groups.setdefault(group_name, parser.add_argument_group(group_name))
        shown = f.default not in (None, "")  # those fields' help says what "unset" means
        help_text = f"{f.metadata['help']} (default: {f.default})" if shown else f.metadata["help"]
        names = (f"--{flag(f.name)}", *f.metadata.get("aliases", ()))
        if f.metadata.get("action") == "append":  # a flag given several times: a list
            group.add_argument(*names, dest=f.name, default=None, action="append", help=help_text,
                               required=f.metadata.get("required", False))
        elif f.type in ("bool", bool):
            group.add_argument(*names, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                               help=help_text)
        else:
            kind = f.metadata.get("parse") or {"int": int, "float": float, "int | None": int}.get(str(f.type), str)
            group.add_argument(*names, dest=f.name, default=None, type=kind, help=help_text,
                               choices=f.metadata.get("choices"), required=f.metadata.get("required", False))


def config_overrides(args: argparse.Namespace, settings: type = Config) -> dict[str, Any]:
    """The settings of `settings` the user gave on the command line (flags left out are None)."""
    names = {f.name for f in dataclasses.fields(settings)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def config_from_args(args: argparse.Namespace, preset: str = "d2l", base: dict[str, Any] | None = None) -> Config:
    """Layer: Config defaults < `base` (e.g. a saved run) < preset < flags the user gave."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    given = config_overrides(args)
    if getattr(args, "amp", False):  # the old float16 switch, kept as an alias
        log.warning("--amp is deprecated: it is --precision float16 (GPUs), which it now sets")
        given.setdefault("precision", "float16")
    if "epochs" in given and "time_budget" not in given:
        given["time_budget"] = 0.0  # the user's own epoch count wins over a preset's budget
    return Config.from_dict({**(base or {}), **PRESETS[preset], **given})
