"""Typed views of the API's answers (frozen dataclasses).

Every ε figure (budgets, allocation, spent, left, ``epsilon_charged``, a preview's ε figures) is a
:class:`decimal.Decimal`: the API sends them as exact decimal strings (ε is the pure-DP privacy-loss
parameter, dimensionless). Timestamps stay ISO 8601 strings, as sent. Fields the server adds later
are ignored; fields it leaves out are ``None``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

#: Kinds whose statistic is a ratio: their CI is read, and plotted, on a log scale.
RATIO_KINDS = frozenset({"odds_ratio", "logistic_odds_ratio", "hazard_ratio", "logrank"})

_DIRECTION_WORDS = {"greater": "greater than", "less": "less than", "not_equal": "different from"}
_SIDE_WORDS = {"greater": "above", "less": "below", "not_equal": "away from"}


def epsilon(value: Any) -> Decimal | None:
    """An ε figure as a Decimal, read by its decimal text (a JSON number 0.1 gives Decimal("0.1"))."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError(f"ε must be a decimal, not {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"ε must be a decimal, not {value!r}") from None


def _build(cls, data: Mapping[str, Any], **convert):
    """``cls`` from an API object: known fields only, missing ones None, ``convert`` per field."""
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        raw = data.get(f.name)
        values[f.name] = convert[f.name](raw) if f.name in convert and raw is not None else raw
    return cls(**values)


def _text(value: Any) -> str:
    """A figure for a sentence: four significant digits, or 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class User:
    """An account (``UserOutput``)."""

    id: int
    username: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    affiliation: str | None = None
    roles: list[str] | None = None
    verified: bool | None = None
    verified_at: str | None = None
    is_active: bool | None = None
    date_joined: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "User":
        return _build(cls, data)


@dataclass(frozen=True)
class Token:
    """A freshly issued API token (``TokenIssueOutput``): ``token`` is shown this once."""

    token: str
    token_type: str | None = None
    id: int | None = None
    hint: str | None = None
    expires_at: str | None = None
    user: User | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Token":
        return _build(cls, data, user=User.from_api)

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Token(id={self.id!r}, hint={self.hint!r}, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class Dataset:
    """A dataset's metadata and public schema (``DatasetOutput``); never rows."""

    slug: str
    name: str | None = None
    description: str | None = None
    schema: dict | None = None
    n_rows: int | None = None
    n_columns: int | None = None
    dropped_columns: list | None = None
    stored_bytes: int | None = None
    created_by: str | None = None
    created_at: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Dataset":
        return _build(cls, data)


@dataclass(frozen=True)
class Release:
    """A synthetic release (``ReleaseOutput``). ``files`` maps ``csv`` and ``parquet`` to
    ``{"url", "bytes", "sha256"}``: what :meth:`Client.download` checks against."""

    id: int
    dataset: str | None = None
    run: int | None = None
    rows: int | None = None
    seed: int | None = None
    conditions: Any = None
    published: bool | None = None
    published_at: str | None = None
    created_at: str | None = None
    datasheet: dict | None = None
    files: dict | None = None
    report: dict | None = None
    gate_override: dict | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Release":
        return _build(cls, data)


@dataclass(frozen=True)
class Run:
    """A training run (``RunOutput``); ``progress`` has ``epoch``, ``epochs``, ``fraction``,
    ``losses``, ``elapsed_seconds``, ``eta_seconds``, ``last_report_at``."""

    id: int
    dataset: str | None = None
    model: str | None = None
    hyperparameters: dict | None = None
    epochs: int | None = None
    seed: int | None = None
    device_requested: str | None = None
    device: str | None = None
    queue: str | None = None
    status: str | None = None
    cancel_requested: bool | None = None
    progress: dict | None = None
    error: str | None = None
    n_train: int | None = None
    n_holdout: int | None = None
    created_by: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    FINAL = ("succeeded", "failed", "cancelled")

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Run":
        return _build(cls, data)

    @property
    def finished(self) -> bool:
        return self.status in self.FINAL


