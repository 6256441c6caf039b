"""Every figure of the notebooks comes from sparsam.book.figures: no notebook draws or defines anything by itself,
and every function of the package that returns a figure is called from a notebook."""

from __future__ import annotations

import ast
import importlib
import inspect
import json

from conftest import REPO
from sparsam.book import figures

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DRAWING = {"plot", "scatter", "bar", "barh", "hist", "imshow", "contour", "contourf", "errorbar", "fill_between",
           "axhline", "axvline", "axhspan", "axvspan", "set", "set_title", "set_xlabel", "set_ylabel", "set_xticks",
           "set_yticks", "set_xscale", "set_yscale", "set_xlim", "set_ylim", "legend", "colorbar", "add_subplot",
           "add_gridspec", "subplots", "figure", "text", "annotate", "grid", "loglog", "semilogx", "semilogy",
           "invert_yaxis", "tight_layout", "suptitle", "set_aspect", "inset_axes", "twinx", "axis", "pcolormesh"}
PYPLOT_ALLOWED = {"close", "show"}  # closing a glued figure or showing one drawn by sparsam.book.figures


def _code(source: str) -> ast.Module:
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))


def _figures_module(node: ast.AST) -> str | None:
    """The module of ``figures.<module>`` (a call's owner), else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "figures":
        return node.attr
    return None


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
            if _figures_module(owner) is None:
                found.append(f".{node.func.attr}(")
    return found


def definitions(source: str) -> list[str]:
    """Functions and classes a cell defines, and lambdas it binds to a name (a lambda argument is fine)."""
    return [getattr(node, "name", "lambda") for node in ast.walk(_code(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            or isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Lambda)]


def figure_calls(source: str) -> set[tuple[str, str]]:
    """The (module, function) of every ``figures.<module>.<function>(...)`` call of a cell."""
    return {(module, node.func.attr) for node in ast.walk(_code(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and (module := _figures_module(node.func.value)) is not None}


def figure_functions() -> set[tuple[str, str]]:
    """The (module, function) of every public function of sparsam.book.figures that returns a figure."""
    found = set()
    for module_name in figures.__all__:
        module = importlib.import_module(f"{figures.__name__}.{module_name}")
        found |= {(module_name, name) for name, value in vars(module).items()
                  if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == module.__name__
                  and inspect.signature(value).return_annotation in ("Figure", "'Figure'")}
    return found


def test_the_notebook_checks_catch_drawing_and_definitions():
    assert set(drawing_calls("fig, ax = plt.subplots()\nax.plot([1], [2])")) == {"plt.subplots", ".subplots(", ".plot("}
    assert drawing_calls("frame.plot(marker='o')") == [".plot("]
    assert drawing_calls("ax.text(0, 1, 'a')") == [".text("] and drawing_calls("label = verdict.text()") == []
    assert set(drawing_calls("fig.axes[0].set_title('x')")) == {".set_title(", ".axes"}
    assert drawing_calls("from matplotlib.colors import LogNorm") == ["from matplotlib.colors import ..."]
    assert drawing_calls("%matplotlib inline\nimport matplotlib.pyplot as plt\nfig = figures.cost.pareto(t)\n"
                         "plt.close(fig)\nplt.show()") == []
    assert drawing_calls("figures.cost.pareto(t).set(xlim=(0, 1))") == [".set("]  # drawing on a returned figure
    assert definitions("def f(x):\n    return x") == ["f"] and definitions("g = lambda x: x") == ["lambda"]
    assert definitions("frame.assign(label=lambda f: f['x'])") == []
    assert figure_calls("fig = figures.cost.pareto(t)\nfigures.style.message_figure('x')\nplots.pareto(t)") == {
        ("cost", "pareto"), ("style", "message_figure")}


def test_notebooks_draw_only_through_sparsam_book_figures_and_define_nothing():
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
                called |= figure_calls("".join(cell["source"]))
    functions = figure_functions()
    assert ("style", "message_figure") in functions and ("claims", "claims_figure") in functions
    assert not {name for _, name in functions} & {"interval_errorbar", "band", "curve_band", "panel", "legend_below"}
    assert functions <= called, f"never called from a notebook: {sorted(functions - called)}"
    assert called <= functions, f"called but not a figure of sparsam.book.figures: {sorted(called - functions)}"
