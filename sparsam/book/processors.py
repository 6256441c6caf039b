"""Which processors a set of records came from, read from their provenance (``provenance.processor``,
:func:`sparsam.experiment.provenance.processor`).

Retraining reproduces a network bit for bit only on the same kind of processor: torch picks its CPU kernels by
the processor's instruction-set extensions, and they round differently. Records made before the provenance
named the processor carry no such field; :func:`processors_text` says so rather than guess.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping

__all__ = ["NOT_RECORDED", "processor_label", "processor_counts", "processors_text"]

NOT_RECORDED = "no processor recorded (made before records named it)"


def processor_label(provenance: Mapping[str, Any]) -> str:
    """The processor a record's ``provenance`` names, in words: model, torch's CPU capability, MKL and oneDNN;
    :data:`NOT_RECORDED` where it names none."""
    found = provenance.get("processor")
    if not found:
        return NOT_RECORDED
    return (f"{found.get('model', 'unknown model')} ({found.get('capability', 'unknown capability')}; "
            f"MKL {found.get('mkl') or 'none'}, oneDNN {found.get('onednn') or 'none'})")


def processor_counts(provenances: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many of ``provenances`` name each processor (:func:`processor_label`)."""
    return Counter(processor_label(p) for p in provenances)


def processors_text(groups: Mapping[str, Iterable[Mapping[str, Any]]]) -> str:
    """A sentence's words for each named group of provenances, e.g. ``"the run records: 53 of 53 name no processor
    ..."``; groups are joined by semicolons in their order, a group without records says so."""
    parts = []
    for name, provenances in groups.items():
        counts = processor_counts(provenances)
        total = sum(counts.values())
        if not total:
            parts.append(f"{name}: none")
            continue
        parts.append(f"{name}: " + ", ".join(f"{n} of {total} {'with ' + label if label == NOT_RECORDED else 'on ' + label}"
                                             for label, n in counts.most_common()))
    return "; ".join(parts)
