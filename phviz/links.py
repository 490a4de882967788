"""Links that open a set-up: the explorer's query string, read and written (no GUI code).

Every setting of ``TrainingConfig`` is a query key of its own name
(``?dataset=xor&damping=0.7``), beside a few keys of the page itself:

- ``preset`` or ``lesson``: the set-up the settings change (a lesson brings its text);
- ``plane``: the landscape's plane (``pca``, ``random`` or ``coordinates``);
- ``run=1``: start at once;
- ``hide``: a comma list of sidebar sections or settings to hide (``hide=solver,device``);
- ``present=1``: the presenter view, for a projector;
- ``data``: a small drawn data set, ``x1,x2,label;…`` (``userdata.encode_points``).

A bad value never breaks the page: it is left out, the default stays, and
``Link.problems`` says which key and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np
import param

from .config import PRESETS, TrainingConfig, make_config
from .lessons import LESSONS
from .models import parse_hidden
from .userdata import decode_points, encode_points, points_dataset

PLANES = ("pca", "random", "coordinates")
# The sidebar's sections, by the names a link hides them with.
SECTIONS = ("controls", "lessons", "data", "model", "gains", "solver", "device", "plane", "tracked")
PAGE_KEYS = ("preset", "lesson", "plane", "run", "hide", "present", "refresh", "data")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass
class Link:
    """What a query string asks for; ``problems`` lists what it asked for in vain."""

    preset: str = "default"
    lesson: str | None = None
    settings: dict = field(default_factory=dict)
    plane: str | None = None
    run: bool = False
    hide: tuple[str, ...] = ()
    present: bool = False
    data: tuple[np.ndarray, np.ndarray] | None = None  # drawn points (x, labels)
    problems: list[str] = field(default_factory=list)

    def config(self) -> TrainingConfig:
        """The lesson's or preset's config with the link's settings on top."""
        base = LESSONS[self.lesson].config() if self.lesson else make_config(self.preset)
        base.param.update(**self.settings)
        return base


def parse_link(args: Mapping) -> Link:
    """A ``Link`` from query arguments: a mapping of key → value, where a value may be a
    string, bytes, or a list of them as a server gives them (the last one counts)."""
    link = Link()
    values = {key: _text(value) for key, value in args.items()}
    for key in values:
        if key not in PAGE_KEYS and key not in TrainingConfig.param or key == "name":
            link.problems.append(f"Unknown link key {key!r}: ignored")
    if "lesson" in values:
        if values["lesson"] in LESSONS:
            link.lesson = values["lesson"]
        else:
            link.problems.append(_choice("lesson", values["lesson"], LESSONS))
    if "preset" in values:
        if values["preset"] in PRESETS:
            link.preset = values["preset"]
        else:
            link.problems.append(_choice("preset", values["preset"], PRESETS))
    if "plane" in values:
        if values["plane"] in PLANES:
            link.plane = values["plane"]
        else:
            link.problems.append(_choice("plane", values["plane"], PLANES))
    for key in ("run", "present"):
        if key in values:
            flag = _flag(values[key])
            if flag is None:
                link.problems.append(f"Invalid {key} in the link: {values[key]!r} (use 1 or 0)")
            else:
                setattr(link, key, flag)
    if "data" in values:
        try:
            link.data = link_data(values["data"])
        except ValueError as err:
            link.problems.append(str(err))
    if "hide" in values:
        names = [n.strip() for n in values["hide"].split(",") if n.strip()]
        known = set(SECTIONS) | (set(TrainingConfig.param) - {"name"})
        link.hide = tuple(n for n in names if n in known)
        for name in names:
            if name not in known:
                link.problems.append(
                    f"Invalid hide in the link: {name!r} is no section "
                    f"({', '.join(SECTIONS)}) or setting"
                )
    try:
        base = link.config()
    except ValueError as err:  # a lesson or preset that no longer builds
        link.problems.append(str(err))
        return link
    for key, text in values.items():
        if key in PAGE_KEYS or key not in TrainingConfig.param or key == "name":
            continue
        try:
            value = _value(base.param[key], text)
            base.param.update(**{key: value})  # checks bounds and choices
        except (ValueError, TypeError) as err:
            link.problems.append(f"Invalid {key} in the link: {text!r} ({_reason(err)})")
            continue
        link.settings[key] = value
    return link


def link_query(
    config: TrainingConfig,
    *,
    preset: str = "default",
    lesson: str | None = None,
    plane: str | None = None,
    run: bool = False,
    hide: tuple[str, ...] = (),
    present: bool = False,
    data: tuple | None = None,
) -> str:
    """The query string (without ``?``) that opens ``config``: the lesson or preset and
    the settings that differ from it, so a link stays short."""
    base = LESSONS[lesson].config() if lesson else make_config(preset)
    query: dict[str, str] = {"lesson": lesson} if lesson else {"preset": preset}
    for key, value in config.values().items():
        if value != getattr(base, key) and value is not None:
            query[key] = _format(value)
    if plane:
        query["plane"] = plane
    if hide:
        query["hide"] = ",".join(hide)
    if run:
        query["run"] = "1"
    if present:
        query["present"] = "1"
    if data is not None:
        query["data"] = encode_points(*data)
    return urlencode(query, safe=",;")


def link_data(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The points (x, labels) a link's ``data`` carries, checked as a data set would be
    (enough points, two classes or more); a ``ValueError`` says what is wrong."""
    try:
        x, labels = decode_points(text)
        points_dataset(x, labels, train_fraction=1.0)
    except ValueError as err:
        reason = str(err).replace(" in the link", "").replace("Invalid point", "point")
        raise ValueError(f"Invalid data in the link: {reason}") from None
    return x, labels


# ------------------------------------------------------------------ values
def _text(value) -> str:
    if isinstance(value, list | tuple):
        value = value[-1] if value else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip()


def _flag(text: str) -> bool | None:
    low = text.lower()
    return True if low in _TRUE else False if low in _FALSE else None


def _value(parameter, text: str):
    """``text`` as the type of ``parameter`` (a ValueError says what was expected)."""
    if parameter.allow_None and text.lower() in ("", "none", "default"):
        return None
    if isinstance(parameter, param.Boolean):
        flag = _flag(text)
        if flag is None:
            raise ValueError("use 1 or 0")
        return flag
    if isinstance(parameter, param.Integer):
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected a whole number") from None
    if isinstance(parameter, param.Number):
        try:
            value = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        return value
    if isinstance(parameter, param.Selector):
        objects = list(parameter.objects)
        if text not in [str(o) for o in objects]:
            raise ValueError(f"choose one of {', '.join(map(str, objects))}")
        return next(o for o in objects if str(o) == text)
    if parameter.name == "hidden":
        parse_hidden(text)  # raises with its own message
    return text


def _format(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _choice(key: str, text: str, choices) -> str:
    return f"Invalid {key} in the link: {text!r} (choose one of {', '.join(choices)})"


def _reason(err: Exception) -> str:
    """A param bounds error's gist, e.g. 'must be at least 0.0'."""
    message = str(err)
    for marker in ("must be", "not in", "choose", "expected", "use ", "Invalid"):
        at = message.find(marker)
        if at >= 0:
            message = message[at:]
            break
    message = message.rstrip(".")
    while message.count(")") > message.count("("):  # the gist was inside parentheses
        message = message[: message.rindex(")")] + message[message.rindex(")") + 1 :]
    return message
