"""Plots: intervals drawn where there are seeds, plain points (and a legend saying so) where there is one."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

import ast  # noqa: E402
import json  # noqa: E402

from conftest import REPO  # noqa: E402
from sparsam.book import plots  # noqa: E402
from sparsam.book import stats  # noqa: E402
from sparsam.experiment.config import TrainConfig  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legend_texts(ax) -> list[str]:
    """The texts of the legend of ``ax``, or of its figure's legend (drawn below the panels)."""
    legend = ax.get_legend() or (ax.figure.legends[0] if ax.figure.legends else None)
    return [t.get_text() for t in legend.get_texts()]


def figure_legend(fig) -> list[str]:
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes), "one legend, below the panels"
    return [t.get_text() for t in fig.legends[0].get_texts()]


def frame_of(runs: list[tuple[str, float, int, float]]) -> pd.DataFrame:
    """A records-like frame: optimizer, sparsity, seed, final_test_acc."""
    rows = [{**TrainConfig(optimizer=o, sparsity=s, seed=k).to_dict(), "final_test_acc": acc} for o, s, k, acc in runs]
    return pd.DataFrame(rows)


def test_interval_errorbar_draws_bars_only_where_there_is_an_interval():
    fig, ax = plt.subplots()
    artists = plots.interval_errorbar(ax, [1, 2], [90.0, 91.0], [89.0, np.nan], [91.0, np.nan], label="SSAM")
    assert isinstance(artists[0], ErrorbarContainer)
    bars = artists[0].lines[2][0].get_segments()
    assert len(bars) == 1 and np.allclose(bars[0], [[1, 89.0], [1, 91.0]])
    ax.legend()
    assert sorted(legend_texts(ax)) == ["SSAM (mean, 95% interval over seeds)", "SSAM (one seed: no interval)"]


def test_interval_errorbar_with_one_seed_draws_plain_points():
    fig, ax = plt.subplots()
    artists = plots.interval_errorbar(ax, [0.5, 0.9], [90.0, 91.0], [np.nan] * 2, [np.nan] * 2, label="SSAM-F")
    assert not any(isinstance(a, ErrorbarContainer) for a in artists) and not ax.containers
    ax.legend()
    assert legend_texts(ax) == ["SSAM-F (one seed: no interval)"]
    fig, ax = plt.subplots()
    plots.interval_errorbar(ax, [1], [20.0], [18.0], [22.0], label="SGD",
                            interval="from the estimator's s.e., one seed")
    ax.legend()
    assert legend_texts(ax) == ["SGD (mean, 95% interval from the estimator's s.e., one seed)"]
    with pytest.raises(ValueError, match="one shape"):
        plots.interval_errorbar(ax, [1, 2], [1.0], [1.0], [1.0])


def test_accuracy_vs_sparsity_with_seeds_and_with_one_seed():
    many = frame_of([(o, s, k, 90 + k + s) for o, s in (("ssam-f", 0.5), ("ssam-f", 0.9), ("sam", 0.5), ("sgd", 0.5))
                     for k in range(3)])
    ax = plots.accuracy_vs_sparsity(many).axes[0]
    assert ax.get_ylabel() == "test accuracy (%)" and "sparsity" in ax.get_xlabel()
    assert len(ax.containers) == 1  # SSAM-F's error bars
    assert "SSAM-F (mean, 95% interval over seeds)" in legend_texts(ax)
    assert "SAM (mean, 95% interval over seeds)" in legend_texts(ax)
    one = frame_of([("ssam-f", 0.5, 0, 90.0), ("ssam-f", 0.9, 0, 89.0), ("sam", 0.5, 0, 90.5)])
    ax = plots.accuracy_vs_sparsity(one).axes[0]
    assert not ax.containers
    assert set(legend_texts(ax)) == {"SSAM-F (one seed: no interval)", "SAM (one seed: no interval)"}


def claims() -> pd.DataFrame:
    return stats.verdicts_frame({
        "SSAM ≥ SAM": stats.decide("accuracy_ssam_vs_sam", [90.1, 90.3, 89.8], [90.0, 90.2, 90.1]),
        "SAM > SGD": stats.decide("accuracy_sam_vs_sgd", [91.0], [90.0]),
        "flatter than SGD": stats.decide("flatness_ssam_vs_sgd", [5.0, 5.5, 4.8], [10.0, 11.0, 9.0]),
    })


