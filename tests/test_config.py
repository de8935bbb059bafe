import argparse
import json
import subprocess
import sys

import pytest

from gluon_cifar.cli import run_main
from gluon_cifar.commands.train import main as train_command
from gluon_cifar.config import Config
from gluon_cifar.errors import ConfigError
from gluon_cifar.flags import add_config_arguments, config_from_args
from gluon_cifar.runs import rundir
from gluon_cifar.training.run_plan import RunLength, RunPlan
from gluon_cifar.training.schedules import auto_warmup_epochs, with_warmup_decided


def load(path) -> Config:
    """The settings asked for in config.json `path`."""
    return rundir.saved_run(str(path))[0]


def parse(*flags):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(list(flags))


def test_defaults_are_the_books_recipe():
    cfg = config_from_args(parse())
    assert (cfg.batch_size, cfg.lr, cfg.wd, cfg.lr_period, cfg.lr_decay, cfg.epochs, cfg.valid_ratio) == \
        (128, 0.02, 5e-4, 4, 0.9, 20, 0.1)


def test_flags_override_preset_and_types_are_parsed():
    cfg = config_from_args(parse("--epochs", "5", "--lr", "0.1", "--no-hybridize"), preset="demo")
    assert cfg.epochs == 5 and cfg.lr == 0.1 and cfg.hybridize is False and cfg.lr_period == 2


def test_a_fractional_epoch_count_is_kept_and_a_whole_one_stays_whole(tmp_path):
    assert config_from_args(parse("--epochs", "9.9")).epochs == 9.9  # airbench's length
    whole = config_from_args(parse("--epochs", "10.0"))
    assert whole.epochs == 10 and isinstance(whole.epochs, int)  # "10 epochs" in messages and config.json
    whole.save(str(tmp_path / "config.json"))
    assert '"epochs": 10,' in (tmp_path / "config.json").read_text()


def test_auto_warm_up_is_a_fifth_of_the_run_in_whole_epochs_one_or_two(tmp_path):
    assert [auto_warmup_epochs(e) for e in (2, 4.3, 5, 7.4, 7.5, 9.9, 23)] == [1, 1, 1, 1, 2, 2, 2]
    cfg = config_from_args(parse("--epochs", "5"), preset="cpu-fast-sgd")  # (cpu-fast's Muon has no warm-up)
    assert cfg.warmup_epochs == "auto" and with_warmup_decided(cfg).warmup_epochs == 1
    assert with_warmup_decided(Config(**{**cfg.to_dict(), "epochs": 9.9})).warmup_epochs == 2
    assert config_from_args(parse("--warmup-epochs", "3")).warmup_epochs == 3  # a number stays a number
    assert with_warmup_decided(config_from_args(parse("--warmup-epochs", "3"))).warmup_epochs == 3
    decided = with_warmup_decided(cfg)
    decided.save(str(tmp_path / "config.json"))  # a run saves the number it trained with
    assert load(tmp_path / "config.json").warmup_epochs == 1


@pytest.mark.parametrize("epochs, warmup", [(1, 0), (1.5, 1), (2, 1)])
def test_auto_warm_up_is_shorter_than_the_run_so_that_the_saved_config_loads_again(epochs, warmup, tmp_path):
    """`--preset cpu-fast-sgd --epochs 1` saved a warm-up of 1 epoch for a 1-epoch run, which submit,
    predict, --resume and --config then refused."""
    decided = with_warmup_decided(config_from_args(parse("--epochs", str(epochs)), preset="cpu-fast-sgd"))
    assert decided.warmup_epochs == warmup
    decided.save(str(tmp_path / "config.json"))
    assert load(tmp_path / "config.json") == decided


