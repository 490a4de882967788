"""Links: the query string opens a set-up; bad values are named and leave the default."""

import pytest

import phviz
from phviz.links import SECTIONS, link_query, parse_link


def as_server_args(query: str) -> dict:
    """A query string as the server hands it over: key → [bytes]."""
    from urllib.parse import parse_qs

    return {k: [v.encode() for v in vs] for k, vs in parse_qs(query).items()}


def test_a_preset_with_a_changed_gain():
    link = parse_link({"preset": [b"paper-duffing"], "damping": [b"0.7"]})
    assert link.problems == []
    config = link.config()
    assert config.damping == 0.7
    assert config.dataset == "duffing" and config.inertia == 0.5  # the rest is the preset's


def test_a_lesson_with_the_page_keys():
    link = parse_link({"lesson": "kick", "run": "1", "present": "1", "hide": "solver,damping"})
    assert link.problems == []
    assert link.lesson == "kick" and link.run and link.present
    assert link.hide == ("solver", "damping")
    assert link.config().dataset == "xor"


@pytest.mark.parametrize(
    "args, problem",
    [
        ({"damping": "-1"}, "Invalid damping in the link: '-1' (must be"),
        ({"damping": "abc"}, "Invalid damping in the link: 'abc' (expected a number)"),
        ({"damping": "nan"}, "Invalid damping in the link: 'nan' (expected a finite number)"),
        ({"n_samples": "2.5"}, "Invalid n_samples in the link: '2.5' (expected a whole number)"),
        ({"dataset": "nope"}, "Invalid dataset in the link: 'nope' (choose one of"),
        ({"hidden": "-3,x"}, "Invalid hidden in the link: '-3,x'"),
        ({"preset": "nope"}, "Invalid preset in the link: 'nope' (choose one of default"),
        ({"lesson": "nope"}, "Invalid lesson in the link: 'nope' (choose one of underdamped"),
        ({"plane": "tilted"}, "Invalid plane in the link: 'tilted' (choose one of pca"),
        ({"run": "maybe"}, "Invalid run in the link: 'maybe' (use 1 or 0)"),
        ({"hide": "solver,bogus"}, "Invalid hide in the link: 'bogus' is no section"),
        ({"dampign": "1"}, "Unknown link key 'dampign'"),
    ],
)
def test_a_bad_value_is_named_and_the_default_stays(args, problem):
    link = parse_link(args)
    assert len(link.problems) == 1 and link.problems[0].startswith(problem), link.problems
    default = phviz.make_config("default")
    assert link.config().values() == default.values()


def test_good_values_survive_beside_a_bad_one():
    link = parse_link({"damping": "abc", "inertia": "2", "hide": "solver,bogus"})
    assert link.config().inertia == 2.0 and link.config().damping == 0.4
    assert link.hide == ("solver",)
    assert len(link.problems) == 2


def test_every_setting_round_trips_through_a_link():
    config = phviz.make_config(
        "paper-duffing",
        damping=0.7,
        hidden="8,4",
        shuffle=False,
        batch_size=32,
        noise=0.3,
        rtol=1e-6,
        dtype="float64",
    )
    query = link_query(config, preset="paper-duffing", plane="random", hide=("solver",), run=True)
    assert query.startswith("preset=paper-duffing&")
    assert "inertia" not in query  # only what differs from the preset travels
    link = parse_link(as_server_args(query))
    assert link.problems == []
    assert link.config().values() == config.values()
    assert (link.plane, link.hide, link.run, link.present) == ("random", ("solver",), True, False)


def test_a_lesson_link_carries_only_its_changes():
    from phviz.lessons import LESSONS

    config = LESSONS["minibatches"].config()
    config.damping = 1.5
    query = link_query(config, lesson="minibatches")
    assert query == "lesson=minibatches&damping=1.5"
    assert parse_link(as_server_args(query)).config().values() == config.values()


def test_sections_name_the_sidebar():
    assert {"data", "model", "gains", "solver"} <= set(SECTIONS)


def test_a_link_carries_a_small_drawn_data_set():
    import numpy as np

    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.5]])
    labels = np.array([0, 0, 1, 1])
    query = link_query(phviz.make_config("default"), data=(x, labels))
    link = parse_link(as_server_args(query))
    assert link.problems == []
    np.testing.assert_allclose(link.data[0], x)
    assert link.data[1].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("0,0,0;1,1", "Invalid data in the link: point 2: '1,1' (x1,x2,label)"),
        ("0,0,0;1,1,0;0,1,0;1,0,0", "Invalid data in the link: Only one class"),
        ("0,0,0;1,1,1", "Invalid data in the link: Too few points: 2"),
    ],
)
def test_bad_link_data_is_named_and_left_out(text, problem):
    link = parse_link({"data": text})
    assert link.data is None
    assert len(link.problems) == 1 and link.problems[0].startswith(problem)
