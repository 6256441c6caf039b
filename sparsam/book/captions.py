"""Where each figure of the book comes from, in one line under it, computed from what it draws.

:func:`figure_source` reads a records frame (:func:`sparsam.book.records.records_frame`, or a study's frame with
its ``configuration`` column): how many records, their configurations and seeds, the scale
(:func:`sparsam.book.deviations.scale_text`: images, network, epochs, seeds, device), the commits they were made
at and whether any is stale, naming those that are. :func:`claims_source` does the same for a frame of claims
(:func:`sparsam.book.claims.claims_frame`, which keeps the commits and staleness of the records each row rests
on), :func:`measured_source` for a figure of what the page measures as it runs (no records: the commit of the
running code) and :func:`file_source` for one of a committed measurement file. :func:`glue_figure` glues a figure
and its line (``<name>_source``, which the figure's caption shows); :func:`show` shows a figure in place with its
line printed under it.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from ..experiment.provenance import code_commit
from .deviations import scale_text
from .records import method_label

SCALE_COLUMNS = ("dataset", "n_train", "n_test", "model", "width", "epochs", "seed", "device", "device_name")
SUFFIX = "_source"  # the glue name of a figure's line: the figure's own, then this


def seeds_text(seeds: Iterable[Any]) -> str:
    """``"seeds 0–4, 7"``: the distinct seeds, runs of consecutive ones as ranges; ``"seed 3"`` for one."""
    values = sorted({int(s) for s in seeds})
    runs: list[list[int]] = []
    for s in values:
        if runs and s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    parts = [str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs]
    return ("seed " if len(values) == 1 else "seeds ") + ", ".join(parts)


def _configurations(frame: pd.DataFrame) -> list[str]:
    """The configuration of each row: its ``configuration`` or else ``method`` (where the frame has one and the row
    a name there), else the method of its config fields (:func:`sparsam.book.records.method_label`), else ""."""
    names = []
    for _, row in frame.iterrows():
        given = [row[c] for c in ("configuration", "method") if c in frame.columns and isinstance(row[c], str)]
        names.append(given[0] if given else method_label(row) if isinstance(row.get("optimizer"), str) else "")
    return names


def _commits(values: Iterable[Any]) -> list[str]:
    """The distinct commits in ``values`` (each a commit or several, comma-separated, as a claims row keeps them;
    other words, such as "no runs", are no commit), sorted."""
    return sorted({c.strip() for v in values if isinstance(v, str) for c in v.split(",")
                   if re.fullmatch(r"[0-9a-f]{7,40}", c.strip())})


def _commits_text(commits: list[str]) -> str:
    return (f"commit {commits[0]}" if len(commits) == 1 else f"commits {', '.join(commits)}") if commits else \
        "no commit recorded"


def figure_source(frame: pd.DataFrame) -> str:
    """One line on the records a figure draws (``frame``, one row per record; the columns it has are read):
    ``"Drawn from 12 records: SGD, SAM (seeds 0–5); CIFAR-10 (…), resnet18, 10 epochs, 6 seeds, CPU; commit
    17f5720; none stale."``, or with stale records ``"…; 2 of them stale: SAM seeds 3, 5."``; ``"Drawn from no
    records."`` for none."""
    if frame.empty:
        return "Drawn from no records."
    names = _configurations(frame)
    described = ", ".join(n for n in dict.fromkeys(names) if n)
    if "seed" in frame.columns:
        described += f" ({seeds_text(frame['seed'])})" if described else seeds_text(frame["seed"])
    text = f"Drawn from {len(frame)} record{'' if len(frame) == 1 else 's'}" + (f": {described}" if described else "")
    if set(SCALE_COLUMNS) <= set(frame.columns):
        text += f"; {scale_text(frame)}"
    if "commit" in frame.columns:
        text += f"; {_commits_text(_commits(frame['commit']))}"
    if "stale" in frame.columns:
        stale = frame["stale"].fillna(True).astype(bool).to_numpy()
        if not stale.any():
            text += "; none stale"
        else:
            by_name: dict[str, list[Any]] = {}
            for name, seed, old in zip(names, frame["seed"] if "seed" in frame.columns else [None] * len(frame),
                                       stale):
                if old:
                    by_name.setdefault(name or "a record", []).append(seed)
            named = [name if None in seeds else f"{name} {seeds_text(seeds)}" for name, seeds in by_name.items()]
            text += f"; {int(stale.sum())} of them stale: {', '.join(named)}"
    return text + "."


