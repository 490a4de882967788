"""Your own data and per-layer gains in the explorer, without a browser: drawn points
and files start a run on exactly those points, a layer's gain reaches the trainer,
and every bad input is said in the banner while the run in progress stays."""

import numpy as np
import pytest
import torch
from conftest import make_small_config
from waiting import wait_for

from phviz import make_config
from phviz.budget import Budget
from phviz.training import Trainer
from phviz.userdata import points_dataset
from phviz.views import Explorer
from phviz.views.gainmap import GainMap
from phviz.views.gainview import STALE
from phviz.views.layergains import checked_layer_gain, layer_mapping, layer_prefixes
from phviz.views.owndata import DRAWN, drawn_points


@pytest.fixture
def explorer():
    e = Explorer(make_config("default", horizon=0.0), live=False, budget=Budget(max_samples=500))
    assert wait_for(lambda: e.update_view(force=True) or e.session.ready)
    yield e
    e.close()


def new_run(explorer, before):
    """The session's ``RunInfo`` once a trainer other than ``before`` (a ``RunInfo``)
    is built and shown."""
    explorer.update_view(force=True)
    run = explorer.session.run
    return run if run is not None and run.build != before.build else None


def n_train(run) -> int:
    return len(run.dataset.x_train)


def banner(explorer) -> str:
    explorer.update_view(force=True)
    return explorer.banner.object if explorer.banner.visible else ""


# ------------------------------------------------------------------ layer gains
def test_layers_are_the_parameter_prefixes_in_order():
    names = ["0.weight", "0.bias", "2.weight", "2.bias", "layers.1.weight", "scale"]
    assert layer_prefixes(names) == ["0", "2", "layers.1", "scale"]


def test_layers_left_alone_keep_the_scalar_gain():
    assert layer_mapping(["0", "2", "4"], 0.5, {"2": 0.1}) == {"0": 0.5, "2": 0.1, "4": 0.5}
    with pytest.raises(ValueError, match="No layer is named 7"):
        layer_mapping(["0", "2"], 0.5, {"7": 0.1})


@pytest.mark.parametrize(
    "gain, value, message",
    [
        ("damping", -0.1, "Invalid damping for layer '2': -0.1"),
        ("inertia", 0.0, "Invalid inertia for layer '2': 0.0"),
        ("damping", None, "empty"),
        ("inertia", float("nan"), "must be finite"),
    ],
)
def test_bad_layer_gains_are_named(gain, value, message):
    with pytest.raises(ValueError, match=message):
        checked_layer_gain(gain, "2", value)


def test_a_layer_edit_reaches_the_running_trainer_and_bad_values_keep_the_old(explorer):
    table = explorer.layer_gains
    assert table.layers == ["0", "2", "4"]
    table.inputs["damping", "2"].value = 0.25
    explorer.session.step(1)  # taken at the next interval

    def damping_of(trainer) -> dict:
        damping, layout = trainer.system.damping, trainer.system.layout
        if not isinstance(damping, torch.Tensor):
            return {}
        return {n: damping[layout.slice(n)].unique().tolist() for n in ("2.weight", "0.bias")}

    per_layer = wait_for(lambda: explorer.session.ask(damping_of))
    assert per_layer["2.weight"] == pytest.approx([0.25])
    assert per_layer["0.bias"] == pytest.approx([explorer.settings.damping])
    assert "0.25" in table.note.object
    table.inputs["inertia", "4"].value = 0.0
    assert "Invalid inertia for layer '4'" in banner(explorer)
    assert table.inputs["inertia", "4"].value == pytest.approx(explorer.settings.inertia)
    assert "inertia" not in table.overrides or not table.overrides["inertia"]


def test_the_slider_sets_every_layer_again(explorer):
    table = explorer.layer_gains
    table.inputs["damping", "0"].value = 0.3
    explorer.settings.damping = 0.7
    assert table.overrides["damping"] == {}
    assert [table.inputs["damping", n].value for n in table.layers] == [0.7, 0.7, 0.7]


