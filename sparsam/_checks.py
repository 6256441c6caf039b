"""Argument checks shared by the library: each error names the parameter and the allowed range."""

from __future__ import annotations

from typing import Iterable, TypeVar

_Choice = TypeVar("_Choice", bound=str)


def check_range(name: str, value: float, low: float, high: float | None = None, *,
                low_open: bool = False, high_open: bool = True) -> float:
    """Return ``value`` if it lies in the interval, else raise ``ValueError`` naming ``name``."""
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:  # the last test rejects NaN
        left = "(" if low_open else "["
        right = ("" if high is None else (")" if high_open else "]"))
        upper = "inf)" if high is None else f"{high}{right}"
        raise ValueError(f"{name} must be in {left}{low}, {upper}, got {value!r}")
    return value


def check_int(name: str, value: int, low: int) -> int:
    """Return ``value`` if it is an integer >= ``low``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_choice(name: str, value: _Choice, choices: Iterable[str]) -> _Choice:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
