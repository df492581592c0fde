"""The pure DP verification engine: no Django imports. DataFrames and a schema in, plain results out.

* :mod:`.mechanisms`: floating-point-safe noise (discrete Laplace counts, integer-scaled sums,
  the exponential-mechanism quantile).
* :mod:`.hypothesis`: :func:`parse_hypothesis` checks a hypothesis against the schema and gives
  its canonical form (the reuse key).
* :mod:`.answer`: the :class:`Answer` and the verdict rule.
* :mod:`.kinds`: :func:`answer`, dispatching on the kind through ``KINDS`` (extended by
  :func:`~verification.core.kinds.register` from other modules: :mod:`.kinds_models` for the
  regression kinds, :mod:`.kinds_survival` for the survival kinds, both imported here).
"""

from .answer import Answer, verdict_for
from .hypothesis import Hypothesis, HypothesisError, parse_hypothesis
from .kinds import KINDS, answer, register
from . import kinds_models, kinds_survival  # noqa: E402,F401  (register the regression and survival kinds)

__all__ = ["KINDS", "Answer", "Hypothesis", "HypothesisError", "answer", "parse_hypothesis", "register", "verdict_for"]
