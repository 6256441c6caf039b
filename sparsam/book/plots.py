"""Figures of the book, drawn from run records and verdicts: intervals everywhere, single runs marked.

Every interval is the 95% t-interval over seeds of :func:`sparsam.book.records.summarize` (or of
:func:`sparsam.book.stats.compare`) and the legends say so; a point with no interval (one seed) is
drawn as a plain marker and labelled "no interval". Each function returns its figure. Every figure
of the notebooks comes from here: axes name their quantity and unit, legends sit below the panels
(never over the data), and several series that would crowd one panel get one panel each.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FormatStrFormatter, MaxNLocator, NullFormatter

from ..experiment.config import OPTIMIZER_NAMES
from .records import pareto_front, summarize
from ..experiment.robust_regression import log_binned
from .convergence import running_mean_interval
from .landscape import concentration_curve, layer_means
from .mask_stats import nm_shares
from .stats import PREMISE_NOT_SHOWN, detectable_differences

INTERVAL = "mean, 95% interval over seeds"
NO_INTERVAL = "one seed: no interval"
DODGE = 0.006  # horizontal offset between series at one sparsity
STATUS_COLORS = {"reproduced": "tab:green", "not reproduced": "tab:red", "inconclusive": "0.5",
                 PREMISE_NOT_SHOWN: "tab:orange"}
UNIT_AXES = {"pp": "difference method − reference (percentage points)",
             "ratio": "ratio method / reference (log scale)"}
RATIO_TICKS = (0.1, 0.2, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 5.0, 10.0)  # labelled ratios of the claims figure


def _figure(ax: Axes | None, size: tuple[float, float] = (6.4, 4.2)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax


def interval_errorbar(ax: Axes, x: Sequence[float], mean: Sequence[float], low: Sequence[float],
                      high: Sequence[float], *, label: str | None = None, horizontal: bool = False,
                      interval: str = "over seeds", **style: Any) -> list[Any]:
    """Points at ``mean`` with bars from ``low`` to ``high`` (vertical bars at ``x``, or horizontal
    ones at height ``x`` with ``horizontal=True``); points whose interval is NaN are plain markers.

    The legend label gets ``"(mean, 95% interval over seeds)"`` (``interval`` names where the
    interval comes from) or ``"(one seed: no interval)"`` (both parts when some points have an
    interval and others do not). Returns the drawn artists.
    """
    x, mean, low, high = (np.asarray(v, dtype=float) for v in (x, mean, low, high))
    if not (x.shape == mean.shape == low.shape == high.shape):
        raise ValueError(f"x, mean, low and high must have one shape, got {x.shape}, {mean.shape}, {low.shape}, "
                         f"{high.shape}")
    has = np.isfinite(low) & np.isfinite(high)
    style = {"marker": "o", "linestyle": "none", **style}
    artists = []
    if has.any():
        error = np.vstack([mean[has] - low[has], high[has] - mean[has]])
        xy = (mean[has], x[has]) if horizontal else (x[has], mean[has])
        artists.append(ax.errorbar(*xy, **({"xerr": error} if horizontal else {"yerr": error}), capsize=4,
                                   label=None if label is None else f"{label} (mean, 95% interval {interval})",
                                   **style))
    if (~has).any():
        if artists:  # the same series: same colour, open marker
            style = {**style, "color": artists[0].lines[0].get_color(), "markerfacecolor": "white"}
        xy = (mean[~has], x[~has]) if horizontal else (x[~has], mean[~has])
        artists.extend(ax.plot(*xy, label=None if label is None else f"{label} ({NO_INTERVAL})", **style))
    return artists


def _reference_band(ax: Axes, row: pd.Series, label: str, color: Any) -> None:
    ax.axhline(row["mean"], color=color, linestyle="--", linewidth=1.2,
               label=f"{label} ({INTERVAL if np.isfinite(row['low']) else NO_INTERVAL})")
    if np.isfinite(row["low"]):
        ax.axhspan(row["low"], row["high"], color=color, alpha=0.15, linewidth=0)


def accuracy_vs_sparsity(frame: pd.DataFrame, *, methods: Sequence[str] = ("ssam-f", "ssam-d"),
                         references: Sequence[str] = ("sam", "sgd"), series: str = "optimizer",
                         value: str = "final_test_acc", level: float = 0.95, ax: Axes | None = None,
                         title: str | None = None) -> Figure:
    """Accuracy against sparsity, one line per ``series`` value among ``methods``, references as
    dashed lines with shaded intervals; series at one sparsity are offset by :data:`DODGE`.

    ``frame`` is a :func:`sparsam.book.records.records_frame` (filtered to one setting by the caller);
    the intervals are over its seeds.
    """
    fig, ax = _figure(ax)
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for name in references:
        rows = frame[frame["optimizer"] == name]
        if len(rows):
            row = summarize(rows, "optimizer", value, level).iloc[0]
            _reference_band(ax, row, OPTIMIZER_NAMES.get(name, name), next(colors))
    present = [name for name in methods if (frame[series] == name).any()]
    for i, name in enumerate(present):
        summary = summarize(frame[frame[series] == name], "sparsity", value, level).sort_values("sparsity")
        x = summary["sparsity"] + DODGE * (i - (len(present) - 1) / 2)  # side by side, not on top of each other
        color = next(colors)
        ax.plot(x, summary["mean"], color=color, linewidth=1, alpha=0.6)
        interval_errorbar(ax, x, summary["mean"], summary["low"], summary["high"],
                          label=OPTIMIZER_NAMES.get(name, str(name)), color=color)
    ax.set_xlabel("sparsity s (fraction of parameters not perturbed)")
    ax.set_ylabel("test accuracy (%)" if "acc" in value else value)
    if title is not None:
        ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncol=2)
    return fig


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


def _claim_label(row: pd.Series) -> str:
    family = _family_status(row)
    if family is None or family == row["status"]:
        shown = row["status"]
    else:
        shown = f"{family}; registered: {row['status']}"
    return f"{row['claim']}\n{shown} (n = {row['n']})"


SIM_LABEL = "thin: simultaneous 95% over the family (Bonferroni, m = {m})"
DIFFERS_LABEL = "square: family-wise status differs from the registered one"


def claims_figure(verdicts_frame: pd.DataFrame) -> Figure:
    """The reproduction page's summary: each claim's interval, its margin and its status.

    ``verdicts_frame`` has one row per claim, as :func:`sparsam.book.stats.verdicts_frame` builds it
    (columns ``claim, status, diff, low, high, n, test, margin, better, unit``). Claims in
    percentage points, in ratios (log axis) and in any other unit get one panel per unit.

    Where the frame was read as a family (:func:`sparsam.book.claims.family_wise`: ``family_status``,
    ``sim_low``, ``sim_high``), each claim shows its unadjusted 95% interval as a thick bar inside its
    simultaneous (Bonferroni) interval as a thin one, its colour is the family-wise status, and a claim
    whose family-wise status differs from the registered one is a square, labelled with both.
    """
    if verdicts_frame.empty:
        raise ValueError("verdicts_frame holds no claims")
    units = list(dict.fromkeys(verdicts_frame["unit"]))
    heights = [max(1, int((verdicts_frame["unit"] == u).sum())) for u in units]
    longest = max(len(line) for label in verdicts_frame["claim"] for line in str(label).splitlines())
    width = max(8.0, 4.5 + 0.065 * longest)  # room for the claims' labels beside an axis of readable width
    fig, axes = plt.subplots(len(units), 1, figsize=(width, 2.2 + 0.55 * sum(heights) + 0.6 * len(units)),
                             height_ratios=heights, layout="constrained", squeeze=False)
    sizes: set[int] = set()
    differs = alone = False
    for ax, unit in zip(axes[:, 0], units):
        rows = verdicts_frame[verdicts_frame["unit"] == unit].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for yi, (_, row) in zip(y, rows.iterrows()):
            diff, low, high, sim_low, sim_high, boundary = _claim_bounds(row)
            family = _family_status(row)
            alone |= family is None
            color = STATUS_COLORS.get(family or row["status"], "black")
            marker = "o" if family is None or family == row["status"] else "s"
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
        ax.set_yticks(y, [_claim_label(row) for _, row in rows.iterrows()], fontsize=8)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(UNIT_AXES.get(unit, f"difference method − reference ({unit})" if unit else
                                    "difference method − reference"))
        ax.grid(alpha=0.3, axis="x")
    handles = [Line2D([], [], marker="o", color=c, linestyle="none", label=s) for s, c in STATUS_COLORS.items()]
    if sizes:
        handles.insert(0, Line2D([], [], linestyle="none", label="colour: family-wise status (Holm)"
                                 + ("; registered status of a claim read alone" if alone else "")))
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
        handles.append(Line2D([], [], marker="s", color="0.3", linestyle="none", label=DIFFERS_LABEL))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


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
    fig, ax = _figure(None, (6.4, 4.4))
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
    _legend_below(fig, ax, ncol=1, title=f"one-sided paired t-test at {alpha:g} (a two-sided 95% interval)")
    return fig


def pareto(frame: pd.DataFrame, ax: Axes | None = None, *, budget: float | None = None,
           front: bool = False, xlabel: str = "measured cost per training step (SGD steps)",
           title: str | None = None) -> Figure:
    """Accuracy (mean, 95% interval over seeds) against measured cost per step in SGD steps.

    ``frame``: one row per method with ``label``, ``cost`` (seconds per step / SGD's), ``mean``,
    ``low``, ``high`` and optionally ``cost_low``/``cost_high`` (drawn as horizontal bars), as
    :func:`sparsam.book.records.cost_summary` builds it. ``budget``: a vertical line at that cost;
    ``front``: a line through the Pareto front of the means (:func:`sparsam.book.records.pareto_front`);
    ``xlabel`` names what the cost measures.
    """
    missing = sorted({"label", "cost", "mean", "low", "high"} - set(frame.columns))
    if missing:
        raise ValueError(f"frame lacks the columns {missing}")
    fig, ax = _figure(ax, (9.0, 6.5) if len(frame) > 6 else (6.4, 4.2))  # room for a long legend below
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*Xhp<>"
    for i, (_, row) in enumerate(frame.iterrows()):
        style = {"color": colors[i % len(colors)], "marker": markers[i // len(colors) % len(markers)]}
        interval_errorbar(ax, [row["cost"]], [row["mean"]], [row["low"]], [row["high"]], label=str(row["label"]),
                          **style)
        if np.isfinite(row.get("cost_low", np.nan)) and np.isfinite(row.get("cost_high", np.nan)):
            ax.errorbar([row["cost"]], [row["mean"]], xerr=[[row["cost"] - row["cost_low"]],
                                                            [row["cost_high"] - row["cost"]]],
                        color=style["color"], capsize=3, linestyle="none", linewidth=0.8)
    if front and len(frame):
        on = frame[pareto_front(frame)].sort_values("cost")
        ax.step(on["cost"], on["mean"], where="post", color="k", linewidth=0.8, alpha=0.6,
                label="Pareto front of the means")
    if budget is not None:
        ax.axvline(budget, color="tab:red", linestyle=":", linewidth=1.2, label=f"{budget:g} SGD steps")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    if title is not None:
        ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncol=2 if len(frame) <= 6 else 3)
    return fig


# --- the chapters' figures: one function per figure, called from the notebooks ----------------------------------

NETWORK_COLORS = {"sgd": "tab:red", "sam": "tab:gray", "ssam": "tab:blue", "ssamd": "tab:orange"}


def _legend_below(fig: Figure, ax: Axes | None = None, ncol: int = 3, **extra: Any) -> None:
    """The legend of ``ax`` (or of every panel) under the panels, never over the data."""
    handles, labels = (ax or fig.axes[0]).get_legend_handles_labels()
    if ax is None:
        seen = dict(zip(labels, handles))
        for other in fig.axes[1:]:
            for h, lab in zip(*other.get_legend_handles_labels()):
                seen.setdefault(lab, h)
        labels, handles = list(seen), list(seen.values())
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False, **extra)


def _band(ax: Axes, x: Sequence[float], mean: Sequence[float], low: Sequence[float], high: Sequence[float],
          **style: Any) -> None:
    """``mean`` as a line, the interval from ``low`` to ``high`` as a band where there is one (none for one seed)."""
    ax.plot(x, mean, **style)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(x, low, high, color=style.get("color"), alpha=0.2, linewidth=0)


def convergence_rates(grad_sq: Mapping[str, np.ndarray], statuses: Mapping[str, str], *, bound_scale: float,
                      window_start: int, level: float = 0.95, ncols: int = 4) -> Figure:
    """Notebook 1's rate figure: one panel per run (small multiples, shared axes, log-log). Each shows the
    running mean of ‖∇f(w_t)‖² (mean over seeds and its 95% t-interval band), the per-iterate values
    (mean over seeds, log bins), the bound's shape C log T/√T with C = ``bound_scale`` and the window of
    the rule (T from ``window_start``). ``grad_sq``: label -> array (seeds, steps); ``statuses``: the
    rule's status of each label, shown in its panel's title."""
    if not grad_sq:
        raise ValueError("grad_sq holds no run")
    steps = {values.shape[1] for values in grad_sq.values()}
    if len(steps) != 1:
        raise ValueError(f"every run of grad_sq must have the same number of steps, got {sorted(steps)}")
    steps = steps.pop()
    iters = np.arange(1, steps + 1)
    shown = np.unique(np.geomspace(1, steps, min(steps, 200)).astype(int)) - 1  # thinned, even on a log axis
    rows = -(-len(grad_sq) // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(3.4 * ncols, 2.9 * rows + 0.8), sharex=True, sharey=True,
                             layout="constrained", squeeze=False)
    shape = np.log(iters) / np.sqrt(iters)
    window = iters >= window_start
    for ax, (label, values) in zip(axes.flat, grad_sq.items()):
        ax.axvspan(window_start, steps, color="0.92", zorder=0, label="window of the rule")
        ax.plot(*log_binned(values.mean(axis=0)), color="0.55", lw=1,
                label=r"$\|\nabla f(w_t)\|^2$ per iterate (mean over seeds, log bins)")
        _band(ax, iters[shown], *running_mean_interval(values, iters[shown], level), color="tab:blue", lw=1.8,
              label=r"running mean $R_T$ (mean, 95% interval over seeds)")
        ax.plot(iters[window], bound_scale * shape[window], color="tab:green", ls="--", lw=1.5,
                label=r"bound shape $C\,\log T/\sqrt{T}$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{label}\n{statuses.get(label, '')}", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(grad_sq):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("iteration t (T for the running mean)")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\|\nabla f\|^2$ (squared loss-gradient norm)")
    _legend_below(fig, axes.flat[0], ncol=4)
    return fig


def layer_densities(densities: Mapping[str, Sequence[float]], overall: Mapping[str, float], layer_names: Sequence[str],
                    title: str) -> Figure:
    """Notebook 2: the perturbed fraction of every conv / linear weight, one panel per mask pattern
    (small multiples, shared axes); the pattern's overall density is the dashed line, named in the title."""
    fig, axes = plt.subplots(len(densities), 1, figsize=(12, 1.9 * len(densities) + 1), sharex=True, sharey=True,
                             layout="constrained", squeeze=False)
    xs = np.arange(len(layer_names))
    for ax, (name, values) in zip(axes[:, 0], densities.items()):
        if len(values) != len(layer_names):
            raise ValueError(f"densities[{name!r}] has {len(values)} values for {len(layer_names)} layer names")
        ax.bar(xs, values, color="tab:blue", width=0.8)
        ax.axhline(overall[name], color="k", ls="--", lw=1)
        ax.set(ylim=(0, 1.05), yticks=[0, 0.5, 1], ylabel="density\n(fraction perturbed)")
        ax.set_title(f"{name}: overall density {overall[name]:.3f} (dashed line)", loc="left", fontsize=10)
    axes[-1, 0].set_xticks(xs, layer_names, rotation=60, ha="right", fontsize=8)
    axes[-1, 0].set_xlabel("conv / linear weight (stem to classifier)")
    fig.suptitle(title)
    return fig


def mask_heatmaps(scores: np.ndarray, masks: Mapping[str, np.ndarray], layer: str) -> Figure:
    """Notebook 2: one layer's Fisher scores (log10, with a colour bar) above its mask in every pattern
    (black: perturbed), all as [C_out, C_in·k·k] maps."""
    scores = np.asarray(scores, dtype=float)
    fig, axes = plt.subplots(len(masks) + 1, 1, figsize=(12, 1.9 * (len(masks) + 1)), sharex=True,
                             layout="constrained", squeeze=False)
    axes = axes[:, 0]
    positive = scores[scores > 0]
    image = axes[0].imshow(np.log10(scores + (positive.min() if positive.size else 1.0)), aspect="auto",
                           cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="log10 Fisher score", pad=0.01)
    axes[0].set_title(f"Fisher scores of {layer}", loc="left", fontsize=10)
    for ax, (name, mask) in zip(axes[1:], masks.items()):
        mask = np.asarray(mask, dtype=float)
        if mask.shape != scores.shape:
            raise ValueError(f"masks[{name!r}] has shape {mask.shape}, the scores {scores.shape}")
        ax.imshow(mask, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{name}: {mask.mean():.2f} of this layer perturbed (black)", loc="left", fontsize=10)
    for ax in axes:
        ax.set_ylabel("output channel")
    axes[-1].set_xlabel("input channel × k×k tap (flattened C_in·k·k index)")
    return fig


def _layer_heatmap(fig: Figure, ax: Axes, values: np.ndarray, layer_names: Sequence[str], **extent: Any) -> None:
    image = ax.imshow(np.asarray(values, dtype=float).T, aspect="auto", cmap="magma", interpolation="nearest",
                      vmin=0, vmax=1, **extent)
    ax.set_yticks(np.arange(len(layer_names)), layer_names, fontsize=7)
    ax.set_ylabel("conv / linear weight")
    fig.colorbar(image, ax=ax, label="density of the layer (fraction perturbed)", pad=0.01)


def mask_turnover(updates: pd.DataFrame, update_layers: np.ndarray, layer_names: Sequence[str]) -> Figure:
    """Notebook 2, SSAM-F: (a) the share of the perturbed entries each Fisher mask keeps from the previous
    mask and from the first; (b) the density of every layer at every update."""
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 5), width_ratios=[1, 1.6], layout="constrained")
    ax_a.plot(updates["step"], updates["kept_previous"], "o-", color="tab:blue", label="kept from the previous mask")
    ax_a.plot(updates["step"], updates["kept_first"], "s--", color="tab:orange", label="kept from the first mask")
    ax_a.set(xlabel="step of the update (optimizer steps)", ylabel="share of perturbed entries", ylim=(0, 1.05),
             title="(a) How much of the mask survives an update")
    _legend_below(fig, ax_a, ncol=2)
    _layer_heatmap(fig, ax_b, update_layers, layer_names)
    ax_b.set_xticks(np.arange(len(updates)), updates["step"])
    ax_b.set(xlabel="step of the update (optimizer steps)", title="(b) Density of each layer, per update")
    return fig


