"""The comparison: same start, same budget, the table says what the runs did."""

import json
import math

import pytest
import torch

from phviz import Trainer, make_config
from phviz.__main__ import main
from phviz.compare import (
    GRIDS,
    METHODS,
    Curve,
    best,
    compare,
    config_for,
    run_discrete,
    table_rows,
)

torch.set_num_threads(1)

BUDGET = 60
SMALL_GRIDS = {"phviz-ode": (1.0, 3.0), "phviz-sgd": (0.3, 0.6), "sgd-momentum": (0.1, 0.3),
               "adam": (0.01, 0.03)}  # fmt: skip


@pytest.fixture(scope="module")
def results():
    return compare(["xor", "duffing"], BUDGET, grids=SMALL_GRIDS)


def test_every_method_starts_from_the_same_weights(results):
    for by_method in results.values():
        starts = {c.loss[0] for curves in by_method.values() for c in curves}
        assert len(starts) == 1


def test_runs_keep_to_the_budget(results):
    for by_method in results.values():
        for method, curves in by_method.items():
            for c in curves:
                assert c.evals == sorted(c.evals) and c.evals[-1] <= BUDGET
                if method != "phviz-ode":  # one gradient evaluation per step
                    assert c.evals[-1] == BUDGET
                assert len(c.evals) == len(c.wall) == len(c.loss)


def test_table_reports_the_best_of_each_grid(results):
    rows = table_rows(results)
    assert len(rows) == 2 * len(METHODS)
    for row in rows:
        curves = results[row["dataset"]][row["method"]]
        assert all(row["final_loss"] <= c.final_loss for c in curves)
        assert row["best_setting"] == best(curves).setting
        assert math.isfinite(row["final_loss"]) and row["final_loss"] < row["initial_loss"]


def test_best_is_the_lowest_final_loss_and_never_a_diverged_run():
    def curve(setting, loss, diverged=False):
        return Curve("xor", "adam", setting, loss=loss, diverged=diverged)

    curves = [
        curve(0.003, [1.0, 0.5]),
        curve(0.01, [1.0, 0.2]),
        curve(0.03, [1.0, math.nan]),  # ended on NaN
        curve(0.1, [1.0, 0.01], diverged=True),  # lowest number, but it diverged
        curve(0.3, []),  # no point at all
    ]
    assert best(curves).setting == 0.01
    assert [c.final_loss for c in curves] == [0.5, 0.2, math.inf, math.inf, math.inf]
    # when every run diverged the first grid value stands (min keeps the first of ties)
    assert best(curves[2:]).setting == 0.03


def test_ph_sgd_and_heavy_ball_take_the_same_steps():
    """With damping chosen so that 1 − h·B/M = 0.9, PortHamiltonianSGD is SGD(0.9)."""
    h = 0.5
    config = make_config("default", dataset="xor", batch_size=0, damping=0.1 / h, inertia=1.0)
    trainer = Trainer(config)
    ph = run_discrete(config, 20, "phviz-sgd", h, trainer)
    lr = config.potential_gain * h**2 / config.inertia
    sgd = run_discrete(config, 20, "sgd-momentum", lr, trainer)
    assert ph.evals == sgd.evals
    assert ph.loss == pytest.approx(sgd.loss, rel=1e-4)


def test_compare_command_writes_table_json_and_plot(tmp_path, capsys):
    rc = main(["compare", "--datasets", "xor", "--budget", "40", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["budget"] == 40
    assert data["grids"] == {m: list(g) for m, g in GRIDS.items()}
    assert [r["method"] for r in data["table"]] == list(METHODS)
    for row in data["table"]:
        assert row["final_loss"] is not None and math.isfinite(row["final_loss"])
        assert row["evaluations"] <= 40
        assert f"| xor | {row['method']} |" in printed
    assert len(data["runs"]) == sum(len(g) for g in GRIDS.values())
    md = (tmp_path / "compare.md").read_text()
    assert md.count("| xor |") == len(METHODS)
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="budget: 0"):
        compare(["xor"], 0)
    with pytest.raises(ValueError, match="method: 'rmsprop'"):
        compare(["xor"], 10, methods=["rmsprop"])
    with pytest.raises(ValueError, match="dataset: 'mnist'"):
        config_for("mnist")
