"""Lessons in the explorer: a picker in the sidebar and the lesson's text over the plots.

Picking a lesson loads its set-up as a preset does (its settings, its plane, one
rebuild) and shows its title and text above the plots, where a class reads what to
watch and what to try. Picking a preset afterwards leaves the lesson.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn

from ..lessons import LESSONS, Lesson

NONE = "none"


def lesson_markdown(lesson: Lesson, compact: bool = False) -> str:
    """The lesson's title and text as the pane shows them (``compact``: the title, and
    the text once the title is clicked)."""
    if compact:
        return f"<details><summary><b>{lesson.title}</b></summary>\n\n{lesson.text}\n\n</details>"
    return f"### {lesson.title}\n\n{lesson.text}"


class LessonView:
    """The lesson picker and the lesson's pane; ``on_pick(lesson)`` loads a picked
    ``Lesson``'s set-up."""

    def __init__(self, lesson: str | None = None, on_pick: Callable[[Lesson], None] | None = None):
        self.on_pick = on_pick
        options = {NONE: NONE, **{item.title: name for name, item in LESSONS.items()}}
        self.picker = pn.widgets.Select(
            label="Lesson",
            options=options,
            value=lesson if lesson in LESSONS else NONE,
            css_classes=["phviz-lesson-picker"],
            sizing_mode="stretch_width",
        )
        self.pane = pn.pane.Markdown(
            "",
            visible=False,
            css_classes=["phviz-lesson"],
            sizing_mode="stretch_width",
            styles={
                "font-size": "18px",
                "line-height": "1.45",
                "background": "#f3f7fb",
                "border-left": "5px solid #1f4e79",
                "padding": "0 14px",
            },
            margin=(4, 10),
        )
        self.compact = False
        self._show()
        self.picker.param.watch(self._on_pick, "value")

    @property
    def lesson(self) -> str | None:
        """The name of the lesson shown (None: none)."""
        value = self.picker.value
        return value if value in LESSONS else None

    def sidebar(self) -> list:
        return [self.picker]

    def make_compact(self) -> None:
        """The title, and the text in smaller type once it is clicked (the presenter
        view: on 1280 × 720 the lesson in full pushed the plots below the fold)."""
        self.compact = True
        self.pane.styles = {
            **self.pane.styles,
            "font-size": "16px",
            "line-height": "1.3",
            "padding": "0 10px",
        }
        self.pane.margin = (0, 10)
        self._show()

    def _show(self) -> None:
        lesson = self.lesson
        if lesson is None:
            self.pane.visible = False
            return
        self.pane.object = lesson_markdown(LESSONS[lesson], self.compact)
        self.pane.visible = True

    def _on_pick(self, event) -> None:
        self._show()
        name = self.lesson
        if name is None:
            return
        if self.on_pick is not None:
            self.on_pick(LESSONS[name])

    def leave(self) -> None:
        """No lesson any more (a preset was picked)."""
        self.picker.value = NONE