def dynamic_mask(density: np.ndarray, target: float, schedule: pd.Series, updates: pd.DataFrame,
                 layers: np.ndarray, layer_names: Sequence[str]) -> Figure:
    """Notebook 2, SSAM-D: (a) the overall density after every step against 1 - s (``target``); (b) the
    share of perturbed entries exchanged at each update against the drop rate α_t (``schedule``,
    indexed by step); (c) every layer's density after every step."""
    fig = plt.figure(figsize=(12, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.3])
    ax_a, ax_b, ax_c = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    steps = np.arange(len(density))
    ax_a.plot(steps, density, marker=".", color="tab:blue", label="overall density after each step")
    ax_a.axhline(target, color="k", ls="--", lw=1, label=r"target density $1 - s$")
    ax_a.set(xlabel="optimizer step", ylabel="overall density (fraction perturbed)", title="(a) Overall density",
             ylim=(0, 1))
    ax_b.plot(schedule.index, schedule.to_numpy(), color="k", lw=1, label=r"drop rate $\alpha_t$ (cosine schedule)")
    ax_b.plot(updates["step"], updates["dropped"], "o", color="tab:orange",
              label="measured: dropped / perturbed before the update")
    ax_b.set(xlabel="step t of the update (optimizer steps)", ylabel="fraction of perturbed entries exchanged",
             title="(b) Entries exchanged at each update", ylim=(0, None))
    _layer_heatmap(fig, ax_c, layers, layer_names, extent=(-0.5, len(density) - 0.5, len(layer_names) - 0.5, -0.5))
    ax_c.set(xlabel="optimizer step", title="(c) Density of each conv / linear weight over time")
    _legend_below(fig, ncol=2)
    return fig


