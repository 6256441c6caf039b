"""Provenance of run records: which records no longer describe the optimizer code at HEAD (stale).

Needs the repository's history (CI runs in a full clone); a shallow clone skips these tests.
"""

from __future__ import annotations

import ast
import dis
import json
import subprocess
import types
import warnings

import pytest

from sparsam.book import records
from sparsam.book.equivalences import EQUIVALENCES

from sparsam.experiment import results
from sparsam.experiment.config import TrainConfig
from conftest import REPO


STORE = REPO / "results" / "runs"  # the committed records


def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=check).stdout.strip()


pytestmark = pytest.mark.skipif(git("rev-parse", "--is-shallow-repository") != "false",
                                reason="staleness needs the full git history (this is a shallow clone)")


def record(optimizer: str, commit: str | None, dirty: bool | None = False) -> dict:
    config = TrainConfig(optimizer=optimizer, model="resnet-small", epochs=1)
    provenance = {} if commit is None else {"git_commit": commit, "git_dirty": dirty}
    return {"summary": {"config": config.to_dict(), "run_id": config.run_id(), "provenance": provenance}}


@pytest.fixture(scope="module")
def sam_change() -> tuple[str, str, tuple[str, ...]]:
    """The last commit that changed SAM's code (not only its documentation), its parent, and the
    definitions it changed (searched in the layered package and, before it, in the flat one)."""
    modules = records.optimizer_modules({"optimizer": "sam"})
    flat = tuple("sparsam." + m.rsplit(".", 1)[1] for m in modules)  # sparsam.optim.sam was sparsam.sam
    paths = [m.replace(".", "/") + ".py" for m in modules + flat]
    for last in git("log", "--format=%H", "--", *paths).split():
        layered = git("cat-file", "-t", f"{last}:{paths[0]}", check=False) == "blob"
        changed = records.changed_definitions(f"{last}^", last, modules if layered else flat)
        if changed:
            return last, git("rev-parse", f"{last}^"), tuple(c.rsplit(".", 1)[1] for c in changed)
    raise AssertionError("no commit changed SAM's code")


def test_moving_a_definition_keeps_it_and_changing_it_does_not():
    before = records.definitions('import torch\n"""Doc."""\ndef f(x):\n    """Add one."""\n    return x + 1\nK = 2\n')
    moved = records.definitions('from ..other import torch\ndef f(x):\n    return x + 1\nK = 2\n')
    changed = records.definitions('def f(x):\n    return x + 2\nK = 3\n')
    assert set(before) == {"f", "K"} and before == moved
    assert all(before[name] != changed[name] for name in before)


def test_code_ignores_docstrings_and_comments_but_not_code():
    source = 'def f(x):\n    """Add one."""\n    return x + 1  # one\n'
    documented = 'def f(x):\n    """Add one to x; a longer docstring."""\n    # a comment\n    return x + 1\n'
    changed = 'def f(x):\n    """Add one."""\n    return x + 2\n'
    assert records.code_of(source) == records.code_of(documented)
    assert records.code_of(source) != records.code_of(changed)
    assert records.code_of('"""Module."""\nX = 1\n') == records.code_of("X = 1\n")
    assert records.code_of('X = "text"\n') != records.code_of("X = 1\n")  # strings that are code stay


def test_code_ignores_type_annotations_but_not_what_runs():
    plain = 'def f(x, *a, k=1, **kw):\n    y = x + 1\n    return y\nclass C:\n    n: int = 1\n'
    typed = ('def f(x: int, *a: str, k: "Literal[1]" = 1, **kw: float) -> int:\n    y: int = x + 1\n    z: str\n'
             '    return y\nclass C:\n    n: int = 1\n')
    assert records.code_of(plain) == records.code_of(typed)
    assert records.definitions(plain) == records.definitions(typed)
    assert records.code_of(plain) != records.code_of(plain.replace("x + 1", "x + 2"))
    assert records.code_of(plain) != records.code_of(plain.replace("k=1", "k=2"))  # a default runs
    # class-level annotations fill __annotations__ (dataclass fields): they stay
    assert records.code_of(plain) != records.code_of(plain.replace("n: int = 1", "n = 1"))
    assert records.code_of(plain) != records.code_of(plain.replace("n: int = 1", "n: float = 1"))
    only = records.code_of('def g():\n    v: int\n')
    assert only == records.code_of('def g():\n    pass\n')


