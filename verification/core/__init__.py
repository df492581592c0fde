"""The pure DP verification engine: no Django imports. DataFrames and a schema in, plain results out.

* :mod:`.mechanisms`: floating-point-safe noise (discrete Laplace counts, integer-scaled sums,
  the exponential-mechanism quantile).
* :mod:`.hypothesis`: :func:`parse_hypothesis` checks a hypothesis against the schema and gives
  its canonical form (the reuse key).
* :mod:`.answer`: the :class:`Answer` and the verdict rule.
* :mod:`.kind`: :class:`Kind`, one hypothesis kind as one object (params parser, DP ``compute``,
  ``exact`` statistic, description, example params), and the registry ``KINDS`` (name -> Kind).
* :mod:`.kinds`: :func:`answer`, dispatching on the kind through ``KINDS``, and the eight basic
  kinds; each kind module defines a kind once and adds it with :func:`register`:
  :mod:`.kinds_models` the regression kinds, :mod:`.kinds_survival` the survival kinds (both
  imported here).
* :mod:`.preview`: the free precision preview, :func:`answer` simulated on the synthetic release
  (expected CI width, P(decisive), a suggested ε); not imported here, nothing registers through it.
* :mod:`.aggregate`: sample-and-aggregate (DP mean of block estimates, its CI), used by the
  regression kinds; their batched Newton fits are :mod:`clearinghouse.fitting` (shared with the
  validation report).
"""

from .answer import Answer, verdict_for
from .hypothesis import Hypothesis, HypothesisError, parse_hypothesis
from .kind import Kind
from .kinds import KINDS, answer, register
from . import kinds_models, kinds_survival  # noqa: E402,F401  (register the regression and survival kinds)

__all__ = ["KINDS", "Answer", "Hypothesis", "HypothesisError", "Kind", "answer", "parse_hypothesis", "register",
           "verdict_for"]