def test_claims_figure_one_panel_per_unit_with_margins_and_statuses():
    fig = plots.claims_figure(claims())
    pp, ratio = fig.axes
    assert "percentage points" in pp.get_xlabel() and "ratio" in ratio.get_xlabel() and ratio.get_xscale() == "log"
    margins = [line for line in pp.lines if np.allclose(line.get_xdata(), [-0.5, -0.5])]
    assert len(margins) == 1  # the non-inferiority margin of "SSAM ≥ SAM", at -0.5 pp
    assert len(pp.containers) == 1  # "SAM > SGD" has one seed: a plain point, no bar
    labels = [t.get_text() for t in pp.get_yticklabels()]
    assert labels == ["SSAM ≥ SAM\ninconclusive (n = 3)", "SAM > SGD\ninconclusive (n = 1)"]
    bar = ratio.containers[0].lines[2][0].get_segments()[0]
    assert bar[1][0] < 1.0  # the flatness ratio's interval lies below 1 on the ratio axis
    assert "mean paired difference, 95% interval" in legend_texts(fig.axes[0])


def test_claims_figure_of_other_units_and_of_no_claims():
    fig = plots.claims_figure(claims().assign(unit=["slope", "slope", "pp"]))
    assert [ax.get_xlabel() for ax in fig.axes] == ["difference method − reference (slope)",
                                                    "difference method − reference (percentage points)"]
    with pytest.raises(ValueError, match="no claims"):
        plots.claims_figure(claims().iloc[:0])


def family_claims() -> pd.DataFrame:
    """Four claims read as one family: "gain" is reproduced by the registered rule but not by Holm's."""
    return stats.verdicts_frame(stats.family({
        "close": stats.decide("accuracy_ssam_vs_sam", [90.3, 90.5, 90.2, 90.2, 90.4],
                                 [90.3, 90.4, 90.2, 90.1, 90.5]),
        "gain": stats.decide("accuracy_sam_vs_sgd", [91.0, 90.6, 91.3], [90.0, 90.0, 90.1]),
        "one": stats.decide("accuracy_sam_vs_sgd", [91.0], [90.0]),
        "flat": stats.decide("flatness_ssam_vs_sgd", [5.0, 5.5, 4.8, 5.1], [10.0, 11.0, 9.0, 9.5]),
    }))


def bars_of(ax, label: str) -> list[np.ndarray]:
    """The horizontal bar segments of the error-bar containers of ``ax`` with ``label``, top claim last."""
    return [c.lines[2][0].get_segments()[0] for c in ax.containers if c.get_label() == label]


def test_claims_figure_draws_the_interval_and_the_simultaneous_interval_of_a_family():
    frame = family_claims()
    assert frame.set_index("claim").loc["gain", ["status", "family_status"]].tolist() == ["reproduced", "inconclusive"]
    fig = plots.claims_figure(frame)
    pp, ratio = fig.axes
    # two intervals per claim with an interval, read back from the artists: the frame's exact numbers
    pp_rows = frame[frame["unit"] == "pp"].dropna(subset=["low"])
    for label, (lo, hi) in (("95% interval", ("low", "high")), ("simultaneous 95% interval", ("sim_low", "sim_high"))):
        bars = bars_of(pp, label)
        assert len(bars) == len(pp_rows) == 2
        assert np.allclose([[b[0][0], b[1][0]] for b in bars], pp_rows[[lo, hi]].to_numpy(float), rtol=0, atol=1e-12)
        (flat,) = bars_of(ratio, label)  # ratio claims on the ratio axis: the exponential of the log bounds
        row = frame.set_index("claim").loc["flat"]
        assert np.allclose([flat[0][0], flat[1][0]], np.exp([row[lo], row[hi]]), rtol=1e-12)
    thick, thin = (next(c for c in pp.containers if c.get_label() == lab).lines[2][0].get_linewidth()[0]
                   for lab in ("95% interval", "simultaneous 95% interval"))
    assert thick > 2 * thin  # thick inner bar, thin outer bar
    for inner, outer in zip(bars_of(pp, "95% interval"), bars_of(pp, "simultaneous 95% interval")):
        assert outer[0][0] < inner[0][0] and inner[1][0] < outer[1][0]  # the simultaneous interval is wider
    # the colour is the family-wise status; where it differs, a square and both statuses in the label
    labels = [t.get_text() for t in pp.get_yticklabels()]
    assert labels == ["close\nreproduced (n = 5)", "gain\ninconclusive; registered: reproduced (n = 3)",
                      "one\ninconclusive (n = 1)"]
    gain = next(c for c in pp.containers if c.get_label() == "95% interval" and c.lines[0].get_marker() == "s")
    assert gain.lines[0].get_color() == plots.STATUS_COLORS["inconclusive"]
    assert np.allclose(gain.lines[0].get_xdata(), [frame.set_index("claim").loc["gain", "diff"]])
    texts = legend_texts(pp)
    assert "thin: simultaneous 95% over the family (Bonferroni, m = 4)" in texts
    assert "mean paired difference, 95% interval (thick)" in texts
    assert "colour: family-wise status (Holm)" in texts and plots.DIFFERS_LABEL in texts