def test_records_made_at_head_in_a_clean_tree_are_current():
    for optimizer in ("sgd", "sam", "asam", "ssam-f", "ssam-d"):
        assert records.stale_reason(record(optimizer, git("rev-parse", "HEAD"))) is None, optimizer


def test_a_change_to_the_optimizer_code_makes_its_records_stale(sam_change):
    last, before, changed = sam_change
    reason = records.stale_reason(record("sam", before))
    assert reason is not None and any(name in reason for name in changed) and before[:7] in reason
    assert records.is_stale(record("ssam-f", before))   # SSAM runs SAM's code too
    assert not records.is_stale(record("sam", last))    # nothing of SAM's changed since
    assert not records.is_stale(record("sgd", before))  # SGD runs none of the optimizer files


@pytest.mark.parametrize("commit, dirty, expected", [
    ("f" * 40, False, "unknown commit"),
    (None, False, "unknown commit (not recorded)"),
    ("HEAD", True, "dirty tree"),
    ("HEAD", None, "dirty flag not recorded"),
])
def test_unknown_commits_and_dirty_trees_are_stale(commit, dirty, expected):
    commit = git("rev-parse", "HEAD") if commit == "HEAD" else commit
    reason = records.stale_reason(record("sgd", commit, dirty))
    assert reason is not None and expected in reason


def whole_record(optimizer: str, commit: str) -> dict:
    """A committed SGD record as if made by ``optimizer`` at ``commit`` in a clean tree: a whole record, as the
    store must hold (records are validated when a store is read)."""
    rec = json.loads(sorted((REPO / "results" / "runs").glob("sgd-*.json"))[0].read_text())
    config = TrainConfig.from_dict(rec["summary"]["config"]).replace(optimizer=optimizer)
    rec["summary"].update(config=config.to_dict(), run_id=config.run_id(), weight_decay_used=config.decay)
    rec["summary"]["provenance"].update(git_commit=commit, git_dirty=False)
    return rec


def test_stale_records_lists_the_stale_records_of_a_store(tmp_path, sam_change):
    last, before, _ = sam_change
    stored = {"old": whole_record("sam", before), "new": whole_record("asam", last), "sgd": whole_record("sgd", before)}
    for rec in stored.values():
        (tmp_path / f"{rec['summary']['run_id']}.json").write_text(json.dumps(rec))
    assert records.stale_records(tmp_path) == [stored["old"]["summary"]["run_id"]]


