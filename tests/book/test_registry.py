"""The book's claims registry (book/margins.yaml: book_claims, book_chapters; sparsam.book.registry) and the chapters'
closing block (sparsam.book.claims.publish): a claim is declared once, and adding one is one entry."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO
from sparsam.book import claims, claims_table, layout, registry, scale_reports, scales, stats


def test_the_table_the_studies_and_the_chapters_read_one_declaration():
    table = registry.table_claims()
    assert [c.key for c in table] == ["acc", "sam_sgd", "radius", "patterns", "forms", "imagenet", "convergence",
                                      "flat", "cost", "cost_realised", "cost_aware"]
    assert "fisher_random" in registry.study_claims("cifar") and "fisher_random" not in {c.key for c in table}
    assert registry.study_claims("imagenet") == {"imagenet": registry.study_claims("cifar")["acc"]}
    assert list(registry.chapters()) == ["03_cifar_accuracy", "04_efficiency", "05_imagenet", "06_landscape"]
    declared = stats.margins()
    for claim in registry.claims():  # every rule a claim names is a declared rule
        assert all(rule in declared for rule, _ in claim.rows), claim.key
        assert all(rule in declared for kind in claim.studies for rule, _, _ in claim.comparisons(kind)), claim.key
    for chapter in registry.chapters().values():
        assert all(rule in declared for rule in chapter.premises)
        assert all(entry["rule"] in declared for entry in chapter.compare)


def test_a_row_goes_to_the_claim_of_its_label_prefix_then_of_its_rule_and_an_undeclared_one_is_an_error():
    assert registry.claim_of_row("03_cifar_accuracy", "accuracy_ssam_vs_sam", "radius control: x") == "radius"
    assert registry.claim_of_row("03_cifar_accuracy", "accuracy_ssam_vs_sam", "SSAM-D (s = 0.5) vs SAM") == "acc"
    # the papers' cost claim is of FLOPs in theory; time and FLOPs run are today's kernels' (cost_realised)
    assert registry.claim_of_row("04_efficiency", "cost_flops_ssam_vs_sam", "FLOPs in theory: x") == "cost"
    assert registry.claim_of_row("04_efficiency", "cost_time_ssam_vs_sam", "time: x") == "cost_realised"
    assert registry.claim_of_row("04_efficiency", "cost_flops_realised_vs_sam", "FLOPs realised: x") == "cost_realised"
    assert registry.claim_of_row("06_landscape", "flatness_sam_vs_sgd", "SAM vs SGD: trace") is None  # a premise
    with pytest.raises(ValueError, match="no claim of the table takes"):
        registry.claim_of_row("04_efficiency", "accuracy_sam_vs_sgd", "x")
    with pytest.raises(ValueError, match="chapter must be one of"):
        registry.claim_of_row("02_masks", "accuracy_sam_vs_sgd", "x")


def test_selections_resolve_parameters_merge_in_order_and_name_a_missing_selector():
    p = SimpleNamespace(rho=0.2, num_samples=64, patterns=["layer", "2:4"], implicit_pattern="2:4")
    selectors = {"sam": {"optimizer": "sam", "rho": "$rho"}, "base": {"optimizer": "ssam-f", "pattern": "unstructured"}}
    assert registry.selection("sam", selectors, p) == {"optimizer": "sam", "rho": 0.2}
    assert registry.selection(["base", {"pattern": "{pattern}", "form": "implicit"}], selectors, p,
                              {"pattern": "layer"}) == {"optimizer": "ssam-f", "pattern": "layer", "form": "implicit"}
    with pytest.raises(ValueError, match="selector 'nope' is not declared"):
        registry.selection("nope", selectors, p)
    assert registry.resolve("s = {rho:g}", p, {}) == "s = 0.2" and registry.resolve("$patterns", p, {}) == p.patterns


def test_chapter_3s_rows_are_the_ones_it_declares_one_per_pattern(monkeypatch):
    from sparsam.book import profiles

    p = profiles.parameters("03_cifar_accuracy", "quick", {})
    seen = []
    monkeypatch.setattr(claims, "accuracy", lambda frame, records, label, rule, method, reference, **kw:
                        seen.append((label, rule, method, reference)) or {"claim": label})
    rows = claims.chapter_rows("03_cifar_accuracy", None, [], p)
    assert len(rows) == 5 + len(p.patterns)
    labels = [label for label, *_ in seen]
    assert labels[:4] == ["SSAM-F (s = 0.5) vs SAM", "SSAM-D (s = 0.5) vs SAM", "SAM vs SGD",
                          "radius control: SSAM-F (s = 0.5, ‖ε‖ = ρ) vs SAM"]
    assert labels[4:-1] == [f"TPAMI: SSAM-F {pattern} (s = 0.5) vs SAM" for pattern in p.patterns]
    radius = seen[3]
    assert radius[2] == {"optimizer": "ssam-f", "sparsity": 0.5, "num_samples": p.num_samples,
                         "pattern": "unstructured", "mask_rule": "fisher", "form": "explicit", "normalize": "masked"}
    assert radius[3] == {"optimizer": "sam", "rho": p.rho}
    assert seen[-1][2]["form"] == "implicit" and seen[-1][3]["form"] == "explicit"
    assert seen[-1][2]["pattern"] == seen[-1][3]["pattern"] == p.implicit_pattern
    assert registry.texts("03_cifar_accuracy", p) == {"claim_acc_text_f": "SSAM-F (s = 0.5) vs SAM",
                                                      "claim_acc_text_d": "SSAM-D (s = 0.5) vs SAM",
                                                      "claim_sam_sgd_text": "SAM vs SGD"}


def _row(label: str, rule: str, a, b, stale: bool = False):
    import pandas as pd

    used = pd.DataFrame({"commit": ["abc1234"], "stale": [stale]})
    return claims.row(label, rule, stats.decide(rule, a, b), used=used)


def test_publish_saves_glues_and_combines_the_chapters_claims(tmp_path):
    import pandas as pd

    good, tie = ([2.0, 2.2, 2.1, 2.3], [1.0, 1.1, 1.0, 1.2]), ([1.0, -1.0, 2.0, -0.5], [0.5, 1.5, 0.2, 1.0])
    rows = [_row("SSAM-F (s = 0.5) vs SAM", "accuracy_ssam_vs_sam", *good),
            _row("SSAM-D (s = 0.5) vs SAM", "accuracy_ssam_vs_sam", *tie),
            _row("SAM vs SGD", "accuracy_sam_vs_sgd", *good),
            _row("radius control: SSAM-F (s = 0.5, ‖ε‖ = ρ) vs SAM", "accuracy_ssam_vs_sam", *good),
            _row("TPAMI: SSAM-F layer (s = 0.5) vs SAM", "accuracy_pattern_vs_sam", *good)]
    glued = {}
    used = pd.DataFrame({"commit": ["abc1234", "def5678"], "stale": [False, True]})
    published = claims.publish(rows, "03_cifar_accuracy", "quick", glue=glued.__setitem__, scale="tiny",
                               used=used, texts={"claim_acc_text_f": "SSAM-F (s = 0.5) vs SAM"}, folder=tmp_path)
    statuses = [r["status"] for r in rows]
    assert statuses[:3] == ["reproduced", "inconclusive", "reproduced"]
    assert published.statuses == {"acc": "inconclusive", "sam_sgd": "reproduced", "radius": "reproduced",
                                  "patterns": "reproduced", "forms": "inconclusive"}  # no row: not decided
    assert {k: glued[f"claim_{k}_status"] for k in published.statuses} == published.statuses
    assert glued["claim_acc_evidence"] == ("notebook 3, accuracy-vs-sparsity figure, results and claims tables; "
                                           "records abc1234, def5678 (stale records among them)")
    assert glued["claim_acc_scale"] == "tiny" and glued["claim_acc_text_f"] == rows[0]["text"]
    assert glued["claims_cifar_table"].equals(published.table) and "fig_claims_cifar" in glued
    assert glued["fig_claims_cifar_source"] == ("5 comparisons; records at commit abc1234; none stale. Drawn from 2 "
                                                "records; commits abc1234, def5678; 1 of them stale: a record.")
    saved = json.loads((tmp_path / "03_cifar_accuracy.json").read_text())
    assert saved["chapter"] == "03_cifar_accuracy" and len(saved["rows"]) == len(rows)
    # one reading for every row of a chapter, per comparison: a study's row read in its family (chapter 4's CPU-study
    # rows) counts by its status per comparison like the chapter's own rows, in the statuses and the figure alike
    family = {**_row("CPU study: x vs SAM", "cost_time_ssam_vs_sam", [0.5, 0.52, 0.49, 0.5], [1.0, 1.0, 1.01, 0.99]),
              "family_status": "inconclusive"}
    own = _row("FLOPs realised: layer mask vs SAM", "cost_flops_realised_vs_sam", [1.5, 1.52, 1.49, 1.5],
               [2.0, 2.0, 2.01, 1.99])
    assert family["status"] == own["status"] == "reproduced"
    mixed = claims.publish([own, family], "04_efficiency", "quick", glue=glued.__setitem__, scale="x",
                           folder=tmp_path)
    assert claims.CHAPTER_READING == stats.PER_COMPARISON
    assert mixed.statuses["cost_realised"] == glued["claim_cost_realised_status"] == "reproduced"
    assert list(mixed.table[claims.STATUS_HEADER]) == ["reproduced", "reproduced"]  # the headers name the readings
    assert list(mixed.table[claims.FAMILY_HEADER]) == ["–", "inconclusive"]
    legend = [t.get_text() for t in glued["fig_claims_cost"].legends[0].get_texts()]
    assert "colour: status (per comparison, unadjusted)" in legend


def test_adding_a_claim_is_one_entry(tmp_path, monkeypatch):
    """One entry in book_claims: the claims table has its row, a study its status from the comparison it names,
    and the chapter's saved rows of its rule go to it."""
    import pandas as pd

    root = tmp_path / "book"
    for name in ("_toc.yml", layout.PROFILES_FILE, layout.MARGINS):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    spec = yaml.safe_load((root / layout.MARGINS).read_text())
    spec["book_claims"]["ssam_sgd"] = {"name": "SSAM improves on SGD (CIFAR)", "chapter": "03_cifar_accuracy",
                                       "rows": [["accuracy_ssam_vs_sgd"]],
                                       "studies": {"cifar": [["accuracy_ssam_vs_sgd", "ssam-f-0.5", "sgd"]]}}
    (root / layout.MARGINS).write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    monkeypatch.chdir(root)
    assert registry.table_claims()[-1].key == "ssam_sgd"
    saved = pd.DataFrame([{"chapter": "03_cifar_accuracy", "rule": "accuracy_ssam_vs_sgd", "claim": "SSAM-F vs SGD",
                           "status": "reproduced", "family_status": "reproduced"}])
    in_profile = claims_table.profile_statuses(saved)
    assert in_profile["ssam_sgd"] == "reproduced"
    states = [scale_reports.ScaleState(s, True, False, 0, 0) for s in scales.SCALES]
    table = claims_table.claims_table([scale_reports.scale_statuses(s) for s in states], in_profile, scales=scales.SCALES)
    assert table.iloc[-1]["claim"] == "SSAM improves on SGD (CIFAR)" and table.iloc[-1]["quick profile"] == "reproduced"
    assert scales.SCALES[1].claim_map["ssam_sgd"] == (("accuracy_ssam_vs_sgd", "ssam-f-0.5", "sgd"),)