def test_claims_figure_ratio_ticks_do_not_crowd_a_wide_axis():
    wide = stats.verdicts_frame({
        "small": stats.decide("flatness_ssam_vs_sgd", [1.0, 1.1, 0.9], [20.0, 19.0, 21.0]),
        "large": stats.decide("flatness_ssam_vs_sgd", [20.0, 21.0, 19.0], [1.0, 1.1, 0.9]),
    })
    ax = plots.claims_figure(wide).axes[0]
    low, high = ax.get_xlim()
    ticks = np.log(ax.get_xticks())
    assert 0.0 in ticks and len(ticks) >= 3
    assert np.min(np.diff(ticks)) >= (np.log(high) - np.log(low)) / 9 - 1e-12


def test_claims_figure_without_a_family_draws_one_interval_and_no_family_legend():
    fig = plots.claims_figure(claims())
    pp = fig.axes[0]
    assert not bars_of(pp, "simultaneous 95% interval") and len(bars_of(pp, "95% interval")) == 1
    assert not any("simultaneous" in t or "family" in t for t in legend_texts(pp))
    mixed = plots.claims_figure(pd.concat([family_claims(), claims()], ignore_index=True))  # some rows read alone
    assert "colour: family-wise status (Holm); registered status of a claim read alone" in legend_texts(mixed.axes[0])


def test_detectable_difference_figure_lines_equal_the_power_functions():
    sds = {"pilot": 0.59, "study": 1.15}
    fig = plots.detectable_difference_figure(sds, margin=0.5, seeds=5)
    ax = fig.axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) > 2]
    assert len(curves) == 2
    for line, sd in zip(curves, sds.values()):
        n = line.get_xdata()
        assert n[0] == 2 and np.all(np.diff(n) == 1)
        expected = [stats.detectable_difference(int(k), sd) for k in n]
        assert np.allclose(line.get_ydata(), expected, rtol=1e-12)
        assert np.all(np.diff(line.get_ydata()) < 0)  # more seeds detect smaller differences
    needed = {name: stats.seeds_for_power(0.5, sd) for name, sd in sds.items()}
    assert needed["pilot"] < needed["study"]
    texts = figure_legend(fig)
    assert texts[:2] == [f"pilot: paired SD 0.59 pp, {needed['pilot']} seeds for 80% power",
                         f"study: paired SD 1.15 pp, {needed['study']} seeds for 80% power"]
    assert "the study's seeds (5)" in texts
    marks = [line for line in ax.lines if len(line.get_xdata()) == 1]
    for mark, name in zip(marks, sds):  # the point where each line crosses the margin: seeds_for_power
        assert mark.get_xdata()[0] == needed[name] and mark.get_ydata()[0] <= 0.5
    straight = [line for line in ax.lines if len(line.get_xdata()) == 2]
    margin = [line for line in straight if np.allclose(line.get_ydata(), [0.5, 0.5])]
    study = [line for line in straight if np.allclose(line.get_xdata(), [5, 5])]
    assert len(margin) == 1 and len(study) == 1
    assert ax.get_xlabel() == "seeds (paired runs per comparison)" and "(pp" in ax.get_ylabel()
    assert max(curves[0].get_xdata()) >= needed["study"]


