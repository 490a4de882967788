"""Links, lessons and export in headless Chromium: a link opens its set-up with its
values in the widgets and its sections hidden, a lesson link shows the lesson, a bad
value is named in the banner while the page works, and the exported records and
settings download, parse, and rerun from the command line. Every wait is on a
condition (Playwright's ``expect`` polls the page)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pytest
from browsing import served

from phviz.bench.pages import ROOT
from phviz.lessons import LESSONS

pytestmark = pytest.mark.browser
DEADLINE_MS = 60_000  # any one condition on a loaded 2-core machine
STATUS_T = re.compile(r"\bt\s+0\.10\b")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module."""
    with served(tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


def expect(locator):
    from playwright.sync_api import expect as _expect

    _expect.set_options(timeout=DEADLINE_MS)
    return _expect(locator)


def opened(page, url: str, query: str) -> None:
    page.goto(f"{url}?{query}", timeout=4 * DEADLINE_MS)
    expect(page.locator(".phviz-status").first).to_be_attached()


def test_a_link_opens_its_set_up_and_copies_back(page, server):
    opened(page, server, "preset=paper-blobs&damping=0.7&hide=solver,device")
    expect(page.locator(".phviz-damping input").first).to_have_value("0.7")
    expect(page.locator(".phviz-dataset select").first).to_have_value(re.compile("blobs"))
    expect(page.locator(".phviz-inertia input").first).to_have_value("0.5")  # the preset's
    assert page.locator(".phviz-solver").count() and page.locator(".phviz-device").count()
    expect(page.locator(".phviz-solver").first).to_be_hidden()
    expect(page.locator(".phviz-device").first).to_be_hidden()
    expect(page.locator(".phviz-inertia").first).to_be_visible()
    expect(page.locator(".phviz-banner").first).to_be_hidden()  # nothing to complain of

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator(".phviz-copy-link button").first.click()
    field = page.locator(".phviz-link input").first
    expect(field).to_be_visible()
    expect(field).to_have_value(re.compile(r"/explorer\?preset=paper-blobs&damping=0\.7&hide="))
    copied = "async () => (await navigator.clipboard.readText()).includes('damping=0.7')"
    page.wait_for_function(copied)


def test_a_lesson_link_shows_the_lesson(page, server):
    lesson = LESSONS["underdamped"]
    opened(page, server, "lesson=underdamped")
    pane = page.locator(".phviz-lesson").first
    expect(pane).to_be_visible()
    expect(pane).to_contain_text(lesson.title)
    expect(pane).to_contain_text("Watch")
    expect(page.locator(".phviz-damping input").first).to_have_value("0.1")
    expect(page.locator(".phviz-lesson-picker select").first).to_have_value(lesson.title)


def test_a_bad_link_value_is_named_and_the_page_works(page, server):
    opened(page, server, "damping=lots&inertia=2")
    banner = page.locator(".phviz-banner").first
    expect(banner).to_contain_text("damping")
    expect(banner).to_contain_text("'lots'")
    expect(page.locator(".phviz-inertia input").first).to_have_value("2")  # the rest applies
    page.locator(".phviz-step button").first.click()
    expect(page.locator(".phviz-status").first).to_contain_text(STATUS_T)


def test_the_run_downloads_as_csv_and_json_and_reruns(page, server, tmp_path):
    opened(page, server, "damping=0.8&horizon=0.3")
    status = page.locator(".phviz-status").first
    page.locator(".phviz-step button").first.click()
    expect(status).to_contain_text(STATUS_T)

    page.locator(".phviz-export .card-header").first.click()  # built on first expand
    with page.expect_download() as download:
        page.locator(".phviz-export-csv").first.click()
    csv_path = tmp_path / "run.csv"
    download.value.save_as(csv_path)
    rows = list(csv.DictReader(csv_path.open()))
    assert [float(r["t"]) for r in rows] == pytest.approx([0.0, 0.1])
    assert float(rows[0]["hamiltonian"]) > 0

    with page.expect_download() as download:
        page.locator(".phviz-export-json").first.click()
    json_path = tmp_path / "run.json"
    download.value.save_as(json_path)
    settings = json.loads(json_path.read_text())
    assert settings["damping"] == 0.8 and settings["horizon"] == 0.3

    out = tmp_path / "summary.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "phviz", "train", "--config", str(json_path), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert summary["t_final"] == pytest.approx(0.3)
    assert summary["config"]["damping"] == 0.8
