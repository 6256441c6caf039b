"""Code changes declared not to change what an optimizer computes, each with the test that proves it.

A record is stale when a definition its optimizer runs changed after the record was made
(:func:`sparsam.book.records.stale_reason`). Some changes are made for another purpose and leave every
number the same: an :class:`Equivalence` says that the code of one definition at commit ``before``
and at commit ``after`` compute the same values, and names the test that shows it (the two versions
run side by side on the same network and data, bit for bit). The staleness rule then treats the two
versions as one; any other change to the definition still makes the records stale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Equivalence:
    """The code of ``definition`` (``module.name``) at commit ``before`` and at ``after`` computes the same."""

    definition: str
    before: str
    after: str
    reason: str
    proof: str  # the pytest node id of the test that runs both versions side by side

    @property
    def module(self) -> str:
        return self.definition.rsplit(".", 1)[0]

    @property
    def name(self) -> str:
        return self.definition.rsplit(".", 1)[1]


EQUIVALENCES: tuple[Equivalence, ...] = (
    Equivalence(
        definition="sparsam.optim.ssam.SSAM",
        before="58866c55018826739d01618a5c088e83da25a9a8",
        after="127cf71ab1025863a3373c7ca3a7d73d2313af14",
        reason="the mask multipliers became persistent buffers overwritten in place at each mask rebuild "
               "(for CUDA graphs), and refresh_masks() was added; the same 0/1 values enter the same "
               "arithmetic",
        proof="tests/optim/test_code_equivalences.py::test_ssam_before_and_after_persistent_mask_buffers"),
)
