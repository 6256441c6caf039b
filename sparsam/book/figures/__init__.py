"""Figures of the book, drawn from run records and verdicts: intervals everywhere, single runs marked.

Every interval is the 95% t-interval over seeds of :func:`sparsam.book.records.summarize` (or of
:func:`sparsam.book.stats.compare`) and the legends say so; a point with no interval (one seed) is
drawn as a plain marker and labelled "no interval". Each function returns its figure and only draws: what a
figure shows is computed by the module that owns the statistic (:mod:`sparsam.book.records`,
:mod:`sparsam.book.stats`, the chapters' measurements). Every figure of the notebooks comes from here
(``figures.<module>.<figure>(...)``): axes name their quantity and unit, legends sit below the panels (never over
the data), and several series that would crowd one panel get one panel each.

- :mod:`.style`: the colours and labels, one panel and its legend, error bars and bands over seeds, the figure
  that says why there is nothing to draw;
- :mod:`.accuracy`: accuracy against sparsity, accuracy per method;
- :mod:`.curves`: training curves against epoch;
- :mod:`.cost`: accuracy against cost (the Pareto figure), FLOPs and time per step, the Fisher mask's cost;
- :mod:`.claims`: each claim's interval against its margin, the difference a number of seeds detects;
- :mod:`.convergence`, :mod:`.masks`, :mod:`.landscape`: chapters 1, 2 and 6.

Only the notebooks and the closing block of a chapter (:func:`sparsam.book.claims.publish`) draw; no other module
of the book imports this package.
"""

from . import accuracy, claims, convergence, cost, curves, landscape, masks, style

__all__ = ["accuracy", "claims", "convergence", "cost", "curves", "landscape", "masks", "style"]
