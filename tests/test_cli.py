"""python -m phviz train, as a user runs it."""

import argparse
import json
import subprocess
import sys

import param
import pytest

from phviz.__main__ import NOT_ON_CLI, add_train_parser, config_from_args
from phviz.config import TrainingConfig, make_config
from phviz.flags import describe_bounds


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "phviz", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_train_writes_the_promised_json(tmp_path):
    out = tmp_path / "run.json"
    result = run(
        "train",
        "--dataset",
        "moons",
        "--hidden",
        "16,16",
        "--damping",
        "0.5",
        "--inertia",
        "1",
        "--dt",
        "0.5",
        "--epochs",
        "20",
        "--solver",
        "dopri5",
        "--device",
        "auto",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    for key in (
        "final_train_loss",
        "wall_seconds",
        "nfe",
        "t_final",
        "final_hamiltonian",
        "test_loss",
        "accuracy",
    ):
        assert key in summary
    assert summary["t_final"] == pytest.approx(10.0)  # 20 full-batch intervals of 0.5
    assert summary["nfe"] > 0 and summary["final_train_loss"] < 0.69
    assert summary["config"]["damping"] == 0.5
    assert "train loss" in result.stdout


def test_minibatch_epochs_set_the_horizon(tmp_path):
    out = tmp_path / "run.json"
    result = run(
        "train",
        "--dataset",
        "xor",
        "--batch-size",
        "100",
        "--dt",
        "0.2",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert summary["epochs"] == pytest.approx(2.0)
    assert summary["t_final"] == pytest.approx(2 * 3 * 0.2)  # 300 training points, 3 batches


def test_preset_and_bad_input_messages(tmp_path):
    result = run("train", "--preset", "paper-blobs", "--horizon", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    bad = run("train", "--hidden", "0")
    assert bad.returncode == 2 and "Invalid hidden width: 0" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = run("train", "--damping", "-1")
    assert bad.returncode == 2 and "damping" in bad.stderr and "Traceback" not in bad.stderr


def test_divergence_exits_nonzero_with_a_message(tmp_path):
    out = tmp_path / "run.json"
    result = run(
        "train",
        "--preset",
        "paper-blobs",
        "--solver",
        "euler",
        "--step-size",
        "0.1",
        "--potential-gain",
        "1e6",
        "--damping",
        "0",
        "--horizon",
        "5",
        "--quiet",
        "--out",
        str(out),
    )
    assert result.returncode == 1
    assert "diverged" in result.stderr and "Traceback" not in result.stderr
    assert "error" in json.loads(out.read_text())


# ------------------------------------------------------------------ flags = the config
def train_parser():
    subparsers = argparse.ArgumentParser().add_subparsers()
    add_train_parser(subparsers)
    return subparsers.choices["train"]


def setting_flags():
    """{setting: its argparse action} for the flags generated from the config."""
    return {a.dest: a for a in train_parser()._actions if a.dest in TrainingConfig.param}


def outside(parameter):
    """A value just past each finite bound of a number parameter."""
    step = 1 if isinstance(parameter, param.Integer) else None
    low, high = parameter.bounds or (None, None)
    if low is not None:
        yield low - (step or (low / 2 if low > 0 else 1.0))
    if high is not None:
        yield high + (step or high)


def test_every_setting_has_a_flag_or_a_reason():
    flags = setting_flags()
    assert set(NOT_ON_CLI) <= set(TrainingConfig.param)
    for name in TrainingConfig.param:
        assert (name in flags) != (name in NOT_ON_CLI), name
        if name in flags:
            assert f"--{name.replace('_', '-')}" in flags[name].option_strings


def test_flags_take_the_configs_types_choices_and_help():
    for name, action in setting_flags().items():
        parameter = TrainingConfig.param[name]
        assert parameter.doc and parameter.doc in action.help
        if isinstance(parameter, param.Selector):
            assert list(action.choices) == list(parameter.objects)
        elif isinstance(parameter, param.Boolean):
            assert f"--no-{name.replace('_', '-')}" in action.option_strings
        elif isinstance(parameter, param.Number) and parameter.bounds is not None:
            assert describe_bounds(parameter) in action.help


def test_a_bound_broken_on_the_command_line_is_refused_with_the_bound(capsys):
    checked = 0
    for name, action in setting_flags().items():
        parameter = TrainingConfig.param[name]
        if not isinstance(parameter, param.Number):
            continue
        bounds = zip(parameter.bounds or (), parameter.inclusive_bounds, strict=True)
        for low_or_high, inclusive in bounds:
            if low_or_high is None:
                continue
            if inclusive:  # the bound itself is in
                TrainingConfig(**{name: low_or_high})
            else:  # a gain that must be > 0, the engine's rule
                with pytest.raises(ValueError, match=f"Invalid {name}"):
                    TrainingConfig(**{name: low_or_high})
        for value in outside(parameter):
            with pytest.raises(ValueError):
                TrainingConfig(**{name: value})
            with pytest.raises(SystemExit) as exit_:
                train_parser().parse_args([action.option_strings[0], str(value)])
            assert exit_.value.code == 2
            message = capsys.readouterr().err
            assert action.option_strings[0] in message
            assert describe_bounds(parameter) in message
            checked += 1
    assert checked >= 20


def test_the_old_flags_keep_their_meaning():
    args = train_parser().parse_args(
        ["--preset", "default", "--dt", "0.3", "--seed", "4", "--linear", "--no-shuffle"]
    )
    config = config_from_args(args)
    assert config.switching_interval == 0.3
    assert (config.data_seed, config.model_seed) == (4, 4)
    assert config.architecture == "linear" and config.shuffle is False
    args = train_parser().parse_args(["--preset", "paper-blobs", "--hidden", "8", "--seed", "4"])
    config = config_from_args(args)
    assert (config.architecture, config.hidden) == ("mlp", "8")  # --hidden asks for an MLP
    args = train_parser().parse_args(["--seed", "4", "--model-seed", "1"])
    config = config_from_args(args)
    assert (config.data_seed, config.model_seed) == (4, 1)
    # unset flags leave the preset's settings alone
    config = config_from_args(train_parser().parse_args(["--preset", "paper-blobs-online"]))
    assert config.values() == make_config("paper-blobs-online").values()


def test_a_settings_file_reruns_with_flags_on_top(tmp_path):
    from phviz.export import settings_json

    config = make_config("paper-duffing", damping=0.7, horizon=3.0)
    path = tmp_path / "run.json"
    path.write_text(settings_json(config))
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--config", str(path), "--inertia", "2"])
    loaded = config_from_args(args)
    assert loaded.values() == {**config.values(), "inertia": 2.0}
    both = parser.parse_args(["train", "--config", str(path), "--preset", "default"])
    with pytest.raises(ValueError, match="--config or --preset"):
        config_from_args(both)


def test_train_reruns_an_exported_settings_file_end_to_end(tmp_path):
    from phviz.export import settings_json

    path = tmp_path / "run.json"
    path.write_text(settings_json(make_config("default", hidden="4", horizon=0.5)))
    out = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "phviz", "train", "--config", str(path), "--quiet"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert summary["config"]["hidden"] == "4" and summary["config"]["horizon"] == 0.5
    assert summary["t_final"] == pytest.approx(0.5)
    # the summary itself is a settings file too
    again = make_config(None, **summary["config"])
    from phviz.export import load_settings

    assert load_settings(out).values() == again.values()
