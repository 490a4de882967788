"""Export: records as CSV, settings as JSON that reruns, the animation as a GIF."""

import csv
import io
import json
import math

import numpy as np
import pytest

import phviz
from phviz.export import (
    RECORD_COLUMNS,
    animate,
    load_settings,
    records_csv,
    settings_json,
)


@pytest.fixture(scope="module")
def run():
    config = phviz.make_config("default", n_samples=80, hidden="4", horizon=2.0, eval_every=2)
    trainer = phviz.Trainer(config)
    return trainer, list(trainer.advance(12))


def test_records_csv_holds_every_record_and_its_numbers(run):
    trainer, records = run
    rows = list(csv.DictReader(io.StringIO(records_csv(records, trainer.tracked))))
    assert len(rows) == len(records)
    tracked = [int(i) for i in trainer.tracked]
    assert list(rows[0])[: len(RECORD_COLUMNS)] == list(RECORD_COLUMNS)
    assert list(rows[0])[len(RECORD_COLUMNS) :] == [f"theta_{i}" for i in tracked] + [
        f"p_{i}" for i in tracked
    ]
    for row, record in zip(rows, records, strict=True):
        assert float(row["t"]) == record.t
        assert int(row["interval"]) == record.interval
        assert float(row["hamiltonian"]) == record.hamiltonian
        assert float(row["ledger_residual"]) == record.ledger_residual
        assert int(row["switched"]) == int(record.switched)
        if math.isnan(record.test_loss):
            assert row["test_loss"] == ""  # not evaluated at this interval
        else:
            assert float(row["test_loss"]) == record.test_loss
        k = tracked[-1]
        assert float(row[f"theta_{k}"]) == float(record.theta_sample[-1])
        assert float(row[f"p_{k}"]) == float(record.p_sample[-1])


def test_records_csv_refuses_tracked_indices_of_the_wrong_length(run):
    _, records = run
    with pytest.raises(ValueError, match="tracked"):
        records_csv(records, [0])


def test_settings_json_reruns_the_same_run(run, tmp_path):
    trainer, records = run
    path = tmp_path / "run.json"
    path.write_text(settings_json(trainer.config))
    values = json.loads(path.read_text())
    assert values["damping"] == trainer.config.damping and "name" not in values
    again = phviz.Trainer(load_settings(path))
    rerun = list(again.advance(len(records)))
    assert [r.train_loss for r in rerun] == [r.train_loss for r in records]


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "object of settings"),
        ('{"dampign": 1}', "Unknown settings: dampign"),
        ('{"damping": -1}', "damping"),
    ],
)
def test_bad_settings_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_settings(path)


def test_animation_is_a_gif_of_the_run(run, tmp_path):
    import imageio.v3 as iio

    trainer, records = run
    seen = []
    path = animate(
        trainer.model,
        trainer.dataset,
        records,
        tmp_path / "run.gif",
        gains={"damping": 0.5, "weight_decay": trainer.system.weight_decay},
        frames=5,
        resolution=11,
        progress=lambda done, total: seen.append((done, total)),
    )
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 5 and frames.shape[-1] in (3, 4)
    assert seen == [(i, 5) for i in range(1, 6)]
    # the frames differ (the path and the energy grow), and are not blank
    assert not np.array_equal(frames[0], frames[-1])
    assert frames[-1].std() > 10


def test_animation_refuses_what_it_cannot_write(run, tmp_path):
    trainer, records = run
    with pytest.raises(ValueError, match="use one of"):
        animate(trainer.model, trainer.dataset, records, tmp_path / "run.avi")
    with pytest.raises(ValueError, match="at least two records"):
        animate(trainer.model, trainer.dataset, records[:1], tmp_path / "run.gif")