def test_the_table_follows_the_model(explorer):
    before = explorer.session.run
    explorer.settings.hidden = "8"
    assert wait_for(lambda: new_run(explorer, before), timeout=60)
    assert explorer.layer_gains.layers == ["0", "2"]
    assert set(explorer.layer_gains.inputs) == {
        (g, n) for g in ("damping", "inertia") for n in ("0", "2")
    }


# ------------------------------------------------------------------ own data
def drawn(n=12, classes=2):
    """(x (n, 2), labels (n,)) for ``OwnData.set_drawn``."""
    return np.random.default_rng(0).normal(size=(n, 2)), np.arange(n) % classes


def page_edit(own, data: dict) -> None:
    """The draw tool's message, as the server applies it: the page's whole copy."""
    own.drawn.data = data


def test_drawn_points_take_class_zero_where_the_browser_left_none():
    x, labels = drawn_points(dict(x=[0, 1], y=[2, 3], label=[1, None]))
    assert x.tolist() == [[0, 2], [1, 3]] and labels.tolist() == [1, 0]


def test_training_on_drawn_points_and_back(explorer):
    before = explorer.session.run
    explorer.own_data.set_drawn(*drawn(12))
    explorer.own_data.train_on_drawn()
    run = wait_for(lambda: new_run(explorer, before), timeout=60)
    assert run and run.dataset.name == DRAWN and n_train(run) == 12
    assert "Training on 12 points" in explorer.own_data.count.object
    assert explorer.own_data.back_button.visible
    assert explorer.task_kind == "regions" and explorer.own_data.tools
    # A change of model keeps the drawn points.
    explorer.settings.hidden = "8"
    run2 = wait_for(lambda: new_run(explorer, run), timeout=60)
    assert run2 and run2.dataset.name == DRAWN
    explorer.own_data.back()
    run3 = wait_for(lambda: new_run(explorer, run2), timeout=60)
    assert run3 and run3.dataset.name == explorer.settings.dataset
    assert not explorer.own_data.back_button.visible


@pytest.mark.parametrize(
    "data, message", [(drawn(3), "Too few points: 3"), (drawn(8, classes=1), "Only one class")]
)
def test_bad_drawings_are_said_and_the_run_stays(explorer, data, message):
    before = explorer.session.run
    explorer.own_data.set_drawn(*data)
    explorer.own_data.train_on_drawn()
    text = banner(explorer)
    assert message in text and "kept" in text
    assert explorer.session.run.build == before.build and explorer.session.data is None


def test_start_from_the_current_data_copies_the_training_points(explorer):
    explorer.own_data.start_from_current()
    n = n_train(explorer.session.run)
    assert len(explorer.own_data.drawn.data["x"]) == n
    assert f"{n} points drawn" in explorer.own_data.drawn_count.text


def test_an_edit_on_an_older_copy_does_not_undo_a_replacement(explorer):
    own = explorer.own_data
    own.set_drawn(*drawn(3))
    stale = {k: [*v, v[-1]] for k, v in own.drawn.data.items()}  # a click on that copy
    own.start_from_current()
    n = n_train(explorer.session.run)
    page_edit(own, stale)
    assert len(own.drawn.data["x"]) == n
    assert "was not kept" in banner(explorer)
    # An edit on the current copy stays; an added point takes the class picked.
    own.class_picker.value = "1"
    added = {k: [*v, 0.5 if k in ("x", "y") else 0] for k, v in own.drawn.data.items()}
    page_edit(own, added)
    assert len(own.drawn.data["x"]) == n + 1
    assert own.drawn.data["label"][-1] == 1 and own.drawn.data["x"][-1] == 0.5


def test_data_settings_wait_while_the_run_trains_on_own_data(explorer):
    before = explorer.session.run
    explorer.own_data.set_drawn(*drawn(12))
    explorer.own_data.train_on_drawn()
    run = wait_for(lambda: new_run(explorer, before), timeout=60)
    explorer.settings.noise = 0.3
    text = banner(explorer)
    assert "Changed noise of the 'moons' data set: the run goes on with your drawn" in text
    assert explorer.session.run.build == run.build and explorer.session.config.noise == 0.3