@dataclass(frozen=True)
class Budget:
    """Your ε on one dataset (an entry of ``GET /budget/``, or a verification's ``budget``)."""

    dataset: str
    allocation: Decimal | None = None
    spent: Decimal | None = None
    left: Decimal | None = None
    dataset_left: Decimal | None = None
    max_epsilon_per_query: Decimal | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Budget":
        return _build(cls, data, **{name: epsilon for name in
                                    ("allocation", "spent", "left", "dataset_left", "max_epsilon_per_query")})


@dataclass(frozen=True)
class Preview:
    """What a hypothesis's ε-DP answer would likely look like, simulated on the synthetic release
    (``VerificationPreviewOutput``); free."""

    dataset: str | None = None
    release: int | None = None
    kind: str | None = None
    hypothesis: dict | None = None
    epsilon: Decimal | None = None
    draws: int | None = None
    p_decisive: float | None = None
    p_withheld: float | None = None
    p_uninformative: float | None = None
    expected_ci_width: float | None = None
    expected_ci_width_log: float | None = None
    expected_ci: dict | None = None
    synthetic_estimate: float | None = None
    max_epsilon: Decimal | None = None
    budget_left: Decimal | None = None
    suggested_epsilon: Decimal | None = None
    suggestion_reason: str | None = None
    target: float | None = None
    searched: list | None = None
    note: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Preview":
        searched = lambda items: [{**item, "epsilon": epsilon(item.get("epsilon"))} for item in items]  # noqa: E731
        return _build(cls, data, epsilon=epsilon, max_epsilon=epsilon, budget_left=epsilon,
                      suggested_epsilon=epsilon, searched=searched)

    def summary(self) -> str:
        ci = self.expected_ci or {}
        suggestion = (f"the smallest ε reaching P(decisive) {_text(self.target)} is {_text(self.suggested_epsilon)}"
                      if self.suggested_epsilon is not None else f"no ε within the limits reaches it "
                                                                 f"({self.suggestion_reason})")
        return (f"Preview of {self.kind} at ε = {_text(self.epsilon)} (nothing charged; simulated {self.draws} times "
                f"on synthetic release {self.release}): expected CI {_text(ci.get('low'))} to {_text(ci.get('high'))}, "
                f"P(decisive) {_text(self.p_decisive)}, P(withheld) {_text(self.p_withheld)}; {suggestion}. "
                f"{self.note or ''}").strip()