@pytest.mark.parametrize("key, value, said", [
    ("epochs", "three", 'must be a number, got "three"'),
    ("lr", "0.1", 'must be a number, got "0.1"'),
    ("seed", None, "must be a whole number, got null"),
    ("batch_size", 32.5, "must be a whole number, got 32.5"),
    ("hybridize", "false", 'must be true or false, got "false"'),
    ("data_dir", 3, "must be a string or null, got 3"),
    ("warmup_epochs", 1.5, "must be a whole number or a string, got 1.5"),
])
def test_a_hand_edited_config_of_the_wrong_type_is_named_with_its_key_and_file(key, value, said, tmp_path):
    path = tmp_path / "config.json"
    assert refused_after_editing(path, "config", key, value).startswith(f'{path}: "{key}" {said}: was it edited by '
                                                                         "hand?")


def refused_after_editing(path, part: str, key: str, value) -> str:
    """The error loading config.json `path` gives once `value` is written into its `part` ("config" or "plan") under
    `key`; the file loads before the edit."""
    Config().save(str(path), {"plan": RunPlan(RunLength(3, ((1, 2),)), 0, "flip", "float32").as_record()})
    assert load(path) == Config()
    saved = json.loads(path.read_text())
    saved[part][key] = value
    path.write_text(json.dumps(saved))
    with pytest.raises(ConfigError) as refused:
        load(path)
    return str(refused.value)


def test_whole_numbers_written_as_floats_load_as_the_ints_they_are(tmp_path):
    path = tmp_path / "config.json"
    Config().save(str(path))
    saved = json.loads(path.read_text())
    saved["config"].update(batch_size=64.0, seed=3.0)
    path.write_text(json.dumps(saved))
    loaded = load(path)
    assert (loaded.batch_size, loaded.seed) == (64, 3) and isinstance(loaded.batch_size, int)


@pytest.mark.parametrize("key, value, said", [
    ("epochs", "three", "plan key 'epochs' has the wrong type ('three')"),
    ("length_changes", "abc", "plan key 'length_changes' has the wrong type ('abc')"),
    ("length_changes", [[2, "x"]], "length_changes must be a list of [epoch, length] pairs, got [[2, 'x']]"),
    ("tta", None, "plan key 'tta' has the wrong type (None)"),
    ("recipe", [], "plan key 'recipe' has the wrong type ([])"),
    ("recipe", {"lr": "x"}, 'the plan\'s recipe: "lr" must be a number'),
])
def test_a_hand_edited_plan_of_the_wrong_type_is_named_with_its_key_and_file(key, value, said, tmp_path):
    path = tmp_path / "config.json"
    assert refused_after_editing(path, "plan", key, value).startswith(f"{path}: {said}")


def test_a_bad_warm_up_or_a_hand_edited_length_history_stops_the_command_named(tmp_path, capsys):
    plan = RunPlan(RunLength(6, ((4, 8),)), 0, "flip", "float32").as_record()
    plan["length_changes"] = [[4, 8], [2, 5]]  # out of order: not what a run writes
    (tmp_path / "config.json").write_text(json.dumps({"config": Config(epochs=6, time_budget=10).to_dict(),
                                                      "plan": plan}))
    for argv, message in [(["--demo", "--warmup-epochs", "two"], "--warmup-epochs takes a whole number of epochs or "
                                                                  "auto, got 'two'"),
                          (["--config", str(tmp_path / "config.json")], "its changes name increasing epochs from 1 "
                                                                         "on, got 6 and [[4, 8], [2, 5]]")]:
        with pytest.raises(SystemExit) as exited:  # in this process: both fail before any work
            run_main(lambda argv=argv: train_command([*argv, "--out", str(tmp_path / "x"), "--no-progress"]))
        err = capsys.readouterr().err
        assert exited.value.code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "x").exists()


def test_saved_config_reloads_equal(tmp_path):
    cfg = config_from_args(parse("--seed", "7", "--gpus", "0,1", "--data-dir", "/d"))
    cfg.save(str(tmp_path / "config.json"), {"classes": ["a"]})
    assert load(tmp_path / "config.json") == cfg
    assert cfg.gpu_ids() == [0, 1]


