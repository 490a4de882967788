"""Drives the served explorer in headless Chromium, as a user would."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, log_path: Path) -> subprocess.Popen:
    """``panel serve apps/explorer.py`` as the README runs it, on a free local port."""
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "apps/explorer.py",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:  # the port answers: the app itself is built per page load
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("panel serve did not start:\n" + log_path.read_text())


def status_numbers(page) -> tuple[float, float]:
    text = page.locator(".phviz-status").inner_text()
    t = float(re.search(r"t\s+([-\d.e]+)", text).group(1))
    loss = float(re.search(r"train loss\s+([-\d.e]+)", text).group(1))
    return t, loss


def test_explorer_runs_and_pauses(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    log_path = tmp_path / "server.log"
    server = serve(port, log_path)
    console, offsite = [], []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.on(
                "console",
                lambda m: console.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: console.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    offsite.append(r.url)
                    if not r.url.startswith(
                        ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:http://127.0.0.1")
                    )
                    else None
                ),
            )
            page.goto(f"http://127.0.0.1:{port}/explorer", wait_until="networkidle")
            page.locator(".phviz-status").wait_for(timeout=20_000)
            run = page.locator(".phviz-run button")
            assert run.inner_text().strip() == "Run"
            t0, loss0 = status_numbers(page)
            box = page.locator("canvas").first.bounding_box()
            before = page.screenshot(clip=box)

            run.click()
            time.sleep(3.0)
            assert run.inner_text().strip() == "Pause"
            t1, loss1 = status_numbers(page)
            assert t1 > t0 + 0.5
            assert loss1 != loss0
            assert page.screenshot(clip=box) != before  # the plots were redrawn

            damping = page.locator(".phviz-damping input").first
            damping.fill("1.5")
            damping.press("Enter")
            time.sleep(1.5)
            t2, _ = status_numbers(page)
            assert t2 > t1  # still training after the change

            run.click()
            deadline = time.monotonic() + 10
            while run.inner_text().strip() != "Run" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert run.inner_text().strip() == "Run"
            t3, _ = status_numbers(page)
            time.sleep(1.0)
            assert status_numbers(page)[0] == t3  # paused: t stands still
            (ROOT / "assets").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "assets" / "explorer.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    log = log_path.read_text()
    assert "Traceback" not in log, log
    assert not console, console
    assert not offsite, offsite
