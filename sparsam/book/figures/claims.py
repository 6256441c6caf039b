"""Claims figures: each claim's interval against its margin, coloured by its status (every chapter's closing
figure and the reproduction page's), and the difference a number of seeds can detect at a margin (chapter 8)."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from ..._checks import check_choice
from ..stats import FAMILY_WISE, PER_COMPARISON, READINGS, detectable_differences, reading_header
from .style import STATUS_COLORS, legend_below, panel


UNIT_AXES = {"pp": "difference method − reference (percentage points)",
             "ratio": "ratio method / reference (log scale)"}
RATIO_TICKS = (0.1, 0.2, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 5.0, 10.0)  # labelled ratios of the claims figure
SIM_LABEL = "thin: simultaneous 95% over the family (Bonferroni, m = {m})"
DIFFERS_LABEL = "square: read {other}, its status differs (both in its label)"  # {other}: the reading not coloured


def _claim_bounds(row: pd.Series) -> tuple[float, float, float, float, float, float]:
    """diff, low, high, simultaneous low and high (NaN outside a family) and the margin's boundary of a
    verdict row, on the axis of its unit."""
    sign = 1.0 if row["better"] == "higher" else -1.0
    values = np.array([row["diff"], row["low"], row["high"], row.get("sim_low", np.nan), row.get("sim_high", np.nan),
                       -sign * row["margin"]], dtype=float)
    return tuple(np.exp(values) if row["unit"] == "ratio" else values)


def _family_status(row: pd.Series) -> str | None:
    """The family-wise status of a verdict row, None where the row was not read as a family."""
    status = row.get("family_status")
    return status if isinstance(status, str) and status else None


def _readings(row: pd.Series, reading: str) -> tuple[str, str | None]:
    """A verdict row's status in ``reading`` and in the other reading (None where it has none: a row read in no
    family)."""
    family = _family_status(row)
    return (family, row["status"]) if reading == FAMILY_WISE else (row["status"], family)


def _claim_label(row: pd.Series, reading: str) -> str:
    shown, other = _readings(row, reading)
    if other is not None and other != shown:
        shown = f"{shown}; {_other(reading)}: {other}"
    return f"{row['claim']}\n{shown} (n = {row['n']})"


def _other(reading: str) -> str:
    return PER_COMPARISON if reading == FAMILY_WISE else FAMILY_WISE


def figure_reading(verdicts_frame: pd.DataFrame) -> str:
    """The reading a claims figure colours by when none is asked for: family-wise where every row was read in a
    family, per comparison otherwise (never both in one figure)."""
    read = [_family_status(row) is not None for _, row in verdicts_frame.iterrows()]
    return FAMILY_WISE if read and all(read) else PER_COMPARISON


def claims_figure(verdicts_frame: pd.DataFrame, reading: str | None = None) -> Figure:
    """The reproduction page's summary: each claim's interval, its margin and its status.

    ``verdicts_frame`` has one row per claim, as :func:`sparsam.book.stats.verdicts_frame` builds it
    (columns ``claim, status, diff, low, high, n, test, margin, better, unit``). Claims in
    percentage points, in ratios (log axis) and in any other unit get one panel per unit.

    The colour is one ``reading`` of the statuses for every claim (:data:`sparsam.book.stats.READINGS`), named in
    the legend: "family-wise" (``family_status``, :func:`sparsam.book.claims.family_wise`; every row must have
    been read in a family) or "per comparison" (``status``, unadjusted); by default :func:`figure_reading`. A
    claim whose status in the other reading differs is a square, labelled with both. Where a row was read as a
    family (``sim_low``, ``sim_high``), it shows its unadjusted 95% interval as a thick bar inside its
    simultaneous (Bonferroni) interval as a thin one.
    """
    if verdicts_frame.empty:
        raise ValueError("verdicts_frame holds no claims")
    reading = figure_reading(verdicts_frame) if reading is None else check_choice("reading", reading, READINGS)
    alone = [str(row["claim"]) for _, row in verdicts_frame.iterrows() if _family_status(row) is None]
    if reading == FAMILY_WISE and alone:
        raise ValueError(f"reading: the family-wise reading needs every row read in a family, "
                         f"{len(alone)} are not ({', '.join(alone[:3])})")
    units = list(dict.fromkeys(verdicts_frame["unit"]))
    heights = [max(1, int((verdicts_frame["unit"] == u).sum())) for u in units]
    longest = max(len(line) for label in verdicts_frame["claim"] for line in str(label).splitlines())
    width = max(8.0, 4.5 + 0.065 * longest)  # room for the claims' labels beside an axis of readable width
    fig, axes = plt.subplots(len(units), 1, figsize=(width, 2.2 + 0.55 * sum(heights) + 0.6 * len(units)),
                             height_ratios=heights, layout="constrained", squeeze=False)
    sizes: set[int] = set()
    differs = False
    for ax, unit in zip(axes[:, 0], units):
        rows = verdicts_frame[verdicts_frame["unit"] == unit].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for yi, (_, row) in zip(y, rows.iterrows()):
            diff, low, high, sim_low, sim_high, boundary = _claim_bounds(row)
            shown, other = _readings(row, reading)
            color = STATUS_COLORS.get(shown, "black")
            marker = "o" if other is None or other == shown else "s"
            differs |= marker == "s"
            if np.isfinite(sim_low):
                sizes.add(int(row.get("family_size", 0)))
                ax.errorbar(diff, yi, xerr=[[diff - sim_low], [sim_high - diff]], fmt="none", color=color,
                            elinewidth=0.9, capsize=3, label="simultaneous 95% interval")
            if np.isfinite(low):
                ax.errorbar(diff, yi, xerr=[[diff - low], [high - diff]], fmt=marker, color=color, elinewidth=3,
                            capsize=0, label="95% interval")
            elif np.isfinite(diff):
                ax.plot(diff, yi, marker, color=color, markerfacecolor="white")
            if row["test"] == "non-inferiority":
                ax.plot([boundary, boundary], [yi - 0.35, yi + 0.35], color="tab:red", linewidth=2)
        ax.axvline(1.0 if unit == "ratio" else 0.0, color="black", linewidth=0.8)
        if unit == "ratio":
            ax.set_xscale("log")
            low, high = ax.get_xlim()  # a few round ratios inside the data's range, labelled; no crowding
            ticks = [1.0]  # 1 first, then round ratios far enough apart on the log axis not to overlap
            gap = (np.log(high) - np.log(low)) / 9
            for t in sorted((t for t in RATIO_TICKS if low <= t <= high and t != 1.0), key=lambda t: abs(np.log(t))):
                if all(abs(np.log(t / kept)) >= gap for kept in ticks):
                    ticks.append(t)
            ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(y, [_claim_label(row, reading) for _, row in rows.iterrows()], fontsize=8)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(UNIT_AXES.get(unit, f"difference method − reference ({unit})" if unit else
                                    "difference method − reference"))
        ax.grid(alpha=0.3, axis="x")
    handles = [Line2D([], [], marker="o", color=c, linestyle="none", label=s) for s, c in STATUS_COLORS.items()]
    handles.insert(0, Line2D([], [], linestyle="none", label=colour_label(reading)))
    handles += [Line2D([], [], marker="o", color="0.3", linestyle="-", linewidth=3,
                       label="mean paired difference, 95% interval" + ("" if not sizes else " (thick)")),
                Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none",
                       label="fewer than two seeds: no interval"),
                Line2D([], [], color="tab:red", linewidth=2, label="non-inferiority margin")]
    if sizes:
        m = "/".join(str(s) for s in sorted(sizes))
        handles.insert(-2, Line2D([], [], color="0.3", linewidth=0.9, marker="|", markersize=8,
                                  label=SIM_LABEL.format(m=m)))
    if differs:
        handles.append(Line2D([], [], marker="s", color="0.3", linestyle="none",
                              label=DIFFERS_LABEL.format(other=_other(reading))))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def colour_label(reading: str) -> str:
    """The legend's words for what the colour of a claims figure is: "colour: status (family-wise, Holm)"."""
    return "colour: " + reading_header("status", reading)


