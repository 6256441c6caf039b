"""sparsam: Sharpness-Aware Minimization with sparse perturbations (SSAM-F, SSAM-D, SAM-ON).

The optimizer math lives in :mod:`sparsam.optim.sam`, :mod:`sparsam.optim.ssam`, :mod:`sparsam.optim.implicit`,
:mod:`sparsam.optim.sparse_ascent` (both through :mod:`sparsam.optim.masked_layer`), :mod:`sparsam.masks.patterns`,
:mod:`sparsam.masks.fisher` and :mod:`sparsam.masks.strategies`; data, models and training are separate. Types
shared by the layers (the loss signature, the string options as ``Literal`` types) are in :mod:`sparsam._types`.
"""

from .optim import implicit
from . import masks
from .masks.fisher import fisher_scores
from .optim.accumulate import micro_batches
from .optim.sam import SAM
from .optim.ssam import SSAM
from .optim.sparse_ascent import SparseAscentSAM
from .masks.strategies import DynamicMask, FisherMask, MaskStrategy, NormMask

__all__ = ["SAM", "SSAM", "SparseAscentSAM", "FisherMask", "DynamicMask", "NormMask", "MaskStrategy", "masks", "implicit",
           "fisher_scores", "micro_batches"]
__version__ = "0.1.0"
