"""python -m phviz train, as a user runs it."""

import json
import subprocess
import sys

import pytest


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
