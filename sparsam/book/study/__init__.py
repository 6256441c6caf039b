"""The book's studies: each file format parsed once into dataclasses, and what is decided from them.

- :mod:`~sparsam.book.study.model`: the files (a candidates file, a registration, a cost registration) and their
  dataclasses (:class:`Candidates`, :class:`Study`, :class:`CostRegistration`), the only place they are parsed;
- :mod:`~sparsam.book.study.deciding`: a registered study decided from its records, read as one family;
- :mod:`~sparsam.book.study.pilot`: the pilots and the selection and seed rules their files declare;
- :mod:`~sparsam.book.study.fixed_margin`: the label-noise study's fixed-margin rules, as pure functions of its
  pilot (the candidate, its seeds, M1 and M2, SAM-ON's radius, the matched density);
- :mod:`~sparsam.book.study.registering`: a registration written from the pilot by those rules
  (``python -m sparsam register``);
- :mod:`~sparsam.book.study.cost`: the interleaved cost measurement and its decisions;
- :mod:`~sparsam.book.study.flatness_family`: a study's registered curvature family, measured and decided;
- :mod:`~sparsam.book.study.sam_effect`: the label-noise study's question (does a configuration keep SAM's effect?).

The names a chapter reads a registered study with are here too: ``from sparsam.book import study``, then
``study.load_study(...)``, ``study.decide_comparisons(...)``.
"""

from .deciding import (ACCURACY_RULE, ADDED, AUDIT_COLUMNS, COST_RULE, NOT_IN_STUDY, READINGS, TIMES, VALUES, answer,
                       audit_frame, book_statuses, claim_rules, claim_scales, claim_statuses, configuration_table,
                       decide_comparisons, family_text, flatness_provenance,
                       decide_comparisons_interleaved, does_sams_work, paired_sds, pareto_points, premises, progress,
                       progress_text, record_scale, recorded_below, rerun_estimate, runs_dates, runs_text, study_frame)
from .model import (CORRECTIONS, MARGIN_FIELDS, Candidates, Comparison, CostRegistration, FlatnessRegistration,
                    Replacement, Study, added_on, comparison_label, dates_against_git, is_registration,
                    load_candidates, load_cost_registration, load_flatness_registration, load_study, own_margins,
                    pinned_rule, registered_at, registration_commit, runs_before_registration)
from .pilot import pilot_paired_sd, pilot_verdicts

__all__ = ["ACCURACY_RULE", "ADDED", "AUDIT_COLUMNS", "CORRECTIONS", "COST_RULE", "MARGIN_FIELDS", "NOT_IN_STUDY",
           "READINGS", "TIMES", "VALUES", "added_on", "answer", "audit_frame", "book_statuses", "Candidates",
           "claim_rules", "claim_scales", "claim_statuses", "Comparison", "comparison_label", "configuration_table",
           "CostRegistration", "dates_against_git", "decide_comparisons", "decide_comparisons_interleaved",
           "does_sams_work", "family_text", "flatness_provenance", "FlatnessRegistration", "is_registration",
           "load_candidates", "load_cost_registration", "load_flatness_registration", "load_study", "own_margins",
           "paired_sds", "pareto_points", "pilot_paired_sd", "pilot_verdicts", "pinned_rule", "premises", "progress",
           "progress_text", "record_scale", "recorded_below", "registered_at", "registration_commit", "Replacement",
           "rerun_estimate", "runs_before_registration", "runs_dates", "runs_text", "Study", "study_frame"]