def detectable_difference_figure(sds: Mapping[str, float], *, margin: float, seeds: int, target: float = 0.8,
                                 alpha: float = 0.025, max_seeds: int | None = None) -> Figure:
    """The detectable difference (pp) against the number of seeds, one line per paired SD of ``sds``
    (label -> SD in pp): the distance beyond the non-inferiority threshold that ``n`` seeds decide with
    power ``target`` in a one-sided paired t-test at ``alpha`` (:func:`sparsam.book.stats.detectable_differences`).
    The ``margin`` is a horizontal line (a method equal to its reference is decided non-inferior with power
    ``target`` where a line lies below it, from the seeds of :func:`sparsam.book.stats.seeds_for_power`,
    marked per line), ``seeds`` (the study's) a vertical one. ``max_seeds`` (default: a little beyond the
    largest number needed) ends the axis."""
    curves, needed = detectable_differences(sds, margin=margin, seeds=seeds, target=target, alpha=alpha,
                                            max_seeds=max_seeds)
    n = curves.index.to_numpy()
    fig, ax = panel(None, (6.4, 4.4))
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for name, sd in sds.items():
        color = next(colors)
        ax.plot(n, curves[name].tolist(), color=color, linewidth=1.6,
                label=f"{name}: paired SD {sd:.2f} pp, {needed[name]} seeds for {target:.0%} power")
        if needed[name] <= n[-1]:
            ax.plot([needed[name]], [curves.loc[needed[name], name]], "o", color=color)
    ax.axhline(margin, color="tab:red", linestyle="--", linewidth=1.2,
               label=f"margin {margin:g} pp: below it, a method equal to its reference is decided non-inferior")
    ax.axvline(seeds, color="0.3", linestyle=":", linewidth=1.2, label=f"the study's seeds ({seeds})")
    ax.set_yscale("log")
    low, high = ax.get_ylim()  # round values inside the data's range, labelled; no crowding
    ax.yaxis.set_major_locator(FixedLocator([t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if low <= t <= high]))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seeds (paired runs per comparison)")
    ax.set_ylabel(f"detectable difference at {target:.0%} power (pp, log scale)")
    ax.grid(alpha=0.3, which="both")
    legend_below(fig, ax, ncol=1, title=f"one-sided paired t-test at {alpha:g} (a two-sided 95% interval)")
    return fig
