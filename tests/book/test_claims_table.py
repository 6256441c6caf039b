"""claims_table: every status column holds one reading of the statuses, named in its header, and chapter 7's
figure colours the profile's rows by the same reading (issue 32, item 8)."""

from __future__ import annotations

import pandas as pd
import pytest

from figure_checks import close_figures, legend_texts  # noqa: F401  (close_figures: autouse)
from sparsam.book import claims, claims_table, figures, registry, stats

SGD = [70.0, 71.0, 69.5, 70.5, 70.2]
SAM_LIKE_SGD = [s + d for s, d in zip(SGD, [0.3, -0.4, 0.5, -0.2, 0.1])]  # SAM not shown better than SGD
SSAM_LIKE_SAM = [s + d for s, d in zip(SAM_LIKE_SGD, [0.05, -0.05, 0.1, -0.1, 0.0])]
SSAM_LABEL = "SSAM-F (s = 0.5) vs SAM"


def _row(label: str, rule: str, a, b) -> dict:
    return claims.row(label, rule, stats.decide(rule, a, b))


def profile_family(tmp_path) -> pd.DataFrame:
    """Chapter 3's rows saved in the quick profile and read back as the profile's family: SSAM-F matches SAM by
    its own rule (reproduced, per comparison), but SAM is not shown better than SGD in the same chapter, so the
    family-wise reading withholds it (the premise rule)."""
    frame = claims.claims_frame([_row(SSAM_LABEL, "accuracy_ssam_vs_sam", SSAM_LIKE_SAM, SAM_LIKE_SGD),
                                 _row("SAM vs SGD", "accuracy_sam_vs_sgd", SAM_LIKE_SGD, SGD)])
    claims.save_verdicts(frame, "03_cifar_accuracy", "quick", folder=tmp_path)
    return claims.load_verdicts(tmp_path, profile="quick")


def test_the_profile_column_reads_the_family_wise_statuses_that_chapter_7s_figure_colours(tmp_path):
    saved = profile_family(tmp_path)
    row = saved.set_index("claim").loc[SSAM_LABEL]
    assert (row["status"], row["family_status"]) == ("reproduced", stats.PREMISE_NOT_SHOWN)  # the readings differ
    in_profile = claims_table.profile_statuses(saved)
    assert claims_table.READING == stats.FAMILY_WISE
    assert in_profile["acc"] == stats.combine([row["family_status"]]) == "inconclusive"  # not "reproduced"
    # chapter 7's figure colours that row by the same reading, and its legend names it as the table's header does
    fig = figures.claims.claims_figure(saved, claims_table.READING)
    (ax,) = fig.axes
    names = {float(y): label.get_text().split("\n")[0] for y, label in zip(ax.get_yticks(), ax.get_yticklabels())}
    colours = {names[float(c.lines[0].get_ydata()[0])]: c.lines[0].get_color()
               for c in ax.containers if c.get_label() == "95% interval"}
    assert colours[SSAM_LABEL] == figures.style.STATUS_COLORS[row["family_status"]]
    assert f"colour: status ({stats.READING_WORDS[claims_table.READING]})" in legend_texts(ax)
    with pytest.raises(ValueError, match="family_status"):  # rows read in no family have no such reading
        claims_table.profile_statuses(saved.assign(family_status=""))


def test_every_status_column_of_the_claims_table_names_its_one_reading_in_its_header(tmp_path):
    keys = [c.key for c in registry.table_claims()]
    table = claims_table.claims_table([{k: "not yet registered" for k in keys}, {k: "inconclusive" for k in keys}],
                                      claims_table.profile_statuses(profile_family(tmp_path)), profile="quick")
    headed = claims_table.headed(table)
    words = stats.READING_WORDS[claims_table.READING]
    assert list(headed.columns) == ["claim", f"GPU study ({words})", f"CPU study ({words})",
                                    f"quick profile ({words})"]
    assert list(headed.columns[1:]) == [claims_table.column_header(c) for c in table.columns[1:]]
    assert headed.iloc[:, 1:].equals(table.iloc[:, 1:].set_axis(headed.columns[1:], axis=1))  # the same cells
    with pytest.raises(ValueError, match="reading must be one of"):
        stats.reading_header("status", "registered")


def test_the_introduction_reads_the_largest_decisive_scale_first():
    from sparsam.book import scales

    names = [s.name for s in (scales.BOOK_SCALES[i] for i in claims_table.reading_order(scales.BOOK_SCALES))]
    assert names == ["GPU study", "ImageNet study", "CPU study", "label-noise CPU study"]  # largest first
    keys = [c.key for c in registry.table_claims()]
    undecided = {key: "inconclusive" for key in keys}
    decides = {**undecided, keys[0]: "reproduced [added after the runs, 2026-12-03: ...]"}
    sentences = ["gpu.", "imagenet.", "cpu.", "noise.", "profile."]
    # none decides: the given order, largest first, the profile last
    assert claims_table.decisive_first(sentences, [undecided] * 5) == "gpu. imagenet. cpu. noise. profile."
    # the label-noise study decides a claim (its cell carries the words on its rule): it leads
    statuses = [undecided, undecided, undecided, decides, undecided]
    assert claims_table.decisive_first(sentences, statuses) == "noise. gpu. imagenet. cpu. profile."
    # two decide: the larger of them leads
    statuses = [undecided, undecided, {**undecided, keys[1]: "not reproduced"}, decides, decides]
    assert claims_table.decisive_first(sentences, statuses) == "cpu. noise. profile. gpu. imagenet."
    # a scale in another's column counts only its own claims
    imagenet_decides_another = [undecided, decides, undecided, undecided, undecided]
    assert claims_table.decisive_first(sentences, imagenet_decides_another,
                                       [None, (keys[1],), None, None, None]) == "gpu. imagenet. cpu. noise. profile."
    with pytest.raises(ValueError, match="one entry per column"):
        claims_table.decisive_first(sentences, statuses[:4])
