"""Numbers with an interval, printed to the precision the interval warrants.

The rule (:func:`precision`): a number and its interval ``[low, high]`` are printed at the decimals where the
half-width ``(high - low) / 2`` has two significant figures, e.g. ``36.0512 [34.1, 38.0]`` (half-width 1.95) as
``"36.1 [34.1, 38.0]"`` and ``0.322 [-0.892, 1.536]`` (half-width 1.21) as ``"0.3 [-0.9, 1.5]"``; never fewer
than 0 decimals. A number without an interval (one seed; a bound that is NaN; an interval of one point, such as
counted FLOPs that every seed shares, or a width at float32 rounding) keeps the ``digits`` its caller states.
"""

from __future__ import annotations

import math

NOT_RECORDED = "not recorded"
FIGURES = 2  # significant figures of the half-width
POINT = 1e-6  # a width below this share of the bounds' size is rounding (float32 arithmetic), not an interval


def precision(low: float, high: float, default: int = 2) -> int:
    """The decimals at which the half-width ``(high - low) / 2`` of ``[low, high]`` shows two significant figures
    (after rounding: a half-width of 0.0996 shows as 0.10, at 2 decimals), at least 0; ``default`` where there is
    no interval: a bound NaN or infinite, or a width of one point (below 1e-6 of the bounds' size: the rounding of
    equal values, e.g. the radius ‖ε‖ = ρ of a masked normalisation computed in float32)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return default
    half = abs(high - low) / 2
    if not half > POINT * max(abs(low), abs(high), 1e-300):
        return default
    digits = FIGURES - 1 - math.floor(math.log10(half))
    if round(half, digits) >= 10 ** (FIGURES - digits):  # rounding carried to a third figure: one decimal fewer
        digits -= 1
    return max(0, digits)


def number_text(value: float, digits: int, *, sign: bool = False, prefix: str = "") -> str:
    """``value`` with ``digits`` decimals (``sign``: always signed, as a difference), after ``prefix`` ("×");
    a value that rounds to zero shows no minus sign."""
    rounded = round(value, digits) + 0.0  # -0.0 + 0.0 is 0.0
    return f"{prefix}{rounded:{'+' if sign else ''}.{digits}f}"


def interval_text(mean: float, low: float, high: float, digits: int = 2, *, sign: bool = False,
                  prefix: str = "") -> str:
    """``"36.1 [34.1, 38.0]"``: ``mean`` and its interval at :func:`precision` of the interval; without an
    interval (a bound NaN) ``"36.05 (one seed)"`` at ``digits``, and an interval of one point at ``digits`` too;
    "not recorded" for a NaN mean. ``sign`` and ``prefix`` as for :func:`number_text`."""
    if math.isnan(mean):
        return NOT_RECORDED
    if math.isnan(low) or math.isnan(high):
        return f"{number_text(mean, digits, sign=sign, prefix=prefix)} (one seed)"
    shown = precision(low, high, digits)
    return (f"{number_text(mean, shown, sign=sign, prefix=prefix)} [{number_text(low, shown, sign=sign, prefix=prefix)}"
            f", {number_text(high, shown, sign=sign, prefix=prefix)}]")


def bounds_text(low: float, high: float, digits: int = 2, *, sign: bool = False, prefix: str = "") -> str:
    """The interval alone, ``"[-0.9, 1.5]"``, at :func:`precision` (``digits`` for one point); "–" without one."""
    if math.isnan(low) or math.isnan(high):
        return "–"
    shown = precision(low, high, digits)
    return (f"[{number_text(low, shown, sign=sign, prefix=prefix)}, "
            f"{number_text(high, shown, sign=sign, prefix=prefix)}]")
