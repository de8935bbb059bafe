"""What a run decided, kept apart from what its user asked for (Config).

A Config is the request: `--preset cpu-fast` asks for "as many epochs as fit in 45 minutes", "the views the
budget picks", "a warm-up a fifth of the run". A RunPlan holds the answers, decided once before the first
epoch (workflow/train.py, decide_plan): the length, the warm-up, the test-time views, the recipe (airbench95's
wider one, where the budget chose it), the precision, and the time budget's numbers. config.json records both,
`config` and `plan`; `settings(asked)` is the one place they are put together into the settings a network,
a schedule or a prediction is built from.

The length has one owner, a RunLength: the schedule, the weight averaging and the training loop read it; the
loop alone changes it, when a time budget decides after an epoch that the run must end sooner or may go on
longer (its hooks return that decision). Repeating a run (`--config RUN`, `submit --retrain`) reuses its plan
and plans nothing again; `--resume` goes on with it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import TTA_AUTO, TTAS, Config
from ..errors import ConfigError
from ..settings import check_types, whole_if_integral


@dataclass
class RunLength:
    """A run's length in epochs (a fraction stops the last one part-way) and, where a time budget changed it
    mid-run, each change as (after_epoch, epochs_before), in order. The rates a run has used never change with
    it: schedules.learning_rate and averaging.Lookahead read the length as it stood at each update (`at`)."""

    epochs: float
    changes: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        self.epochs = whole_if_integral(self.epochs)
        self.changes = tuple((int(after), whole_if_integral(before)) for after, before in self.changes)
        afters = [after for after, _ in self.changes]
        if self.epochs <= 0 or any(a < 1 for a in afters) or afters != sorted(set(afters)):
            raise ConfigError(f"a run's length must be > 0 epochs and its changes name increasing epochs from 1 "
                              f"on, got {self.epochs} and {[list(c) for c in self.changes]}")

    def change(self, epochs: float, after_epoch: int) -> None:
        """The run ends after `epochs` from now on, decided after epoch `after_epoch`."""
        self.changes = (*self.changes, (after_epoch, self.epochs))
        self.epochs = whole_if_integral(epochs)

    def at(self, step: int, batches_per_epoch: int) -> float:
        """The length as it stood at update `step` (1-based): a change after epoch k holds from update
        k x batches_per_epoch + 1 on."""
        for after_epoch, epochs_before in self.changes:
            if step <= after_epoch * batches_per_epoch:
                return epochs_before
        return self.epochs

    def copy(self) -> "RunLength":
        return RunLength(self.epochs, self.changes)


@dataclass
class RunPlan:
    """A run's decisions; config.json's `plan`."""

    length: RunLength
    warmup_epochs: int
    tta: str  # the views submit.py and predict.py use (a replan may change them where --tta auto chose them)
    precision: str  # the training's arithmetic (precision.decide's)
    # The settings a time budget's choice of recipe put in place of those asked for (airbench95's wider one,
    # presets.widened: its network, optimizer, batch size, rates); {}: the recipe asked for
    recipe: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] | None = None  # the time budget's plan (training/budget.py, BudgetPlan.as_record)
    replans: list[dict[str, Any]] = field(default_factory=list)  # its later decisions (replan.Replan.as_record)

    def recipe_of(self, asked: Config) -> Config:
        """`asked` with the recipe the run trains (the plan's `recipe` in place of what was asked)."""
        return dataclasses.replace(asked, **self.recipe) if self.recipe else asked

    def settings(self, asked: Config) -> Config:
        """The settings the run trains and predicts with: `asked`, its recipe, length, warm-up and views decided."""
        return dataclasses.replace(self.recipe_of(asked), epochs=self.length.epochs, warmup_epochs=self.warmup_epochs,
                                   tta=self.tta)

    def repeated(self) -> "RunPlan":
        """The plan for training this run again (`--config RUN`, `submit --retrain`): the same length, changes
        included, and the same decisions; nothing is measured or planned again (no budget to replan by)."""
        return dataclasses.replace(self, length=self.length.copy(), budget=None, replans=[])

    def as_record(self) -> dict[str, Any]:
        return {"epochs": self.length.epochs, "length_changes": [list(c) for c in self.length.changes],
                "warmup_epochs": self.warmup_epochs, "tta": self.tta, "precision": self.precision, "recipe": self.recipe,
                "time_budget": self.budget, "replans": list(self.replans)}

    @classmethod
    def from_record(cls, record: Any, source: str) -> "RunPlan":
        """The plan config.json (or a checkpoint) `source` recorded; every key checked, named with the file."""
        expected = {"epochs": (int, float), "length_changes": list, "warmup_epochs": int, "tta": str,
                    "precision": str, "recipe": dict, "time_budget": (dict, type(None)), "replans": list}
        if not isinstance(record, dict) or set(record) != set(expected):
            raise ConfigError(f"{source}: its plan must be a JSON object with the keys {sorted(expected)}, got "
                              f"{record!r:.200}: was it edited by hand? Restore it, or start a new run")
        for key, kind in expected.items():
            value = record[key]
            if not isinstance(value, kind) or isinstance(value, bool) or (key == "epochs" and not math.isfinite(value)):
                raise ConfigError(f"{source}: plan key {key!r} has the wrong type ({value!r}): was it edited by "
                                  "hand? Restore it, or start a new run")
        if record["tta"] not in TTAS or record["warmup_epochs"] < 0:
            raise ConfigError(f"{source}: the plan's views must be one of {', '.join(TTAS)} and its warm-up >= 0 epochs, "
                              f"got {record['tta']!r} and {record['warmup_epochs']}: was it edited by hand? Restore it, "
                              "or start a new run")
        changes = record["length_changes"]
        if not all(isinstance(c, list) and len(c) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                for v in c) for c in changes):
            raise ConfigError(f"{source}: length_changes must be a list of [epoch, length] pairs, got {changes!r}")
        try:
            length = RunLength(record["epochs"], tuple((after, before) for after, before in changes))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}: was it edited by hand? Restore it, or start a new run") from None
        recipe = record["recipe"]
        known = {f.name for f in dataclasses.fields(Config)}
        if not set(recipe) <= known - {"epochs", "warmup_epochs", "tta"}:
            raise ConfigError(f"{source}: the plan's recipe names settings it cannot hold: "
                              f"{sorted(set(recipe) - known) or sorted(set(recipe) & {'epochs', 'warmup_epochs', 'tta'})}"
                              ": was it edited by hand? Restore it, or start a new run")
        return cls(length, record["warmup_epochs"], record["tta"], record["precision"],
                   check_types(Config, recipe, f"{source}: the plan's recipe"), record["time_budget"], record["replans"])


def read_run(saved: dict[str, Any], source: str) -> tuple[Config, RunPlan]:
    """The settings asked for and the plan in a config.json's or a checkpoint's `saved` contents (its
    "config" and "plan"; without "plan", a run written before plans were: its config holds both, so it is
    its own request, decided; `saved["precision_used"]` the precision where recorded)."""
    values = saved.get("config")
    if "plan" in saved:
        return Config.from_dict(values, source), RunPlan.from_record(saved["plan"], source)
    values = dict(values) if isinstance(values, dict) else values
    changes = values.pop("length_changes", []) if isinstance(values, dict) else []
    cfg = Config.from_dict(values, source)
    legacy = {"epochs": cfg.epochs, "length_changes": changes, "warmup_epochs": cfg.warmup_epochs,
              "tta": "flip" if cfg.tta == TTA_AUTO else cfg.tta,  # (what a run without a budget made of auto)
              "precision": saved.get("precision_used", "float32"), "recipe": {},
              "time_budget": saved.get("time_budget_plan"), "replans": saved.get("time_budget_replans", [])}
    return cfg, RunPlan.from_record(legacy, source)
