"""The optimizers (layer 0: torch only): SAM, SSAM in its explicit and implicit forms, the sparse
ascent pass that skips what a layer or filter mask leaves out, and the micro-batches of gradient
accumulation."""

from .accumulate import micro_batches
from .sam import SAM
from .sparse_ascent import SparseAscentSAM
from .ssam import SSAM

__all__ = ["SAM", "SSAM", "SparseAscentSAM", "micro_batches"]