@dataclass(frozen=True)
class Answer:
    """A verification (``VerificationOutput``): the ε-DP ``answer`` on the real rows, with its CI,
    verdict and the synthetic release's estimate; ``budget`` is set on the answer of a POST."""

    id: int
    dataset: str | None = None
    release: int | None = None
    kind: str | None = None
    hypothesis: dict | None = None
    status: str | None = None
    reused: bool | None = None
    reused_from: int | None = None
    epsilon_charged: Decimal | None = None
    answer: dict = field(default_factory=dict)
    created_at: str | None = None
    answered_at: str | None = None
    budget: Budget | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Answer":
        built = _build(cls, data, epsilon_charged=epsilon, budget=Budget.from_api)
        return dataclasses.replace(built, answer=dict(built.answer or {}))

    # The answer's figures, for convenience.
    estimate = property(lambda self: self.answer.get("estimate"))
    ci_low = property(lambda self: self.answer.get("ci_low"))
    ci_high = property(lambda self: self.answer.get("ci_high"))
    confidence = property(lambda self: self.answer.get("confidence", 0.95))
    noisy_n = property(lambda self: self.answer.get("noisy_n"))
    verdict = property(lambda self: self.answer.get("verdict"))
    withheld = property(lambda self: bool(self.answer.get("withheld")))
    informative = property(lambda self: self.answer.get("informative", True) is not False)
    reason = property(lambda self: self.answer.get("reason") or "")
    synthetic_estimate = property(lambda self: self.answer.get("synthetic_estimate"))

    @property
    def claim(self) -> dict:
        return dict((self.hypothesis or {}).get("claim") or {})

    @property
    def ratio(self) -> bool:
        return self.kind in RATIO_KINDS

    def _claim_words(self) -> str:
        claim = self.claim
        direction = _DIRECTION_WORDS.get(claim.get("direction"), str(claim.get("direction")))
        return f"{direction} {_text(claim.get('value'))}"

    def summary(self) -> str:
        """One plain paragraph: what was asked, the estimate and CI, the verdict in words (a withheld or
        uninformative answer is said to be one, so it never reads as a finding), the ε charged and left."""
        level = f"{round(100 * float(self.confidence))} %"
        parts = [f"Hypothesis {self.id} ({self.kind} on {self.dataset}, synthetic release {self.release}) claimed "
                 f"that the statistic is {self._claim_words()} on the real patients."]
        if self.withheld:
            parts.append(f"The answer was withheld ({self.reason or 'the noisy subgroup was too small'}): no "
                         "estimate was released, so it is not a finding either way.")
        else:
            parts.append(f"The ε-DP estimate on the real rows is {_text(self.estimate)}, {level} CI "
                         f"{_text(self.ci_low)} to {_text(self.ci_high)} (noisy n {_text(self.noisy_n)}); "
                         f"the synthetic release gave {_text(self.synthetic_estimate)}.")
            if not self.informative:
                parts.append(f"The estimate is not informative ({self.reason}); the verdict is inconclusive and the "
                             "figures must not be read as a finding.")
            elif self.verdict == "supported":
                side = _SIDE_WORDS.get(self.claim.get("direction"), "on the claimed side of")
                parts.append(f"The whole CI lies {side} {_text(self.claim.get('value'))}: the claim is supported.")
            elif self.verdict == "contradicted":
                parts.append("The whole CI lies on the other side of the claimed value: the claim is contradicted.")
            else:
                parts.append("The CI includes the claimed value: the result is inconclusive, neither supporting nor "
                             "contradicting the claim.")
        if self.reused:
            parts.append(f"This repeats an earlier identical hypothesis (verification {self.reused_from}): "
                         "no ε was charged.")
        else:
            parts.append(f"ε = {_text(self.epsilon_charged)} was charged.")
        if self.budget is not None:
            parts.append(f"Budget left on {self.budget.dataset}: ε = {_text(self.budget.left)} of "
                         f"{_text(self.budget.allocation)}.")
        return " ".join(parts)

    def plot(self, ax=None):
        """A forest plot of the ε-DP CI (and the synthetic release's estimate) against the claimed
        value; log x-axis for ratio kinds. Needs matplotlib (``pip install 'clearinghouse-client[plot]'``).
        Returns the Axes."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - the optional extra
            raise ImportError("Answer.plot() needs matplotlib: pip install 'clearinghouse-client[plot]'") from exc
        if ax is None:
            _figure, ax = plt.subplots(figsize=(6.0, 2.2))
        label = f"{self.kind} #{self.id}"
        y_real, y_synthetic = 1.0, 0.0
        if not self.withheld and self.ci_low is not None and self.ci_high is not None:
            ax.hlines(y_real, self.ci_low, self.ci_high, color="tab:blue", linewidth=3,
                      label=f"ε-DP {round(100 * float(self.confidence))} % CI (real rows)", gid="ci")
            if self.estimate is not None:
                ax.plot([self.estimate], [y_real], "o", color="tab:blue", gid="estimate")
        else:
            ax.text(0.5, 0.75, "withheld: no estimate released", transform=ax.transAxes, ha="center")
        if self.synthetic_estimate is not None:
            ax.plot([self.synthetic_estimate], [y_synthetic], "D", color="tab:orange", label="synthetic release",
                    gid="synthetic")
        value = self.claim.get("value")
        if value is not None:
            ax.axvline(value, color="tab:red", linestyle="--", label=f"claim: {self._claim_words()}", gid="claim")
        if self.ratio:
            ax.set_xscale("log")
        ax.set_yticks([y_synthetic, y_real], ["synthetic", "real (ε-DP)"])
        ax.set_ylim(-0.7, 1.7)
        verdict = "withheld" if self.withheld else (self.verdict if self.informative else "not informative")
        ax.set_title(f"{label}: {verdict}")
        ax.legend(loc="best", fontsize="small")
        return ax


#: A verification read back from ``GET /verifications/`` is the same shape (``budget`` is None).
Verification = Answer
