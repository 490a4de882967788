"""The browser tests' fixtures: ``explorer`` serves the explorer for one test,
``browser`` is headless Chromium (the tests skip without it), and ``page`` is a page
that fails its test on an error in the page or a request off this machine, and leaves
a screenshot of what the user saw when the test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browsing import DEADLINE, LOCAL, served

from phviz.bench.pages import CHROMIUM, CHROMIUM_ARGS

REPORTS = pytest.StashKey[dict]()


@pytest.fixture
def explorer(tmp_path) -> Iterator[str]:
    """The URL of an explorer served for this test alone."""
    with served(tmp_path / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test, for the ``page`` fixture to see a failure."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def page(browser, request, tmp_path):
    """A 1600 × 1000 page in a context of its own. After the test: a screenshot if it
    failed, the page closed (its session ends), and neither an error in the page nor a
    request off this machine."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(DEADLINE * 1000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "request",
        lambda r: (
            None if r.url.startswith(LOCAL) else problems.append(f"off this machine: {r.url}")
        ),
    )
    yield page
    call = request.node.stash.get(REPORTS, {}).get("call")
    if (call is None or call.failed) and not page.is_closed():
        page.screenshot(path=str(tmp_path / "failure.png"))
    context.close()
    assert not problems, problems