def _unannotated(source: str) -> ast.Module:
    """``source`` parsed, its argument and return annotations removed (a class body's bytecode holds its
    methods' annotations; local annotations leave no bytecode)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
    return tree


def _functions(commit: str, paths: list[str]) -> dict[str, set]:
    """The instructions of every function and class body in ``paths`` at ``commit``, compiled without
    docstrings (``optimize=2``) and annotations, line numbers left out, by qualified name: an independent
    reading of "the code changed" (the library compares syntax trees), blind to where a definition lives."""
    out: dict[str, set] = {}
    for path in paths:
        shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True)
        if shown.returncode != 0:
            continue
        code = compile(_unannotated(shown.stdout), path, "exec", optimize=2)
        todo = [c for c in code.co_consts if isinstance(c, types.CodeType)]
        while todo:
            code = todo.pop()
            out.setdefault(code.co_qualname, set()).add(tuple(
                (i.opname, "<code>" if isinstance(i.argval, types.CodeType) else i.argrepr)
                for i in dis.get_instructions(code)))
            todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return out


def _git_ok(*args: str) -> bool:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True).returncode == 0


def _package_files(commit: str) -> list[str]:
    return [p for p in git("ls-tree", "-r", "--name-only", commit, "--", "sparsam").split() if p.endswith(".py")]


def test_committed_records_list_of_stale_records():
    """Lists the committed records that are stale (shown in the warnings summary), checked against the
    optimizer files' bytecode at the record's commit and at HEAD, an independent reading of the history."""
    expected = []
    for rec in results.load_all(STORE):
        summary = rec["summary"]
        provenance = summary.get("provenance") or {}
        commit, dirty = provenance.get("git_commit"), provenance.get("git_dirty")
        known = bool(commit) and subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"],
                                                cwd=REPO, capture_output=True).returncode == 0
        files = [m.replace(".", "/") + ".py" for m in records.optimizer_modules(summary["config"])]
        if known and files:
            before, now = _functions(commit, _package_files(commit)), _functions("HEAD", files)
            for e in EQUIVALENCES:  # a declared equivalence: the record's version stands for the later one
                path = [e.module.replace(".", "/") + ".py"]
                old, new = _functions(e.before, path), _functions(e.after, path)
                same_before = all(codes <= before.get(name, set()) for name, codes in old.items()
                                  if name.split(".")[0] == e.name)
                for name, codes in new.items():
                    if same_before and name.split(".")[0] == e.name and codes == now.get(name):
                        now[name] = before.get(name, set())
            known_names = {name.split(".")[0] for name in before}  # a name new since the record: not run by it
            changed = any(not codes <= before.get(name, set()) for name, codes in now.items()
                          if name.split(".")[0] in known_names)
        else:
            changed = False
        if not known or dirty is not False or changed:
            expected.append(summary["run_id"])
    stale = records.stale_records(STORE)
    assert stale == sorted(expected)
    frame = records.records_frame(results.load_all(STORE))
    assert sorted(frame.loc[frame["stale"], "run_id"]) == stale
    if stale:
        warnings.warn(f"{len(stale)} of {len(frame)} committed records are stale: "
                      + "; ".join(f"{r} ({records.stale_reason(rec)})" for r, rec in
                                  zip(frame["run_id"], results.load_all(STORE)) if r in stale), stacklevel=1)


def test_declared_equivalences_name_a_real_change_and_the_test_that_proves_it():
    for e in EQUIVALENCES:
        assert _git_ok("merge-base", "--is-ancestor", e.before, e.after), e
        path = (e.module.replace(".", "/") + ".py",)
        versions = [records._definitions_at(c, path).get(e.name) for c in (e.before, e.after)]
        assert versions[0] and versions[1] and versions[0] != versions[1], f"{e.definition}: no change to declare"
        file, test = e.proof.split("::")
        tree = ast.parse((REPO / file).read_text())
        assert test in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, e.proof


def test_a_record_made_before_a_declared_change_is_current_and_stale_without_the_declaration(monkeypatch):
    change = next(e for e in EQUIVALENCES if e.definition == "sparsam.optim.ssam.SSAM")
    made = record("ssam-f", change.before)
    assert records.stale_reason(made) is None or "sparsam.optim.ssam.SSAM" not in records.stale_reason(made)
    monkeypatch.setattr(records, "EQUIVALENCES", ())
    records.changed_definitions.cache_clear()
    try:
        assert "sparsam.optim.ssam.SSAM changed since" in records.stale_reason(made)
    finally:
        records.changed_definitions.cache_clear()


def test_definitions_added_after_a_record_leave_it_current():
    """SAM-ON added norm_only, NormMask, NORM_LAYERS and norm_parameters to the modules SSAM runs (3569179);
    a record made before them is current after them, and the rule still sees a changed definition."""
    before, after = "c577ebda46c53a195388f3f993f75f5a1c22b299", "e8023b07f0fe331318024fc873be032a1a6b0939"
    modules = records.optimizer_modules({"optimizer": "ssam-f", "form": "implicit"})
    assert "sparsam._layers" in modules and "sparsam.masks.strategies" in modules
    assert records.changed_definitions(before, after, modules) == ()
    assert "sparsam.optim.ssam.SSAM" in records.changed_definitions(before, "3569179dd62f7ca626baa8d309193d493ffcc9c8",
                                                                     modules)  # its error message changed there