def claims_source(frame: pd.DataFrame) -> str:
    """One line on the comparisons a claims figure draws (a :func:`sparsam.book.claims.claims_frame`, or rows
    that have its ``commits`` and ``stale`` columns): ``"4 comparisons; records at commit 17f5720; none stale."``,
    with the stale ones named by their claim."""
    if frame.empty:
        return "No comparisons drawn."
    text = f"{len(frame)} comparison{'' if len(frame) == 1 else 's'}"
    if "commits" in frame.columns:
        commits = _commits(frame["commits"])
        text += f"; records at {_commits_text(commits)}" if commits else "; no run records behind them"
    if "stale" in frame.columns:
        stale = frame["stale"].fillna(True).astype(bool).to_numpy()
        text += ("; none stale" if not stale.any() else
                 f"; {int(stale.sum())} of them on stale records: "
                 + ", ".join(str(c) for c, old in zip(frame.get("claim", [""] * len(frame)), stale) if old))
    return text + "."


def measured_source(what: str, commit: tuple[str | None, bool | None] | None = None) -> str:
    """One line on a figure of measurements made as the page runs (no records): ``"Measured as this page ran
    (ResNet-18 width 16, cpu); commit 17f5720."``, "(dirty tree)" after a commit with uncommitted changes;
    ``commit``: (commit, dirty), default the running code's (:func:`sparsam.experiment.provenance.code_commit`)."""
    found, dirty = code_commit() if commit is None else commit
    at = f"commit {found[:7]}" + (" (dirty tree)" if dirty else "") if found else "no commit known"
    return f"Measured as this page ran ({what}); {at}; no records."


def file_source(file: str, what: str, commit: str | None) -> str:
    """One line on a figure of a committed measurement file (a benchmark's table, not run records):
    ``"From results/efficiency_cpu.json (a CPU, 1 thread); measured at commit 17f5720; no run records."``."""
    at = f"measured at commit {commit[:7]}" if commit else "no commit recorded"
    return f"From {file} ({what}); {at}; no run records."


def flatness_source(store: str, records: Sequence[Mapping[str, Any]], identity: str = "") -> str:
    """One line on a figure of curvature measured into flatness records (:mod:`sparsam.book.curvature`):
    ``"From 16 flatness records in results/noise_study/flatness/; measured at commit b8b9240 (clean tree) on
    2026-12-07 and 2026-12-08; <identity>."``, where ``identity`` is what
    :func:`sparsam.book.curvature.identity_text` says of their networks (left out if empty)."""
    if not records:
        return f"No flatness records in {store}/."
    commits = sorted({r["provenance"]["git_commit"][:7] + (" (dirty tree)" if r["provenance"]["git_dirty"]
                                                          else " (clean tree)") for r in records})
    days = sorted({str(r["measured"])[:10] for r in records})
    text = (f"From {len(records)} flatness record{'' if len(records) == 1 else 's'} in {store}/; measured at "
            f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits)} on {' and '.join(days)}")
    return text + (f"; {identity}." if identity else ".")


def glue_figure(name: str, figure: Any, source: str, glue: Callable[[str, Any], None] | None = None) -> None:
    """Glue ``figure`` as ``name`` and its line ``source`` as ``name + "_source"`` (the figure's caption shows it
    with ``{glue:text}``), without showing them in the cell, then close the figure. ``glue``: any function of a name
    and a value (default: ``myst_nb.glue`` with ``display=False``)."""
    import matplotlib.pyplot as plt

    if glue is None:
        from myst_nb import glue as myst_glue

        for key, value in ((name, figure), (name + SUFFIX, source)):
            myst_glue(key, value, display=False)
    else:
        glue(name, figure)
        glue(name + SUFFIX, source)
    plt.close(figure)


def show(figure: Any, source: str) -> None:
    """Show ``figure`` where the cell runs, then its line ``source`` under it, and close it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(figure)
    print(source)
    plt.close(figure)