def test_detectable_difference_figure_rejects_bad_input():
    with pytest.raises(ValueError, match="sds must name"):
        plots.detectable_difference_figure({}, margin=0.5, seeds=5)
    with pytest.raises(ValueError, match=r"sds\['pilot'\] must be a positive"):
        plots.detectable_difference_figure({"pilot": float("nan")}, margin=0.5, seeds=5)
    with pytest.raises(ValueError, match="margin must be a positive"):
        plots.detectable_difference_figure({"pilot": 1.0}, margin=0.0, seeds=5)
    with pytest.raises(ValueError, match="seeds must be an integer >= 2"):
        plots.detectable_difference_figure({"pilot": 1.0}, margin=0.5, seeds=1)
    with pytest.raises(ValueError, match="max_seeds must be an integer above seeds=5"):
        plots.detectable_difference_figure({"pilot": 1.0}, margin=0.5, seeds=5, max_seeds=5)


def test_pareto_labels_cost_in_sgd_steps():
    table = pd.DataFrame({"label": ["SGD", "SAM"], "cost": [1.0, 2.0], "mean": [90.0, 91.0], "low": [89.5, np.nan],
                          "high": [90.5, np.nan]})
    ax = plots.pareto(table).axes[0]
    assert ax.get_xlabel() == "measured cost per training step (SGD steps)" and ax.get_ylabel() == "test accuracy (%)"
    assert sorted(legend_texts(ax)) == ["SAM (one seed: no interval)", "SGD (mean, 95% interval over seeds)"]
    with pytest.raises(ValueError, match="lacks the columns \\['cost'\\]"):
        plots.pareto(table.drop(columns="cost"))


def test_pareto_draws_cost_intervals_the_front_and_the_budget():
    table = pd.DataFrame({"label": ["SGD", "SAM", "SSAM"], "cost": [1.0, 2.0, 1.8], "mean": [90.0, 91.0, 90.5],
                          "low": [89.5, 90.5, 90.0], "high": [90.5, 91.5, 91.0], "cost_low": [0.9, 1.9, 1.7],
                          "cost_high": [1.1, 2.1, 1.9]})
    ax = plots.pareto(table, budget=1.25, front=True).axes[0]
    assert "1.25 SGD steps" in legend_texts(ax) and "Pareto front of the means" in legend_texts(ax)
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front of the means")
    assert list(front.get_xdata()) == [1.0, 1.8, 2.0] and list(front.get_ydata()) == [90.0, 90.5, 91.0]
    x_bars = [c for c in ax.containers if c.has_xerr and not c.has_yerr]
    assert len(x_bars) == 3
    segments = np.concatenate([c.lines[2][0].get_segments() for c in x_bars])
    assert sorted(float(s[0][0]) for s in segments) == pytest.approx([0.9, 1.7, 1.9])


# --- every figure of the notebooks comes from sparsam.book.plots ------------------------------------------------

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DRAWING = {"plot", "scatter", "bar", "barh", "hist", "imshow", "contour", "contourf", "errorbar", "fill_between",
           "axhline", "axvline", "axhspan", "axvspan", "set", "set_title", "set_xlabel", "set_ylabel", "set_xticks",
           "set_yticks", "set_xscale", "set_yscale", "set_xlim", "set_ylim", "legend", "colorbar", "add_subplot",
           "add_gridspec", "subplots", "figure", "text", "annotate", "grid", "loglog", "semilogx", "semilogy",
           "invert_yaxis", "tight_layout", "suptitle", "set_aspect", "inset_axes", "twinx", "axis", "pcolormesh"}
PYPLOT_ALLOWED = {"close", "show"}  # closing a glued figure or showing one drawn by sparsam.book.plots


def _code(source: str) -> ast.Module:
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))


