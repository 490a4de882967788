"""Your own data: drawn points, CSV files and links become datasets; bad files are named."""

import numpy as np
import pytest

import phviz
from phviz.userdata import (
    decode_points,
    encode_points,
    points_dataset,
    read_points_csv,
)

GOOD = "x1,x2,label\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n0.5,0.5,0\n0.2,0.9,1\n"


def test_a_csv_becomes_a_classification_the_trainer_runs():
    x, y = read_points_csv(GOOD)
    assert x.shape == (6, 2) and list(y) == [0, 1, 1, 0, 0, 1]
    data = points_dataset(x, y, train_fraction=1.0)
    assert (data.task, data.n_classes, data.loss) == ("classification", 2, "cross_entropy")
    assert data.x_train.shape == (6, 2) and data.y_train.tolist() == [0, 1, 1, 0, 0, 1]
    trainer = phviz.Trainer(phviz.make_config("default", hidden="4"), dataset=data)
    records = list(trainer.advance(5))
    assert np.isfinite(records[-1].train_loss)


def test_four_columns_make_a_regression():
    x, y = read_points_csv(b"\xef\xbb\xbf1,2,3,4\n5,6,7,8\n1,1,1,1\n2,2,2,2\n")  # with a BOM
    data = points_dataset(x, y)
    assert data.task == "regression" and data.output_dim == 2 and data.loss == "mse"


def test_the_split_keeps_every_point_once():
    x = np.random.default_rng(0).normal(size=(40, 2))
    y = np.arange(40) % 3
    data = points_dataset(x, y, train_fraction=0.75, seed=1)
    assert len(data.x_train) == 30 and len(data.x_test) == 10
    together = np.concatenate([data.x_train.numpy(), data.x_test.numpy()])
    expected = x.astype(np.float32).round(5)
    assert sorted(map(tuple, together.round(5))) == sorted(map(tuple, expected))


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n", "2 columns; expected 3"),
        ("1,2,0\n1,x,1\n", "row 2, column 2 is not a number: 'x'"),
        ("1,2,0\n1,2\n", "row 2 has 2 columns"),
        ("x1,x2,label\n", "no rows of numbers"),
        ("1,2,inf\n", "not a number"),
    ],
)
def test_bad_csv_files_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        read_points_csv(text)


def test_too_many_rows_names_the_servers_limit():
    text = "\n".join(f"{i},{i},{i % 2}" for i in range(50))
    with pytest.raises(ValueError, match="Too many rows: 50 .at most 20 on this server"):
        read_points_csv(text, max_points=20)


def test_a_file_that_is_not_text_is_named():
    with pytest.raises(ValueError, match="not text"):
        read_points_csv(b"\xff\xfe\x00\x81")


@pytest.mark.parametrize(
    "y, message",
    [
        ([0, 0, 0, 0], "Only one class"),
        ([0, 1, 0.5, 1], "whole numbers"),
        ([0, 1, 9, 1], "Too many classes"),
    ],
)
def test_bad_labels_are_named(y, message):
    with pytest.raises(ValueError, match=message):
        points_dataset(np.zeros((4, 2)), y)


def test_too_few_points():
    with pytest.raises(ValueError, match="Too few points: 3"):
        points_dataset(np.zeros((3, 2)), [0, 1, 0])


def test_points_travel_in_a_link():
    x = np.array([[0.1234, -1.0], [2.0, 3.5]])
    text = encode_points(x, [0, 1])
    assert text == "0.123,-1.000,0;2.000,3.500,1"
    back, labels = decode_points(text)
    np.testing.assert_allclose(back, x, atol=1e-3)
    assert labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="Invalid point 2 in the link: '1,2'"):
        decode_points("0,0,0;1,2")
