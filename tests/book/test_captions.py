"""The line under each figure (sparsam.book.captions): what it says of the records drawn, and that every figure of
chapters 3 to 8 has one."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from sparsam.book import captions, registry  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((REPO / "notebooks").glob("0[3-9]_*.ipynb"))


def frame(**changes) -> pd.DataFrame:
    """Six records, SGD and SAM with seeds 0 to 2, on the CPU study's scale, made at two commits."""
    rows = pd.DataFrame({"configuration": ["sgd"] * 3 + ["sam"] * 3, "seed": [0, 1, 2] * 2,
                         "dataset": "cifar10", "n_train": 2500, "n_test": 1000, "model": "resnet18", "width": 16,
                         "epochs": 200, "device": "cpu", "device_name": None,
                         "commit": ["17f5720"] * 5 + ["a764b6f"], "stale": False})
    return rows.assign(**changes)


SCALE = "CIFAR-10 (2,500 train / 1,000 test images), resnet18 (width 16), 200 epochs, 3 seeds, CPU"


def test_the_line_names_the_records_configurations_seeds_scale_and_commits():
    assert captions.figure_source(frame()) == (
        f"Drawn from 6 records: sgd, sam (seeds 0–2); {SCALE}; commits 17f5720, a764b6f; none stale.")
    one = frame().iloc[[3]]
    assert captions.figure_source(one) == ("Drawn from 1 record: sam (seed 0); CIFAR-10 (2,500 train / 1,000 test "
                                           "images), resnet18 (width 16), 200 epochs, 1 seed, CPU; commit 17f5720; "
                                           "none stale.")
    assert captions.figure_source(frame().iloc[:0]) == "Drawn from no records."


def test_the_line_names_the_stale_records():
    stale = captions.figure_source(frame(stale=[False, False, False, False, True, False]))
    assert stale.endswith("; commits 17f5720, a764b6f; 1 of them stale: sam seed 1.")
    two = captions.figure_source(frame(stale=[True, False, True, False, False, False]))
    assert two.endswith("; 2 of them stale: sgd seeds 0, 2.")
    unknown = captions.figure_source(frame(stale=[None, False, False, False, False, False]))  # not known: stale
    assert unknown.endswith("; 1 of them stale: sgd seed 0.")


def test_the_line_reads_only_the_columns_a_frame_has():
    bare = pd.DataFrame({"seed": [0, 1, 3], "commit": ["17f5720", "17f5720", ""]})
    assert captions.figure_source(bare) == "Drawn from 3 records: seeds 0–1, 3; commit 17f5720."
    by_method = pd.DataFrame({"method": ["SGD", "SAM"], "seed": [4, 4]})
    assert captions.figure_source(by_method) == "Drawn from 2 records: SGD, SAM (seed 4)."
    from_config = pd.DataFrame({"optimizer": ["ssam-f", "sgd"], "sparsity": [0.5, 0.0], "seed": [0, 0],
                                "configuration": [math.nan, "sgd"]})  # a pilot's records beside a study's
    assert captions.figure_source(from_config) == "Drawn from 2 records: SSAM-F s=0.5, sgd (seed 0)."


def test_seeds_are_written_as_ranges():
    assert captions.seeds_text([3, 0, 1, 2, 2, 7]) == "seeds 0–3, 7"
    assert captions.seeds_text([5]) == "seed 5" and captions.seeds_text([1, 3]) == "seeds 1, 3"


def test_the_claims_line_counts_comparisons_and_names_those_on_stale_records():
    claims = pd.DataFrame({"claim": ["a vs b", "c vs d", "e vs f"],
                           "commits": ["17f5720, a764b6f", "measured by the notebook", "no runs"],
                           "stale": [False, True, False]})
    assert captions.claims_source(claims) == ("3 comparisons; records at commits 17f5720, a764b6f; 1 of them on stale "
                                              "records: c vs d.")
    measured = claims.iloc[1:].assign(stale=False)
    assert captions.claims_source(measured) == "2 comparisons; no run records behind them; none stale."
    assert captions.claims_source(claims.iloc[:0]) == "No comparisons drawn."


def test_a_measured_figure_names_the_running_code():
    assert captions.measured_source("ResNet-18 width 8, cpu", ("0123456789abcdef", False)) == (
        "Measured as this page ran (ResNet-18 width 8, cpu); commit 0123456; no records.")
    assert captions.measured_source("x", ("0123456789abcdef", True)) == (
        "Measured as this page ran (x); commit 0123456 (dirty tree); no records.")
    assert captions.measured_source("x", (None, None)) == "Measured as this page ran (x); no commit known; no records."


def test_a_figure_of_a_measurement_file_names_it_and_its_commit():
    assert captions.file_source("results/efficiency_cpu.json", "a CPU, 1 thread(s)", "0123456789abcdef") == (
        "From results/efficiency_cpu.json (a CPU, 1 thread(s)); measured at commit 0123456; no run records.")
    assert captions.file_source("f.json", "x", None) == "From f.json (x); no commit recorded; no run records."


def test_glue_figure_glues_the_figure_and_its_line_and_closes_it():
    glued = {}
    figure = plt.figure()
    captions.glue_figure("fig_x", figure, "Drawn from no records.", glued.__setitem__)
    assert glued == {"fig_x": figure, "fig_x_source": "Drawn from no records."}
    assert not plt.fignum_exists(figure.number)