def nm_defect(scores: np.ndarray, intended: np.ndarray, official: np.ndarray, layer: str, defect: pd.DataFrame,
              n: int, m: int, rows: int = 16, cols: int = 36) -> Figure:
    """Notebook 2, the official N:M masks of convolutions: the top-left ``rows`` × ``cols`` corner of one
    layer's [C_out, C_in·k·k] scores, its intended mask and its official mask (red: kept although not
    among the n best of its group of m output channels), and per conv layer (``defect``, rows of
    :func:`sparsam.book.mask_stats.nm_defect`) the Fisher score the official mask keeps against the
    intended one and against a random N:M mask's expectation."""
    scores, intended, official = (np.asarray(a) for a in (scores, intended, official))
    if not (scores.shape == intended.shape == official.shape):
        raise ValueError(f"scores, intended and official must have one shape, got {scores.shape}, {intended.shape}, "
                         f"{official.shape}")
    rows, cols = min(rows, scores.shape[0]), min(cols, scores.shape[1])
    zoom, good, off = scores[:rows, :cols], intended[:rows, :cols].astype(bool), official[:rows, :cols].astype(bool)
    category = np.where(off & good, 1, np.where(off & ~good, 2, 0))
    fig = plt.figure(figsize=(12, 9), layout="constrained")
    grid = fig.add_gridspec(4, 1, height_ratios=[1, 1, 1, 1.4])
    axes = [fig.add_subplot(grid[i]) for i in range(3)]
    positive = scores[scores > 0]
    image = axes[0].imshow(np.log10(zoom + (positive.min() if positive.size else 1.0)), aspect="auto",
                           cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="log10 Fisher score", pad=0.01)
    axes[0].set_title("log10 Fisher score", loc="left", fontsize=10)
    axes[1].imshow(good.astype(float), aspect="auto", cmap=ListedColormap(["white", "tab:green"]), vmin=0, vmax=1,
                   interpolation="nearest")
    axes[1].set_title(f'intended {n}:{m} (masks.n_m, dim="out"): kept entries in green', loc="left", fontsize=10)
    axes[2].imshow(category, aspect="auto", cmap=ListedColormap(["white", "tab:green", "tab:red"]), vmin=0, vmax=2,
                   interpolation="nearest")
    axes[2].set_title(f"official {n}:{m} (masks.n_m_official): green = kept and among the best {n}, "
                      "red = kept but not", loc="left", fontsize=10)
    for ax in axes:
        for r in range(m, rows, m):
            ax.axhline(r - 0.5, color="0.5", lw=0.6)
        ax.set_ylabel("output channel")
    axes[2].set_xlabel(f"flattened C_in·k·k index of {layer} (first {cols})")
    ax = fig.add_subplot(grid[3])
    xs = np.arange(len(defect))
    shares = nm_shares(defect, n, m)
    ax.bar(xs, shares["chosen_mass"], color="tab:red", label="official mask")
    ax.plot(xs, shares["random_mass"], "k_", markersize=12,
            label=f"random {n}:{m} mask (expected)")
    ax.axhline(1.0, color="tab:green", lw=1, label="intended mask")
    ax.set_xticks(xs, [str(name) for name in defect.index], rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="Fisher mass kept / intended", ylim=(0, 1.1), yticks=[0, 0.25, 0.5, 0.75, 1],
           title=f"Fisher score kept by the official {n}:{m} mask, per conv layer")
    _legend_below(fig, ax, ncol=3)
    return fig


