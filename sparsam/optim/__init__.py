"""The optimizers (layer 0: torch only): SAM, SSAM in its explicit and implicit forms, and the sparse
ascent pass that skips what a layer or filter mask leaves out."""

from .sam import SAM
from .sparse_ascent import SparseAscentSAM
from .ssam import SSAM

__all__ = ["SAM", "SSAM", "SparseAscentSAM"]