def test_glue_figure_glues_with_myst_nb_without_showing_by_default(monkeypatch):
    import myst_nb

    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.append((name, value, display)))
    figure = plt.figure()
    captions.glue_figure("fig_y", figure, "line")
    assert glued == [("fig_y", figure, False), ("fig_y_source", "line", False)]


def cells(path: Path) -> list[dict]:
    return [{"type": c["cell_type"], "source": "".join(c["source"])} for c in json.loads(path.read_text())["cells"]]


FIGURE = re.compile(r"```\{glue:figure\} (?P<key>\S+)\n(?P<body>.*?)\n```", re.S)


def captioned(source: str) -> dict[str, bool]:
    """Each ``glue:figure`` of a markdown cell and whether its caption ends with its source line."""
    return {m["key"]: m["body"].rstrip().endswith(f"{{glue:text}}`{m['key']}{captions.SUFFIX}`")
            for m in FIGURE.finditer(source)}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == name and isinstance(n.func.value, ast.Name) and n.func.value.id == "captions"]


def uses_captions(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "captions"
               and n.attr.endswith("_source") for n in ast.walk(node))


def figure_lines(path: Path) -> tuple[dict[str, bool], dict[str, bool], list[str]]:
    """A notebook's figures: glue:figure keys -> captioned; keys glued by captions.glue_figure -> whether the
    line passed is computed by a captions.*_source function (directly, or through a name assigned from one); and
    the problems of its code cells (a figure shown or glued without its line)."""
    code = [ast.parse("\n".join(line for line in c["source"].splitlines() if not line.startswith("%")))
            for c in cells(path) if c["type"] == "code"]
    assigned = {t.id: n.value for tree in code for n in ast.walk(tree) if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name)}

    def computed(arg: ast.AST) -> bool:
        return uses_captions(arg) or isinstance(arg, ast.Name) and arg.id in assigned and uses_captions(
            assigned[arg.id])

    markdown = {k: v for c in cells(path) if c["type"] == "markdown" for k, v in captioned(c["source"]).items()}
    glued, problems = {}, []
    for tree, cell in zip(code, [c for c in cells(path) if c["type"] == "code"]):
        for call in calls(tree, "glue_figure"):
            key = call.args[0].value if isinstance(call.args[0], ast.Constant) else "?"
            glued[key] = computed(call.args[2])
        problems += [f"line of captions.show not computed: {ast.unparse(c)}" for c in calls(tree, "show")
                     if not computed(c.args[1])]
        if "plt.show()" in cell["source"] or re.search(r"glue\([^()]*\bfig\b", cell["source"]):
            problems.append(f"a figure shown or glued without its line: {cell['source'][:80]!r}")
    if "claims.publish(" in "".join(c["source"] for c in cells(path)):  # publish glues the chapter's claims figure
        glued[f"fig_claims_{registry.chapter(path.stem).glue}"] = True
    return markdown, glued, problems


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_figure_of_chapters_3_to_9_has_its_source_line(path):
    markdown, glued, problems = figure_lines(path)
    assert markdown and all(markdown.values()), f"figures without their line in the caption: {markdown}"
    assert set(markdown) <= set(glued) and all(glued[k] for k in markdown), glued
    assert problems == []


def test_the_notebook_check_finds_a_figure_without_its_line(tmp_path):
    def notebook(markdown: str, code: str) -> Path:
        path = tmp_path / "03_cifar_accuracy.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": [markdown]},
                                              {"cell_type": "code", "source": [code]}]}))
        return path

    good_md = "```{glue:figure} fig_a\n:name: a\n\nCaption.\n\n{glue:text}`fig_a_source`\n```"
    good = 'captions.glue_figure("fig_a", fig, captions.figure_source(frame))'
    assert figure_lines(notebook(good_md, good)) == ({"fig_a": True}, {"fig_a": True}, [])
    assert figure_lines(notebook(good_md.replace("{glue:text}`fig_a_source`", ""), good))[0] == {"fig_a": False}
    assert figure_lines(notebook(good_md, 'captions.glue_figure("fig_a", fig, "made up")'))[1] == {
        "fig_a": False}
    assert figure_lines(notebook(good_md, 'glue("fig_a", fig, display=False)'))[2] != []
    assert figure_lines(notebook(good_md, "figures.cost.fisher_times(t, 'x')\nplt.show()"))[2] != []
    line = 'measured = captions.measured_source("x")\ncaptions.show(fig, measured)'
    assert figure_lines(notebook(good_md, good + "\n" + line))[2] == []


def test_a_flatness_figures_line_names_its_records_commits_days_and_networks():
    def record(commit, dirty, day):
        return {"provenance": {"git_commit": commit, "git_dirty": dirty}, "measured": f"{day}T01:02:03+00:00"}

    records = [record("b8b9240aa", False, "2026-12-07"), record("b8b9240aa", False, "2026-12-08")]
    assert captions.flatness_source("results/x", records, "2 of 2 checked against their runs: 2 identical") == (
        "From 2 flatness records in results/x/; measured at commit b8b9240 (clean tree) on 2026-12-07 and "
        "2026-12-08; 2 of 2 checked against their runs: 2 identical.")
    assert captions.flatness_source("results/x", [record("1234567ff", True, "2026-12-01")]) == (
        "From 1 flatness record in results/x/; measured at commit 1234567 (dirty tree) on 2026-12-01.")
    assert captions.flatness_source("results/x", []) == "No flatness records in results/x/."
