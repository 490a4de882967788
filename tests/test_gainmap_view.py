"""The gain-map view without a server: computes in a thread, draws, picks, cancels."""

import time

import holoviews as hv
import numpy as np
import pytest
from conftest import make_small_config as small_config

from phviz.views.gainmap import GainMap


def test_the_map_is_computed_in_the_background_and_a_click_picks_a_cells_gains():
    picked = []
    view = GainMap(
        small_config(),
        on_pick=picked.append,
        x_values=[0.5, 2.0],
        y_values=[1.0, 4.0, 16.0],
        horizon=0.3,
    )
    view.start()
    assert view.running
    view.wait(120)
    assert not view.running and view.result is not None, view.status
    assert "6 runs" in view.status

    overlay = view.element()
    rects = overlay.Rectangles.I
    assert len(rects) == 6
    finals = np.sort(rects.dimension_values("final_train_loss"))
    np.testing.assert_allclose(finals, np.sort(view.result.final_train_loss.values.ravel()))
    colour = rects.dimension_values("log10 final training loss")
    np.testing.assert_allclose(np.sort(colour), np.log10(finals))
    options = hv.Store.lookup_options("bokeh", rects, "plot").kwargs
    assert options["logx"] and options["logy"] and "hover" in options["tools"]
    extremes = [f"curvature_{e}_{w}" for e in ("min", "max") for w in ("initial", "final")]
    positive = [k for k in extremes if view.result.attrs[k] > 0]  # λ ≤ 0 has no curve
    assert len(overlay.Curve) == len(positive) >= 2  # λ_max initial and final at least

    view.tap.event(x=1.7, y=5.0)  # nearest on the log axes: damping 2, inertia 4
    assert picked == [{"damping": 2.0, "inertia": 4.0}]

    view.quantity = "time_to_target"
    assert "time to target" in view.element().Rectangles.I.vdims[2].name


def test_a_sweep_in_flight_can_be_cancelled():
    view = GainMap(small_config(), x_values=[0.5, 2.0], y_values=[1.0], horizon=1e4)
    view.start()
    time.sleep(1.0)  # into the integration (the whole sweep would take hours)
    view.cancel()
    view.wait(60)
    assert not view.running
    assert view.status == "Cancelled." and view.result is None


@pytest.mark.parametrize("gain", ["damping", "inertia"])
def test_two_different_gains_are_needed(gain):
    view = GainMap(small_config(), x_gain=gain, y_gain=gain)
    view.start()
    assert not view.running and "two different gains" in view.status