def test_back_to_the_data_set_clears_the_drawn_points(explorer):
    explorer.own_data.set_drawn(*drawn(12))
    explorer.own_data.train_on_drawn()
    explorer.own_data.back()
    assert explorer.own_data.drawn.data["x"] == []


def test_a_csv_file_starts_a_run_and_bad_files_are_named(explorer):
    before = explorer.session.run
    rows = "\n".join(f"{i % 7},{i % 5},{i % 3}" for i in range(40))
    explorer.own_data.load_csv("mine.csv", ("x1,x2,label\n" + rows).encode())
    run = wait_for(lambda: new_run(explorer, before), timeout=60)
    assert run and run.dataset.name == "mine.csv" and run.dataset.n_classes == 3
    assert len(run.dataset.x_train) + len(run.dataset.x_test) == 40
    explorer.own_data.load_csv("bad.csv", b"1,2,0\n1,x,1\n")
    assert wait_for(lambda: "row 2, column 2 is not a number" in banner(explorer))
    assert "bad.csv" in banner(explorer) and explorer.session.run.build == run.build
    big = "\n".join(f"{i},{i},{i % 2}" for i in range(600)).encode()
    explorer.own_data.load_csv("big.csv", big)
    assert wait_for(lambda: "Too many rows: 600 (at most 500" in banner(explorer))


def test_the_model_budget_applies_to_own_data(explorer):
    explorer.session.budget = Budget(max_parameters=50)
    explorer.own_data.set_drawn(*drawn(12))
    explorer.own_data.train_on_drawn()
    assert "at most 50" in banner(explorer)
    assert explorer.session.data is None


def test_the_explorer_opens_with_a_links_points(explorer):
    before = explorer.session.run
    explorer.own_data.open_link({"data": [b"0,0,0;1,1,1;0,1,1;1,0,0;0.5,0.5,0"]})
    run = wait_for(lambda: new_run(explorer, before), timeout=60)
    assert run and n_train(run) == 5
    assert len(explorer.own_data.drawn.data["x"]) == 5
    explorer.own_data.open_link({"data": [b"0,0,0;oops"]})
    assert "Invalid data in the link: point 2" in banner(explorer)


def test_a_regression_file_trains_a_field(explorer):
    before = explorer.session.run
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(60, 2))
    rows = "\n".join(f"{a},{b},{b},{-a}" for a, b in x)  # a rotation
    explorer.own_data.load_csv("field.csv", rows.encode())
    run = wait_for(lambda: new_run(explorer, before), timeout=60)
    assert run and run.dataset.task == "regression"
    assert wait_for(lambda: shown_kind(explorer) == "field", timeout=60)
    picture = wait_for(lambda: explorer.session.shown.task, timeout=60)
    assert picture.kind == "field" and np.isfinite(picture.values).all()
    assert len(picture.grid) == len(run.dataset.x_train)  # arrows at the file's points


def shown_kind(explorer):
    explorer.update_view(force=True)
    return explorer.task_kind


def test_the_gain_map_trains_on_the_runs_own_data():
    config = make_small_config()
    own = points_dataset(*drawn(12), train_fraction=1.0, name=DRAWN)
    view = GainMap(config, data=lambda: own, x_values=[0.5, 2.0], y_values=[1.0], horizon=0.2)
    view.start()
    view.wait(60)
    initial = view.result.attrs["initial_train_loss"]
    assert initial == pytest.approx(Trainer(config, dataset=own).evaluate()["train_loss"])
    assert initial != pytest.approx(Trainer(config).evaluate()["train_loss"])


def test_the_gain_map_is_dropped_when_the_runs_data_changes(explorer):
    explorer.gains.map.status = "a map"
    before = explorer.session.run
    explorer.own_data.set_drawn(*drawn(12))
    explorer.own_data.train_on_drawn()
    assert wait_for(lambda: new_run(explorer, before), timeout=60)
    assert explorer.gains.map.status == STALE
    explorer.gains.map.status = "a map on the drawn points"
    explorer.settings.noise = 0.3  # the generated data set's: the run's data stay
    explorer.update_view(force=True)
    assert explorer.gains.map.status == "a map on the drawn points"