def drawing_calls(source: str) -> list[str]:
    """What a cell's code draws by itself: matplotlib imports besides pyplot, pyplot calls besides close and
    show, calls of Axes/Figure/pandas plotting methods and uses of ``.axes``."""
    found = []
    for node in ast.walk(_code(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("matplotlib"):
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("matplotlib") and
                      a.name != "matplotlib.pyplot"]
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "plt" and node.attr not in PYPLOT_ALLOWED:
                found.append(f"plt.{node.attr}")
            elif node.attr == "axes":
                found.append(".axes")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DRAWING:
            owner = node.func.value
            if node.func.attr == "text" and not (node.args or node.keywords):
                continue  # a verdict's text(), not Axes.text(x, y, s)
            if not (isinstance(owner, ast.Name) and owner.id == "plots"):
                found.append(f".{node.func.attr}(")
    return found


def definitions(source: str) -> list[str]:
    """Functions and classes a cell defines, and lambdas it binds to a name (a lambda argument is fine)."""
    return [getattr(node, "name", "lambda") for node in ast.walk(_code(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            or isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Lambda)]


def test_the_notebook_checks_catch_drawing_and_definitions():
    assert set(drawing_calls("fig, ax = plt.subplots()\nax.plot([1], [2])")) == {"plt.subplots", ".subplots(", ".plot("}
    assert drawing_calls("frame.plot(marker='o')") == [".plot("]
    assert drawing_calls("ax.text(0, 1, 'a')") == [".text("] and drawing_calls("label = verdict.text()") == []
    assert set(drawing_calls("fig.axes[0].set_title('x')")) == {".set_title(", ".axes"}
    assert drawing_calls("from matplotlib.colors import LogNorm") == ["from matplotlib.colors import ..."]
    assert drawing_calls("%matplotlib inline\nimport matplotlib.pyplot as plt\nfig = plots.pareto(t)\n"
                         "plt.close(fig)\nplt.show()") == []
    assert definitions("def f(x):\n    return x") == ["f"] and definitions("g = lambda x: x") == ["lambda"]
    assert definitions("frame.assign(label=lambda f: f['x'])") == []


def test_notebooks_draw_only_through_sparsam_book_plots_and_define_nothing():
    assert len(NOTEBOOKS) == 9
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            assert not drawing_calls(source), f"{path.name} draws by itself {drawing_calls(source)}:\n{source[:300]}"
            assert not definitions(source), f"{path.name} defines {definitions(source)}:\n{source[:300]}"


def test_every_figure_function_is_called_from_a_notebook():
    called = set()
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                called |= {node.func.attr for node in ast.walk(_code("".join(cell["source"])))
                           if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                           and isinstance(node.func.value, ast.Name) and node.func.value.id == "plots"}
    figures = {name for name, value in vars(plots).items() if callable(value) and not name.startswith("_")
               and getattr(value, "__module__", "") == plots.__name__ and name != "interval_errorbar"}
    assert figures <= called, f"never called from a notebook: {sorted(figures - called)}"


# --- the figure functions ---------------------------------------------------------------------------------------

def series(ax) -> list[str]:
    """Labels of the lines drawn on ``ax`` that carry one (matplotlib gives unlabelled ones "_child...")."""
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_convergence_rates_one_panel_per_run_with_interval_bands_and_the_bound():
    rng = np.random.default_rng(0)
    steps = 300
    grad_sq = {"SGD": rng.uniform(0.5, 1.5, (3, steps)) / np.sqrt(np.arange(1, steps + 1)),
               "SAM": rng.uniform(0.5, 1.5, (3, steps)), "one seed": rng.uniform(0.5, 1.5, (1, steps))}
    fig = plots.convergence_rates(grad_sq, {"SGD": "converging", "SAM": "not converging"}, bound_scale=2.0,
                                  window_start=30, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and [ax.get_title(loc="left") for ax in visible] == [
        "SGD\nconverging", "SAM\nnot converging", "one seed\n"]
    for ax in visible:
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert len(series(ax)) == 3  # per iterate, running mean, bound shape
    assert len(visible[0].collections) == 1 and len(visible[2].collections) == 0  # the band: none for one seed
    band = visible[0].collections[0].get_paths()[0].vertices[:, 1]
    running = np.cumsum(grad_sq["SGD"], axis=1) / np.arange(1, steps + 1)
    last = stats.mean_interval(running[:, -1])
    assert band.min() <= last[1] and band.max() >= last[2]
    bound = next(line for line in visible[1].get_lines() if "bound" in line.get_label())
    t = bound.get_xdata()
    assert t[0] == 30 and np.allclose(bound.get_ydata(), 2.0 * np.log(t) / np.sqrt(t))
    legend = figure_legend(fig)
    assert "running mean $R_T$ (mean, 95% interval over seeds)" in legend and "window of the rule" in legend
    assert "iteration" in visible[-1].get_xlabel() and "gradient" in visible[0].get_ylabel()
    with pytest.raises(ValueError, match="same number of steps"):
        plots.convergence_rates({"a": np.ones((2, 5)), "b": np.ones((2, 6))}, {}, bound_scale=1, window_start=2)


def test_layer_densities_one_panel_per_pattern_without_a_legend():
    fig = plots.layer_densities({"unstructured": [0.4, 0.6, 0.5], "layer": [1.0, 0.0, 1.0]},
                                {"unstructured": 0.5, "layer": 0.66}, ["conv1", "conv2", "fc"], "title")
    assert len(fig.axes) == 2 and not fig.legends and not any(ax.get_legend() for ax in fig.axes)
    assert [len(ax.patches) for ax in fig.axes] == [3, 3]
    assert fig.axes[1].patches[1].get_height() == 0.0
    assert fig.axes[0].get_title(loc="left") == "unstructured: overall density 0.500 (dashed line)"
    assert "fraction perturbed" in fig.axes[0].get_ylabel() and "weight" in fig.axes[1].get_xlabel()
    with pytest.raises(ValueError, match="has 2 values for 3 layer names"):
        plots.layer_densities({"a": [1, 2]}, {"a": 1}, ["x", "y", "z"], "t")


def test_mask_heatmaps_and_nm_defect():
    scores = np.arange(32, dtype=float).reshape(8, 4)
    mask = scores >= 16
    fig = plots.mask_heatmaps(scores, {"top half": mask, "none": np.zeros_like(mask)}, "conv")
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 3 and maps[1].get_title(loc="left") == "top half: 0.50 of this layer perturbed (black)"
    assert maps[-1].get_xlabel().startswith("input channel") and all(ax.get_ylabel() == "output channel" for ax in maps)
    with pytest.raises(ValueError, match="has shape"):
        plots.mask_heatmaps(scores, {"bad": mask[:4]}, "conv")
    defect = pd.DataFrame({"chosen_mass": [1.0, 2.0], "intended_mass": [2.0, 2.0], "total_mass": [3.0, 4.0]},
                          index=["a", "b"])
    fig = plots.nm_defect(scores, mask, ~mask, "conv", defect, 2, 4)
    bars = fig.axes[-1]
    assert [p.get_height() for p in bars.patches] == [0.5, 1.0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["a", "b"]
    assert np.allclose(bars.get_lines()[0].get_ydata(), [0.75, 1.0])  # n/m of the total over the intended
    category = fig.axes[2].images[0].get_array()
    assert int((category == 2).sum()) == int((~mask).sum())  # every official entry outside the intended one is red
    assert figure_legend(fig) == ["random 2:4 mask (expected)", "intended mask", "official mask"]


def test_mask_turnover_and_dynamic_mask():
    updates = pd.DataFrame({"step": [2, 4], "kept_previous": [np.nan, 0.8], "kept_first": [1.0, 0.8],
                            "dropped": [np.nan, 0.2]})
    fig = plots.mask_turnover(updates, np.array([[0.5, 0.4], [0.6, 0.3]]), ["a", "b"])
    assert series(fig.axes[0]) == ["kept from the previous mask", "kept from the first mask"]
    assert fig.axes[0].get_ylabel() == "share of perturbed entries" and len(fig.axes[1].images) == 1
    assert "density of the layer (fraction perturbed)" in [ax.get_ylabel() for ax in fig.axes]
    fig = plots.dynamic_mask(np.full(5, 0.5), 0.5, pd.Series([0.3, 0.2, 0.1, 0.05, 0.0]), updates,
                             np.full((5, 2), 0.5), ["a", "b"])
    assert len(figure_legend(fig)) == 4 and len(fig.axes[2].images) == 1
    assert fig.axes[0].get_ylabel() == "overall density (fraction perturbed)"


def test_training_curves_bands_over_seeds_and_lines_for_one_seed():
    rows = [{"run_id": f"{m}{k}", "method": m, "epoch": e, "train_loss": 2.0 - e / 10 + k / 10, "test_acc": 50 + e + k}
            for m, seeds in (("SAM", 3), ("SGD", 1)) for k in range(seeds) for e in range(1, 4)]
    fig = plots.training_curves(pd.DataFrame(rows))
    loss, acc = fig.axes[:2]
    assert series(loss) == series(acc) == ["SAM", "SGD"]
    assert len(loss.collections) == len(acc.collections) == 1  # SAM's band; SGD has one seed
    assert np.allclose(loss.get_lines()[0].get_ydata(), [2.0, 1.9, 1.8])  # the mean over SAM's seeds
    assert loss.get_ylabel() == "training loss (cross-entropy, nats)" and acc.get_ylabel() == "test accuracy (%)"
    assert fig.legends[0].get_title().get_text() == (
        "mean, 95% interval over seeds (band); a line without a band: one seed: no interval")
    fig = plots.training_curves(pd.DataFrame([r for r in rows if r["method"] == "SGD"]))
    assert fig.legends[0].get_title().get_text() == "one seed: no interval" and not fig.axes[0].collections
    assert fig._suptitle is None  # no title unless given
    fig = plots.training_curves(pd.DataFrame(rows), title="CPU study: CIFAR-10, 200 epochs")
    assert fig._suptitle.get_text() == "CPU study: CIFAR-10, 200 epochs" and len(fig.axes) == 2


def test_curves_grid_one_row_per_candidate_one_column_per_metric():
    rows = [{"run_id": f"{c}{m}{k}", "candidate": c, "method": m, "epoch": e, "test_acc": 40 + e + k,
             "train_acc": 20 + 10 * e + (k if m == "SGD" else 0)}
            for c in ("A", "B") for m, seeds in (("SGD", 3), ("SAM", 3)) for k in range(seeds) for e in (1, 2, 3)
            if not (c == "B" and m == "SAM")]
    fig = plots.curves_grid(pd.DataFrame(rows), row_titles={"A": "width 8"}, references={"train_acc": (60.0, "60%")})
    axes = fig.axes
    assert len(axes) == 4 and [ax.get_title() for ax in axes] == ["width 8", "width 8", "candidate B", "candidate B"]
    assert series(axes[0]) == ["SGD", "SAM"] and series(axes[2]) == ["SGD"]  # B has no SAM runs: no line
    assert np.allclose(axes[1].get_lines()[0].get_ydata(), [31.0, 41.0, 51.0])  # SGD's mean over seeds 0, 1, 2
    assert len(axes[1].collections) == 2  # a band per method with seeds
    assert [line.get_ydata()[0] for line in axes[3].get_lines() if line.get_linestyle() == "--"] == [60.0]
    assert axes[0].get_ylabel() == "test accuracy (%, clean labels)" and axes[2].get_xlabel() == "epoch"
    sam = axes[0].get_lines()[1].get_color()
    assert axes[1].get_lines()[1].get_color() == sam  # one colour per method in every panel
    assert "60%" in figure_legend(fig) and fig.legends[0].get_title().get_text() == "mean, 95% interval over seeds (band)"
    with pytest.raises(ValueError, match="curves has no rows"):
        plots.curves_grid(pd.DataFrame(columns=["candidate", "method", "epoch", "test_acc"]))


def test_the_cost_figures_of_notebook_4():
    curves = pd.DataFrame({"mask": ["layer", "layer", "filter", "filter"], "sparsity": [0.5, 0.9, 0.5, 0.9],
                           "mean": [1.8, 1.4, 1.7, 1.3], "low": [1.7, 1.3, np.nan, np.nan],
                           "high": [1.9, 1.5, np.nan, np.nan]})
    fig = plots.flops_vs_sparsity(curves, 2.0, "t")
    ax = fig.axes[0]
    assert len(ax.containers) == 1 and [line.get_ydata()[0] for line in ax.get_lines() if
                                        line.get_linestyle() in ("--", ":")] == [2.0, 1.0]
    assert "sparse ascent, layer (mean, 95% interval over seeds)" in figure_legend(fig)
    assert "sparse ascent, filter (one seed: no interval)" in figure_legend(fig)
    summary = pd.DataFrame({"mean": [1.0, 2.1], "low": [0.9, 2.0], "high": [1.1, 2.2]}, index=["SGD", "SAM"])
    fig = plots.step_times(summary, "t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["SGD", "SAM"] and ax.containers[0].has_xerr
    assert "SAM (mean)" in figure_legend(fig) and ax.get_xlabel().startswith("wall time per step")
    times = pd.DataFrame({"batched": [0.1, 0.2], "limit: one batched gradient": [0.05, 0.06]}, index=[8, 16])
    fig = plots.fisher_times(times, "t")
    assert [line.get_linestyle() for line in fig.axes[0].get_lines()] == ["-", ":"]
    assert figure_legend(fig)[0] == "batched (one measurement: no interval)"
    rows = pd.DataFrame({"config": ["a fisher", "b cost-aware"], "ideal_seconds_ratio": [1.2, 1.1],
                         "ratio_to_sgd": [1.3, 1.15]})
    fig = plots.ideal_vs_measured(rows, "t")
    assert len(fig.axes[0].collections) == 4  # three rules (one empty) and the 10% band
    assert "measured = ideal" in figure_legend(fig)


def test_the_figures_of_notebook_5():
    summary = pd.DataFrame({"method": ["SGD", "SAM"], "mean": [40.0, 42.0], "low": [39.0, np.nan],
                            "high": [41.0, np.nan]})
    fig = plots.accuracy_by_method(summary, 10.0, "t")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["SGD", "SAM"]
    assert "chance (10 %)" in figure_legend(fig) and "top-1 accuracy (mean, 95% interval over seeds)" in \
        figure_legend(fig)
    fig = plots.cost_by_method(pd.Series([1.0, 2.0], index=["SGD", "SAM"]), summary, 32)
    flops, time = fig.axes
    assert [p.get_height() for p in flops.patches] == [1.0, 2.0] and "batch of 32 images" in flops.get_ylabel()
    assert time.get_ylabel() == "seconds per training step"


def test_the_figures_of_notebook_6():
    diff = {"conv.weight": np.array([[3.0, 0.0], [1.0, 0.0]]), "bn.weight": np.array([1.0, 1.0])}
    fig = plots.gradient_difference(diff, [0.25], [0.75], norm_layers=["bn"])
    share, hist, layer = fig.axes
    top = [line for line in share.get_lines() if line.get_label() == "$g_{SAM} - g$"][0]
    assert top.get_ydata()[0] == pytest.approx(9 / 12)  # the largest of the 6 entries holds 9 of 12
    assert [p.get_height() for p in layer.patches] == [1.0, 1.0]
    assert [t.get_text() for t in layer.get_xticklabels()] == ["conv", "bn"]
    assert layer.patches[1].get_facecolor() != layer.patches[0].get_facecolor()  # BatchNorm in its own colour
    fig = plots.loss_lines([-1, 0, 1], {"sgd": [2.0, 1.0, 2.0], "ssam": [1.5, 1.0, 1.5]})
    assert series(fig.axes[0]) == ["SGD", "SSAM-F"] and fig.axes[0].get_yscale() == "log"
    grid = np.linspace(-1, 1, 5)
    surface = 1 + np.add.outer(grid ** 2, grid ** 2)
    fig = plots.loss_surfaces(grid, {"sgd": surface, "sam": 2 * surface})
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["SGD (red cross: trained weights)", "SAM (red cross: trained weights)"]
    assert "training loss" in fig.axes[-1].get_ylabel()  # the shared colour bar
    curv = pd.DataFrame({"method": ["SGD", "SGD", "SSAM-F", "SSAM-F"], "seed": [0, 1, 0, 1],
                         "eigenvalue": [10.0, 12.0, 5.0, 6.0], "trace": [100.0, 110.0, 50.0, 60.0],
                         "trace_stderr": [1.0] * 4, "eigenvalue_history": [[1.0, 9.0, 10.0]] * 4})
    fig = plots.curvature_figure(curv, ["sgd", "ssam"])
    eig, trace, power = fig.axes
    assert len(eig.containers) == len(trace.containers) == 1 and "over seeds" in eig.get_title()
    assert series(power) == ["SGD", "SSAM-F"] and list(power.get_lines()[0].get_xdata()) == [1, 2, 3]


def test_message_figure_says_why_there_is_nothing():
    fig = plots.message_figure("nothing yet")
    assert [t.get_text() for t in fig.axes[0].texts] == ["nothing yet"] and not fig.axes[0].axison
