"""sparsam: Sharpness-Aware Minimization with sparse perturbations (SSAM-F, SSAM-D).

The optimizer math lives in :mod:`sparsam.sam`, :mod:`sparsam.ssam`, :mod:`sparsam.implicit`,
:mod:`sparsam.masks`, :mod:`sparsam.fisher` and :mod:`sparsam.strategies`; data, models and
training are separate.
"""

from . import implicit, masks
from .fisher import fisher_scores
from .sam import SAM
from .ssam import SSAM
from .strategies import DynamicMask, FisherMask, MaskStrategy

__all__ = ["SAM", "SSAM", "FisherMask", "DynamicMask", "MaskStrategy", "masks", "implicit", "fisher_scores"]
__version__ = "0.1.0"