@pytest.mark.parametrize("flags,message", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--gpus", "a,b"], "--gpus takes comma-separated integers"),
    (["--gpus", "1,1"], "distinct ids"),
    (["--lr-decay", "2"], "--lr-decay in (0, 1]"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--time-budget", "-5"], "--time-budget must be 0 to 10080 minutes (a week), got -5"),
    (["--wide-from-epochs", "-1"], "--wide-from-epochs must be >= 0 epochs (0: never), got -1"),
    (["--warmup-epochs", "two"], "--warmup-epochs takes a whole number of epochs or auto, got 'two'"),
    (["--warmup-epochs", "20", "--schedule", "linear"], "--warmup-epochs must be >= 0 and fewer than --epochs (20)"),
])
def test_bad_values_name_the_flag(flags, message):
    with pytest.raises(ConfigError) as err:
        config_from_args(parse(*flags))
    assert message in str(err.value)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match=r"choose one of \['cpu-fast', 'cpu-fast-sgd', 'd2l', 'd2l-exercise', 'demo', 'resnet18-best'\]"):
        config_from_args(parse(), preset="fast")


def test_import_without_mxnet_names_the_extra():
    blocked = "import sys; sys.modules['mxnet'] = None; import gluon_cifar"
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'gluon_cifar[cpu]'" in result.stderr and "[cu112]" in result.stderr


def test_choices_are_one_list_for_the_flags_and_for_saved_configs(capsys):
    with pytest.raises(SystemExit):
        parse("--loader", "fast")
    assert "invalid choice: 'fast' (choose from 'decoded', 'folder')" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--loader must be one of decoded, folder, got 'fast'"):
        Config.from_dict({"loader": "fast"})  # e.g. an edited config.json
    with pytest.raises(ConfigError, match="--precision must be one of auto, float32, bfloat16, float16"):
        Config.from_dict({"precision": "float8"})


def test_an_explicit_epoch_count_turns_a_presets_time_budget_off():
    assert config_from_args(parse(), preset="cpu-fast").time_budget == 45
    assert config_from_args(parse("--epochs", "3"), preset="cpu-fast").time_budget == 0
    both = config_from_args(parse("--epochs", "3", "--time-budget", "20"), preset="cpu-fast")
    assert (both.epochs, both.time_budget) == (3, 20)  # the budget chooses; --epochs is its fallback


def test_a_run_written_before_plans_loads_with_its_decisions_as_its_plan(tmp_path):
    """0.2.0 and earlier kept the decisions in the settings themselves (the epochs and views chosen, the length's
    changes as the setting `length_changes`) and the budget's numbers beside them."""
    old = Config(epochs=12.9, time_budget=45, tta="flip-shift", warmup_epochs=0).to_dict()
    old["length_changes"] = [[3, 11.1]]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": old, "precision_used": "bfloat16", "time_budget_plan": {"epochs": 11.1},
                                "time_budget_replans": [{"after_epoch": 3, "epochs": 12.9}]}))
    asked, plan = rundir.saved_run(str(path))
    assert (plan.length.epochs, plan.length.changes, plan.tta, plan.precision) == (12.9, ((3, 11.1),), "flip-shift",
                                                                                   "bfloat16")
    assert plan.budget == {"epochs": 11.1} and plan.replans == [{"after_epoch": 3, "epochs": 12.9}]
    assert plan.settings(asked) == asked and asked.time_budget == 45


@pytest.mark.parametrize("key, value", [("tta", "auto"), ("tta", "sideways"), ("warmup_epochs", -1)])
def test_a_hand_edited_plan_value_out_of_range_is_named(key, value, tmp_path):
    path = tmp_path / "config.json"
    plan = RunPlan(RunLength(3), 0, "flip", "float32").as_record()
    Config().save(str(path), {"plan": {**plan, key: value}})
    with pytest.raises(ConfigError, match=f"{path}: the plan's views must be one of none, flip, flip-shift"):
        load(path)