def training_curves(curves: pd.DataFrame, level: float = 0.95, title: str | None = None) -> Figure:
    """Notebook 3: training loss and test accuracy against epoch, one line per ``method`` (mean over
    seeds, 95% t-interval band where there are several seeds). ``curves``: rows of
    :func:`sparsam.book.records.metrics_frame` with a ``method`` column; ``title`` (e.g. the runs' scale)
    above both panels."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    if title is not None:
        fig.suptitle(title, fontsize="medium")
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for method in curves["method"].dropna().unique():
        color = next(colors)
        for ax, value in zip(axes, ("train_loss", "test_acc")):
            summary = summarize(curves[curves["method"] == method], "epoch", value, level).dropna(subset=["mean"])
            ax.plot(summary["epoch"], summary["mean"], marker=".", color=color, label=method)
            if summary["low"].notna().any():
                ax.fill_between(summary["epoch"], summary["low"].astype(float), summary["high"].astype(float),
                                color=color, alpha=0.2, linewidth=0)
    axes[0].set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)")
    axes[1].set(xlabel="epoch", ylabel="test accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    runs = curves.groupby("method")["run_id"].nunique() if "run_id" in curves else pd.Series(dtype=int)
    title = (INTERVAL if len(runs) and (runs > 1).all() else NO_INTERVAL if not (runs > 1).any()
             else f"{INTERVAL} (band); a line without a band: {NO_INTERVAL}")
    _legend_below(fig, axes[0], ncol=4, title=title)
    return fig


def flops_vs_sparsity(curves: pd.DataFrame, sam: float, title: str) -> Figure:
    """Notebook 4: FLOPs of a step per SGD step against sparsity, one series per mask rule (``curves``:
    ``mask, sparsity, mean, low, high`` as :func:`sparsam.book.records.summarize` gives them), with SAM's
    cost (``sam``) and SGD's (1) as reference lines. With an ``accounting`` column
    (:data:`sparsam.book.efficiency.ACCOUNTINGS`), one panel per accounting, in the order of the rows, one colour
    per mask rule across the panels, the y axis shared."""
    panels = list(dict.fromkeys(curves["accounting"])) if "accounting" in curves.columns else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2 if len(panels) == 1 else 3.4 * len(panels), 4.8),
                             sharey=True, squeeze=False, layout="constrained")
    colours = {mask: f"C{k}" for k, mask in enumerate(dict.fromkeys(curves["mask"]))}
    for ax, panel in zip(axes[0], panels):
        shown = curves if panel is None else curves[curves["accounting"] == panel]
        for mask, curve in shown.groupby("mask", sort=False):
            ax.plot(curve["sparsity"], curve["mean"], linewidth=1, color=colours[mask])
            interval_errorbar(ax, curve["sparsity"], curve["mean"], curve["low"], curve["high"],
                              label=mask if panel is not None else f"sparse ascent, {mask}", color=colours[mask])
        ax.axhline(sam, color="k", ls="--", label="SAM and explicit SSAM as the official code runs it (any mask)")
        ax.axhline(1.0, color="gray", ls=":", label="SGD")
        ax.set(xlabel="sparsity s (fraction not perturbed)")
        if panel is not None:
            ax.set_title(panel, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("FLOPs per step / FLOPs of an SGD step")
    fig.suptitle(title, fontsize="medium")
    _legend_below(fig, None if len(panels) > 1 else axes[0][0], ncol=2)
    return fig


def step_times(summary: pd.DataFrame, title: str) -> Figure:
    """Notebook 4: wall time per step of each method per SGD step (``summary`` indexed by method, with
    ``mean, low, high``), horizontal 95% intervals over seeds, SGD (1) and SAM as reference lines."""
    fig, ax = _figure(None, (7.2, 0.45 * len(summary) + 2.2))
    interval_errorbar(ax, range(len(summary)), summary["mean"], summary["low"], summary["high"], horizontal=True,
                      label="step time / SGD step", color="tab:blue")
    ax.set_yticks(range(len(summary)), summary.index)
    ax.axvline(1.0, color="gray", ls=":", label="SGD")
    if "SAM" in summary.index:
        ax.axvline(summary.loc["SAM", "mean"], color="k", ls="--", lw=0.8, label="SAM (mean)")
    ax.invert_yaxis()
    ax.set_xlabel("wall time per step / wall time of an SGD step")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, axis="x")
    _legend_below(fig, ax, ncol=3)
    return fig


def fisher_times(times: pd.DataFrame, title: str) -> Figure:
    """Notebook 4: seconds per Fisher-mask update against N_F (``times`` indexed by N_F, one column per
    way of computing it; a column named "limit: ..." is drawn dotted). One measurement each: no interval."""
    fig, ax = _figure(None, (7.2, 4.4))
    for column in times.columns:
        ax.plot(times.index, times[column], marker="o", ls=":" if str(column).startswith("limit") else "-",
                label=f"{column} ({NO_INTERVAL.replace('one seed', 'one measurement')})")
    ax.set(xlabel="N_F (samples per Fisher estimate)", ylabel="seconds per mask update")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncol=2)
    return fig


def ideal_vs_measured(rows: pd.DataFrame, title: str,
                      rules: Mapping[str, str] = {"fisher": "papers' rule", "cost-aware": "cost-aware",
                                                  "top blocks": "top blocks only"}) -> Figure:
    """Notebook 4, a benchmark table: measured sparse-ascent step time per SGD step (``ratio_to_sgd``)
    against the ideal cost of its mask (``ideal_seconds_ratio``), one marker per mask rule (the end of
    ``config``), with the line measured = ideal and a band up to 10% above it."""
    fig, ax = _figure(None, (6.8, 4.6))
    for (rule, name), marker in zip(rules.items(), "os^vD"):
        pick = rows[rows["config"].str.endswith(rule)]
        ax.scatter(pick["ideal_seconds_ratio"], pick["ratio_to_sgd"], marker=marker, label=f"{name} (one measurement)")
    lims = [float(rows["ideal_seconds_ratio"].min()) * 0.95, float(rows["ratio_to_sgd"].max()) * 1.05]
    ax.plot(lims, lims, color="gray", ls=":", label="measured = ideal")
    ax.fill_between(lims, lims, [1.1 * v for v in lims], color="gray", alpha=0.15, label="within 10% of ideal")
    ax.set(xlabel="ideal cost of the mask (per-layer times it cannot skip) / SGD step",
           ylabel="measured sparse-ascent step / SGD step")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncol=2)
    return fig


def accuracy_by_method(summary: pd.DataFrame, chance: float, title: str) -> Figure:
    """Notebook 5: top-1 accuracy per method (``summary``: ``method, mean, low, high``), 95% intervals
    over seeds, with the chance level as a reference line."""
    fig, ax = _figure(None, (6.0, 4.6))
    interval_errorbar(ax, range(len(summary)), summary["mean"], summary["low"], summary["high"],
                      label="top-1 accuracy", color="tab:blue")
    ax.set_xticks(range(len(summary)), summary["method"])
    ax.axhline(chance, color="tab:red", linestyle=":", label=f"chance ({chance:g} %)")
    ax.set(xlabel="optimizer", ylabel="top-1 accuracy (%)")
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="y", alpha=0.3)
    _legend_below(fig, ax, ncol=2)
    return fig


def cost_by_method(gflops: pd.Series, seconds: pd.DataFrame, batch: int) -> Figure:
    """Notebook 5: (a) GFLOPs of one training step per method (``gflops``, counted once: no interval);
    (b) seconds per step (``seconds``: ``method, mean, low, high``), 95% intervals over seeds."""
    fig, (ax_flops, ax_time) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    ax_flops.bar(list(gflops.index), gflops.to_numpy(), color="tab:gray")
    interval_errorbar(ax_time, range(len(seconds)), seconds["mean"], seconds["low"], seconds["high"],
                      label="seconds per step", color="tab:blue")
    ax_time.set_xticks(range(len(seconds)), seconds["method"])
    ax_flops.set(xlabel="optimizer", ylabel=f"GFLOPs per step (batch of {batch} images)",
                 title="(a) FLOPs, counted on one batch")
    ax_time.set(xlabel="optimizer", ylabel="seconds per training step", title="(b) Measured time")
    for ax in (ax_flops, ax_time):
        ax.grid(axis="y", alpha=0.3)
    _legend_below(fig, ax_time, ncol=2)
    return fig


def gradient_difference(diff: Mapping[str, Any], fractions: Sequence[float], shares: Sequence[float],
                        norm_layers: Sequence[str] = (), color: str = NETWORK_COLORS["sgd"]) -> Figure:
    """Notebook 6: where g_SAM − g lives. ``diff``: parameter name -> difference tensor. (a) the share of
    the squared difference held by the largest entries (``shares`` at ``fractions`` marked); (b) the
    histogram of |difference| per entry; (c) the mean |difference| per layer, BatchNorm layers
    (``norm_layers``) in purple."""
    flat = np.concatenate([np.abs(np.asarray(d, dtype=float)).ravel() for d in diff.values()])
    if flat.size == 0:
        raise ValueError("diff holds no entries")
    fig, (ax_share, ax_hist, ax_layer) = plt.subplots(1, 3, figsize=(15, 4.8), width_ratios=[1, 1, 1.5],
                                                      layout="constrained")
    ax_share.plot(*concentration_curve(flat), color=color, label="$g_{SAM} - g$")
    even = np.geomspace(1 / len(flat), 1, 200)
    ax_share.plot(even, even, "k--", lw=1, label="evenly spread")
    for f, share in zip(fractions, shares):
        ax_share.plot(f, share, "o", color="black", ms=4)
        ax_share.annotate(f"top {100 * f:g}%: {100 * share:.0f}%", (f, share), textcoords="offset points",
                          xytext=(6, -12), fontsize=8)
    ax_share.set(xscale="log", xlabel="fraction of entries, largest |difference| first",
                 ylabel="share of the squared difference", title="(a) Concentration")
    positive = flat[flat > 0]
    bins = np.geomspace(positive.min(), positive.max(), 60) if positive.size else 10
    ax_hist.hist(positive, bins=bins, color=color, alpha=0.8)
    ax_hist.set(xscale="log", yscale="log", xlabel="|g_SAM − g| per entry (loss units per weight unit)",
                ylabel="number of entries", title="(b) Distribution over entries")
    means = layer_means(diff)
    names = list(means)
    ax_layer.bar(range(len(names)), list(means.values()), color=["tab:purple" if n in norm_layers else color for n in names])
    ax_layer.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax_layer.set(yscale="log", ylabel="mean |g_SAM − g| in the layer",
                 title="(c) Per layer: convolution / linear, BatchNorm in purple")
    for ax in (ax_share, ax_hist, ax_layer):
        ax.grid(alpha=0.3)
    _legend_below(fig, ax_share, ncol=2)
    return fig


def _network_label(key: str) -> str:
    from .flatness import NETWORK_NAMES
    return NETWORK_NAMES.get(key, key)


def loss_lines(alphas: Sequence[float], curves: Mapping[str, Sequence[float]]) -> Figure:
    """Notebook 6: the training loss along one random filter-normalised direction, one line per network
    (``curves``: network kind -> losses at ``alphas``); one direction, no interval."""
    fig, ax = _figure(None, (6.8, 4.6))
    for key, losses in curves.items():
        ax.plot(np.asarray(alphas, dtype=float), np.asarray(losses, dtype=float), marker=".",
                color=NETWORK_COLORS.get(key), label=_network_label(key))
    ax.set_xlabel("step α along the direction (filter-normalised units)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_ylabel("training loss (cross-entropy, nats, log scale)")
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncol=4, title="one random direction per network: no interval")
    return fig


def loss_surfaces(grid: Sequence[float], surfaces: Mapping[str, np.ndarray]) -> Figure:
    """Notebook 6: the training loss on the plane of two random directions, one panel per network
    (small multiples, one shared log colour scale); the trained weights are the red cross at (0, 0)."""
    grid = np.asarray(grid, dtype=float)
    low = min(float(s.min()) for s in surfaces.values())
    high = max(float(s.max()) for s in surfaces.values())
    levels = np.geomspace(low, high, 16)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    fig, axes = plt.subplots(1, len(surfaces), figsize=(4.2 * len(surfaces) + 1, 4.4), layout="constrained",
                             squeeze=False, sharey=True)
    for ax, (key, surface) in zip(axes[0], surfaces.items()):
        filled = ax.contourf(a, b, surface, levels=levels, cmap="viridis", norm=LogNorm(low, high))
        ax.contour(a, b, surface, levels=levels, colors="white", linewidths=0.4)
        ax.plot(0, 0, "x", color="red", ms=8)
        ax.set_title(f"{_network_label(key)} (red cross: trained weights)", fontsize=9)
        ax.set_xlabel("α along d₁ (filter-normalised units)")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("β along d₂ (filter-normalised units)")
    bar = fig.colorbar(filled, ax=axes[0].tolist(), label="training loss (cross-entropy, nats, log scale)")
    bar.set_ticks(levels[::3], labels=[f"{v:.3g}" for v in levels[::3]])
    bar.ax.minorticks_off()
    return fig


def curvature_figure(curv: pd.DataFrame, kinds: Sequence[str], level: float = 0.95) -> Figure:
    """Notebook 6: the Hessian's top eigenvalue and trace per network (``curv``: one row per network and
    seed, with ``method``, ``seed``, ``eigenvalue``, ``trace``, ``trace_stderr`` and
    ``eigenvalue_history``), 95% intervals as :func:`sparsam.book.flatness.curvature_summary` gives them,
    and the power iteration of the first seed measured, one line per network kind of ``kinds``."""
    from .flatness import curvature_summary

    fig, (ax_eig, ax_tr, ax_it) = plt.subplots(1, 3, figsize=(14, 4.6), layout="constrained")
    for ax, measure, ylabel in ((ax_eig, "eigenvalue", "top Hessian eigenvalue λ_max (nats per unit²)"),
                                (ax_tr, "trace", "Hessian trace (nats per unit²)")):
        summary = curvature_summary(curv, measure, level)
        sources = ", ".join(sorted(set(summary["interval"])))
        interval_errorbar(ax, range(len(summary)), summary["mean"], summary["low"], summary["high"],
                          label=measure, color="tab:blue", interval=sources)
        ax.set_xticks(range(len(summary)), summary["method"], fontsize=8)
        ax.set(ylabel=ylabel, title=f"({'a' if measure == 'eigenvalue' else 'b'}) {measure}; interval: {sources}")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, axis="y")
    first = curv["seed"].iloc[0]
    for key in kinds:
        history = curv[(curv["method"] == _network_label(key)) & (curv["seed"] == first)]["eigenvalue_history"]
        if len(history):
            ax_it.plot(range(1, len(history.iloc[0]) + 1), history.iloc[0], marker=".", color=NETWORK_COLORS.get(key),
                       label=_network_label(key))
    ax_it.set(title=f"(c) power iteration, seed {first}", xlabel="power-iteration step (Hessian-vector products)",
              ylabel="Rayleigh quotient vᵀHv (nats per unit²)")
    ax_it.title.set_fontsize(9)
    ax_it.grid(alpha=0.3)
    _legend_below(fig, ax_it, ncol=4)
    return fig


def message_figure(text: str) -> Figure:
    """A figure that says why there is nothing to draw (e.g. no chapter has saved its claims yet)."""
    fig, ax = plt.subplots(figsize=(8, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    return fig


CURVE_AXES = {"test_acc": "test accuracy (%, clean labels)", "train_acc": "training accuracy (%, on its labels)",
              "train_loss": "training loss (cross-entropy, nats)"}


def curves_grid(curves: pd.DataFrame, values: Sequence[str] = ("test_acc", "train_acc"), *, row: str = "candidate",
                row_titles: Mapping[Any, str] | None = None, references: Mapping[str, tuple[float, str]] | None = None,
                level: float = 0.95) -> Figure:
    """Small multiples of training curves: one row of panels per value of ``curves[row]`` (e.g. a pilot's
    candidates), one column per metric of ``values``, one line per ``method`` (mean over seeds at each epoch where
    the metric was recorded, 95% t-interval band over seeds), shared x axes and one colour per method in every
    panel; ``references``: per metric, a dashed horizontal line (value, label), e.g. the fraction of correct
    training labels. ``curves``: rows of :func:`sparsam.book.records.metrics_frame` with ``method`` and ``row``."""
    keys = list(dict.fromkeys(curves[row]))
    if not keys:
        raise ValueError(f"curves has no rows with a {row!r}")
    methods = list(dict.fromkeys(curves["method"]))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(keys), len(values), figsize=(5.2 * len(values), 3.4 * len(keys)), sharex=True,
                             squeeze=False, layout="constrained")
    for i, key in enumerate(keys):
        for j, value in enumerate(values):
            ax = axes[i, j]
            for method in methods:
                part = curves[(curves[row] == key) & (curves["method"] == method)].dropna(subset=[value])
                if part.empty:
                    continue
                summary = summarize(part, "epoch", value, level).dropna(subset=["mean"])
                ax.plot(summary["epoch"], summary["mean"], color=colors[method], label=method)
                if summary["low"].notna().any():
                    ax.fill_between(summary["epoch"], summary["low"].astype(float), summary["high"].astype(float),
                                    color=colors[method], alpha=0.2, linewidth=0)
            if references and value in references:
                level_at, label = references[value]
                ax.axhline(level_at, color="0.4", linestyle="--", linewidth=0.9, label=label)
            ax.set(ylabel=CURVE_AXES.get(value, value), title=(row_titles or {}).get(key, f"{row} {key}"))
            ax.grid(alpha=0.3)
            if i == len(keys) - 1:
                ax.set_xlabel("epoch")
    _legend_below(fig, ncol=len(methods) + 1, title=INTERVAL + " (band)")
    return fig
