"""Export in the explorer: the run's records as CSV, its settings as JSON, and an
animation of its path as a GIF, each offered as a download.

CSV and JSON are made at the click from what the session holds (its ``RunLog`` and
its settings). The GIF draws dozens of frames, seconds of work, so it is made on the
process's worker pool (``Scheduler.run_once``) from a copy of the trainer that the
session's own slice takes; its progress comes back through ``sync()``, which the
explorer's periodic update calls, and the file is then offered for download.
"""

from __future__ import annotations

import copy
import io
import tempfile
import threading
from pathlib import Path

import panel as pn

from .. import export
from .layout import lazy_section
from .live import Notice

GIF_FRAMES = 48


def _still(trainer) -> dict:
    """``export.animate``'s arguments from a trainer, copied (the live trainer goes on):
    its model, its data (not written during a run) and its gains."""
    system = trainer.system
    return dict(
        model=copy.deepcopy(trainer.model),
        dataset=trainer.dataset,
        gains={k: copy.deepcopy(getattr(system, k)) for k in export.GAIN_LABELS},
    )


class ExportView:
    """The export buttons of one ``LiveSession`` and its ``settings``, and the GIF
    being made."""

    def __init__(self, session, settings):
        self.session = session
        self.settings = settings
        self.csv = pn.widgets.FileDownload(
            callback=self.records_csv,
            filename="run.csv",
            label="Records (CSV)",
            embed=False,
            width=150,
            css_classes=["phviz-export-csv"],
            margin=(5, 5),
        )
        self.json = pn.widgets.FileDownload(
            callback=self.settings_json,
            filename="run.json",
            label="Settings (JSON)",
            embed=False,
            width=150,
            css_classes=["phviz-export-json"],
            margin=(5, 5),
        )
        self.gif_button = pn.widgets.Button(
            label="Animation (GIF)", width=150, css_classes=["phviz-export-gif"], margin=(5, 5)
        )
        self.gif_button.on_click(lambda _: self.make_gif())
        self.progress = pn.indicators.Progress(
            value=0,
            max=100,
            visible=False,
            width=140,
            margin=(14, 5),
            css_classes=["phviz-gif-progress"],
        )
        self.gif = pn.widgets.FileDownload(
            file=None,
            filename="run.gif",
            label="Download the GIF",
            embed=False,
            visible=False,
            width=170,
            css_classes=["phviz-gif-download"],
            margin=(5, 5),
        )
        self._lock = threading.Lock()
        self._news: dict = {}
        self._busy = False
        self._dir = tempfile.TemporaryDirectory(prefix="phviz-export-")

    def widgets(self) -> list:
        """The export buttons, in a section made on its first expand."""
        return [lazy_section("Export", self._buttons, "phviz-export")]

    def _buttons(self) -> list:
        return [pn.Row(self.csv, self.json, self.gif_button, self.progress, self.gif)]

    # ------------------------------------------------------------ files
    def records_csv(self) -> io.StringIO:
        """The run's kept records as the CSV file the button downloads."""
        log = self.session.run_log
        records = log.records
        tracked = log.tracked
        if tracked is not None and records and len(tracked) != len(records[0].theta_sample):
            tracked = None
        return io.StringIO(export.records_csv(records, tracked))

    def settings_json(self) -> io.StringIO:
        """The settings as the JSON file the button downloads."""
        return io.StringIO(export.settings_json(self.settings))

    # ------------------------------------------------------------ the animation
    def make_gif(self) -> None:
        """Start drawing the GIF on the pool (one at a time; a second click waits)."""
        if self._busy:
            return
        session = self.session
        records = session.run_log.records
        if len(records) < 2 or session.run is None:
            self._say("An animation needs a run: press Run (or Step) first.", "warning")
            return
        self._busy = True
        self.gif.visible = False
        self.progress.value, self.progress.visible = 0, True
        self.gif_button.disabled = True
        path = Path(self._dir.name) / "run.gif"

        def snapshot(trainer) -> None:  # in the session's slice: the trainer is its own
            try:
                still = _still(trainer)
            except Exception as err:
                self._tell(error=f"The animation could not be made: {err}")
                return
            session.scheduler.run_once(lambda: self._draw(still, records, path))

        session.with_trainer(snapshot)

    def _draw(self, still: dict, records, path: Path) -> None:
        def progress(done: int, total: int) -> None:
            self._tell(progress=int(100 * done / max(total, 1)))

        try:
            export.animate(
                still["model"],
                still["dataset"],
                records,
                path,
                gains=still["gains"],
                frames=GIF_FRAMES,
                progress=progress,
            )
        except Exception as err:  # said in the banner, never a traceback
            self._tell(error=f"The animation could not be made: {err}")
            return
        self._tell(done=str(path))

    def _tell(self, **news) -> None:
        with self._lock:
            self._news.update(news)

    def sync(self) -> None:
        """Put the GIF's progress and result on the page (the server's thread)."""
        with self._lock:
            news, self._news = self._news, {}
        if not news:
            return
        if "progress" in news:
            self.progress.value = news["progress"]
        if "error" in news or "done" in news:
            self._busy = False
            self.gif_button.disabled = False
            self.progress.visible = False
        if "error" in news:
            self._say(news["error"], "danger")
        elif "done" in news:
            self.gif.file = news["done"]
            self.gif.visible = True

    def _say(self, text: str, kind: str) -> None:
        self.session.notice = Notice(text, kind)

    def close(self) -> None:
        self._dir.cleanup()
