"""The label-noise study's question, read from its decided comparisons: does a sparse perturbation keep what SAM
buys over SGD?

A configuration keeps SAM's effect when both of its registered readings against SAM are reproduced: it is
non-inferior to SAM at the fixed margin (``accuracy_noise_ssam_vs_sam``) and it keeps at least half of SAM's gain
over SGD (``accuracy_ssam_keeps_half_gain``). It does not keep it when either is "not reproduced"; otherwise the
question is not decided for it (yet, while its seeds are missing; at this scale, once every planned seed is in).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from .deciding import READINGS
from .model import Study

NON_INFERIORITY = "accuracy_noise_ssam_vs_sam"
HALF_GAIN = "accuracy_ssam_keeps_half_gain"
KEEPS, LOSES, UNDECIDED = "keeps SAM's effect", "does not keep it", "not decided"


def effect_table(study: Study, decided: pd.DataFrame,
                 reading: Literal["registered", "family-wise"] = "family-wise") -> pd.DataFrame:
    """One row per configuration the study compares with SAM by both readings: the status of each (in
    ``reading``: the registered per-comparison ones or the family-wise ones), the seeds each pairs, and the answer
    (:data:`KEEPS`, :data:`LOSES` or :data:`UNDECIDED`, with "yet" or "at this scale")."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}, got {reading!r}")
    column = READINGS[reading]
    status = {(c.claim, c.a): (s, n) for c, s, n in zip(study.family, decided[column], decided["n"])}
    names = [c.a for c in study.family if c.claim == NON_INFERIORITY and (HALF_GAIN, c.a) in status]
    if not names:
        raise ValueError(f"the study must compare some configuration with SAM by both {NON_INFERIORITY} and "
                         f"{HALF_GAIN}")
    rows = []
    for name in names:
        (close, n_close), (half, n_half) = status[NON_INFERIORITY, name], status[HALF_GAIN, name]
        pair = (close, half)
        if pair == ("reproduced", "reproduced"):
            answer = KEEPS
        elif "not reproduced" in pair:
            answer = LOSES
        else:
            planned = study.paired_seeds(name, "sam")
            complete = n_close == planned and n_half == min(planned, study.paired_seeds(name, "sgd"))
            answer = f"{UNDECIDED} {'at this scale' if complete else 'yet'}"
        rows.append({"configuration": name, f"non-inferior to SAM ({reading})": close, "seeds": n_close,
                     f"keeps half of SAM's gain ({reading})": half, "answer": answer})
    return pd.DataFrame(rows).set_index("configuration")


def effect_answer(table: pd.DataFrame) -> str:
    """One sentence from :func:`effect_table`: which configurations keep SAM's effect, which do not, which are not
    decided."""
    groups = {label: [name for name, a in table["answer"].items() if a.startswith(label)]
              for label in (KEEPS, LOSES, UNDECIDED)}
    parts = [f"{', '.join(groups[KEEPS])} {'keeps' if len(groups[KEEPS]) == 1 else 'keep'} SAM's effect"
             if groups[KEEPS] else "",
             f"{', '.join(groups[LOSES])} {'does' if len(groups[LOSES]) == 1 else 'do'} not" if groups[LOSES] else "",
             f"{', '.join(groups[UNDECIDED])}: not decided" if groups[UNDECIDED] else ""]
    return "; ".join(p for p in parts if p) + "."
