"""Command-line flags generated from ``TrainingConfig``'s parameters: their type,
choices, bounds and help come from the config, so a flag cannot drift from it."""

from __future__ import annotations

import argparse

import param

from .config import TrainingConfig


def add_setting_flags(parser, names, *, aliases=None, defaults=None) -> None:
    """One flag ``--<name-with-dashes>`` per setting in ``names`` on ``parser`` (a parser
    or an argument group); ``aliases`` maps a name to more spellings, ``defaults`` to a
    default (else None: the preset's or config's own)."""
    for name in names:
        flags = [f"--{name.replace('_', '-')}", *(aliases or {}).get(name, ())]
        kwargs = setting_flag(TrainingConfig.param[name])
        if defaults and name in defaults:
            kwargs["default"] = defaults[name]
        parser.add_argument(*flags, dest=name, **kwargs)


def setting_flag(parameter) -> dict:
    """add_argument's type or choices and help for one config parameter."""
    doc = (parameter.doc or "").replace("%", "%%")
    if isinstance(parameter, param.Boolean):
        return dict(action=argparse.BooleanOptionalAction, help=doc)
    if isinstance(parameter, param.Selector):
        return dict(choices=list(parameter.objects), help=doc)
    if isinstance(parameter, param.Number):
        kind = int if isinstance(parameter, param.Integer) else float
        bounds = describe_bounds(parameter)
        return dict(
            type=bounded(kind, parameter),
            metavar="N" if kind is int else "X",
            help=f"{doc} Must be {bounds}." if bounds else doc,
        )
    if isinstance(parameter, param.String):
        return dict(help=doc)
    raise TypeError(f"No flag for {type(parameter).__name__} parameter {parameter.name!r}")


def describe_bounds(parameter) -> str:
    """A number parameter's bounds as text: '>= 0', 'in (0, 1]', or '' when unbounded."""
    low, high = parameter.bounds or (None, None)
    low_in, high_in = parameter.inclusive_bounds
    if low is not None and high is not None:
        return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
    if low is not None:
        return f"{'>=' if low_in else '>'} {low:g}"
    if high is not None:
        return f"{'<=' if high_in else '<'} {high:g}"
    return ""


def bounded(kind, parameter):
    """An argparse type: ``kind`` of the text, refused outside ``parameter``'s bounds."""
    low, high = parameter.bounds or (None, None)
    low_in, high_in = parameter.inclusive_bounds

    def convert(text: str):
        value = kind(text)
        too_low = low is not None and not (value >= low if low_in else value > low)
        too_high = high is not None and not (value <= high if high_in else value < high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(
                f"invalid value: {text!r} (must be {describe_bounds(parameter)})"
            )
        return value

    convert.__name__ = kind.__name__  # argparse names it in "invalid int value: 'x'"
    return convert
