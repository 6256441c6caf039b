"""Masks (layer 0: torch only): the pure pattern functions (:mod:`.patterns`), the strategies that
rebuild a mask during training (:mod:`.strategies`), Fisher scores (:mod:`.fisher`) and the ascent
cost of a mask (:mod:`.cost`). A mask never imports an optimizer.

The pattern functions are re-exported here: ``sparsam.masks.unstructured`` is
``sparsam.masks.patterns.unstructured``."""

from .patterns import (PATTERNS, cost_aware, density, from_pattern, n_m, n_m_official, n_m_sparsity, norm_only,
                       parse_pattern, structured, top_k, unstructured)

__all__ = ["PATTERNS", "cost_aware", "density", "from_pattern", "n_m", "n_m_official", "n_m_sparsity", "norm_only",
           "parse_pattern", "structured", "top_k", "unstructured"]
