"""Fidelity metrics of the validation report: how closely the synthetic rows follow the whole real
cohort (train + holdout), column by column, pair by pair and jointly.

* SDMetrics' Quality Report: column shapes and column-pair trends; their mean is ``fidelity.overall``,
  the publication gate (hematology paper: ≥ 0.85);
* the hematology paper's Synthetic Validation Framework: PCA agreement, the clinical synthetic
  fidelity (CSF: distributions, correlation matrices, PCA) and the genomic synthetic fidelity (GSF,
  on the binary columns: frequencies, positives per patient, co-occurrence, odds ratios);
* TabSynDex (Chundawat et al. 2022, as used by the AML paper): basic statistics, regularized support
  coverage and the log-transformed correlation score;
* a real-vs-synthetic classifier (detection AUC).

Scores and their per-column or per-pair breakdown of *scores* are public (``details``), statistics
of the synthetic rows too (``synthetic_details``); statistics of the real rows (correlations,
means, explained variance, odds ratios) go to ``real_details`` only.

A column whose values are all missing in the real rows is left out of every metric; one whose
values are all missing in the synthetic rows is left out wherever its distribution is compared
(shapes, statistics, associations) and still counts where missingness is a category (pair
contingencies, support coverage, PCA and detection encodings). Each left-out column or pair is
listed with its reason in ``details["skipped"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
from scipy.special import entr
from scipy.stats import ks_2samp, norm, pearsonr
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from threadpoolctl import threadpool_limits

from clearinghouse.schema import Column
from generators.core.evaluation.encoding import categories, encode, labels
from generators.core.evaluation.report import Better, EvalContext, Metric

__all__ = ["metrics"]

Frame = Literal["real", "synthetic"]
FRAMES: tuple[Frame, Frame] = ("real", "synthetic")

#: SDMetrics discretizes a number into numpy's 10 equal-width bins for a contingency table.
PAIR_BINS = 10
#: TabSynDex's support coverage bins a number into this many equal-width bins of its public bounds.
SUPPORT_BINS = 10
#: PCA: the first components explaining this share of the real variance, at most PCA_MAX of them.
PCA_VARIANCE, PCA_MAX = 0.80, 5
#: Up to this many real rows the PCA is an SVD of the rows; beyond, of their covariance (exact too).
PCA_FULL_SVD_ROWS = 100_000
#: Log-correlation: |association| floored here (ln 0 is −∞); also the least |L_real| divided by.
LOG_FLOOR = 1e-6
#: Odds ratios: Haldane–Anscombe correction and the two-sided 95 % normal interval.
HALDANE = 0.5
Z95 = float(norm.ppf(0.975))
#: Detection: folds, boosting rounds and leaves (small trees: a few seconds at 10k rows), the most
#: rows per class (AUC's standard error is then below 0.01) and the fewest that 5 stratified folds need.
DETECTION_FOLDS, DETECTION_ROUNDS, DETECTION_LEAVES = 5, 60, 15
DETECTION_MAX_ROWS, DETECTION_MIN_ROWS = 5000, 2 * DETECTION_FOLDS

_SPECS: dict[str, tuple[str, float | None, float | None, Better, str]] = {
    "fidelity.column_shapes": (
        "Column shapes", 0.0, 1.0, "higher",
        "Mean over columns of SDMetrics' KSComplement for numbers (1 − the two-sample Kolmogorov–Smirnov "
        "statistic) or TVComplement for categories and events (1 − the total-variation distance of the "
        "category frequencies), missing values left out."),
    "fidelity.column_pair_trends": (
        "Column pair trends", 0.0, 1.0, "higher",
        "Mean over column pairs of SDMetrics' CorrelationSimilarity for two numbers (1 − |Pearson r real − "
        "Pearson r synthetic| / 2) or ContingencySimilarity otherwise (1 − total-variation distance of the "
        "joint frequencies, numbers cut into numpy's 10 equal-width bins of each frame's own range, missing "
        "as its own category)."),
    "fidelity.overall": (
        "Overall fidelity", 0.0, 1.0, "higher",
        "Mean of column shapes and column pair trends (column shapes alone when no pair can be scored), "
        "as SDMetrics' Quality Report scores a table."),
    "fidelity.pca": (
        "PCA agreement", 0.0, 1.0, "higher",
        "PCA fitted on the encoded real rows, both frames projected on it; mean KSComplement (1 − KS "
        "statistic) of the projections on the first k components, k the fewest explaining ≥ 80 % of the "
        "real variance, at most 5."),
    "fidelity.csf": (
        "Clinical synthetic fidelity (CSF)", 0.0, 1.0, "higher",
        "Mean of (a) column shapes over all columns, (b) correlation-matrix similarity 1 − mean |r real − "
        "r synthetic| / 2 over pairs of numeric columns (Pearson) and (c) the PCA agreement; a component "
        "that cannot be computed is left out."),
    "fidelity.gsf": (
        "Genomic synthetic fidelity (GSF)", 0.0, 1.0, "higher",
        "On the binary columns (two-category and event columns, positive = second category or event 1): "
        "mean of (a) 1 − mean |p real − p synthetic| of the positive shares, (b) 1 − total-variation "
        "distance of the number of positive columns per row, (c) 1 − mean |P real(both) − P synthetic(both)| "
        "over column pairs and (d) the share of pairs whose log odds ratios (0.5 added to every cell) have "
        "the same sign or both have a 95 % interval containing 0."),
    "fidelity.basic_statistics": (
        "Basic statistical measure", 0.0, 1.0, "higher",
        "TabSynDex: 1 − mean over numeric columns and over mean, median and standard deviation of "
        "min(1, |synthetic − real| / |real|) (population standard deviation; the public range replaces |real| "
        "when it is 0)."),
    "fidelity.support_coverage": (
        "Regularized support coverage", 0.0, 1.0, "higher",
        "TabSynDex: mean over columns of the mean over the categories present in the real rows (numbers: "
        "10 equal-width bins of the public bounds; missing is a category) of min(1, synthetic share / "
        "real share)."),
    "fidelity.log_correlation": (
        "Log-transformed correlation score", 0.0, 1.0, "higher",
        "TabSynDex: 1 − mean over ordered column pairs of min(1, |L real − L synthetic| / |L real|), where "
        "L = sign(c)·ln|c| (|c| floored at 1e-6, |L real| at 1e-6) and c is the pair's association: Pearson "
        "r for two numbers, the correlation ratio for a category and a number, Theil's U for two "
        "categories."),
    "fidelity.detection_auc": (
        "Detection AUC", 0.0, 1.0, "lower",
        "Mean ROC AUC over 5 stratified folds of a gradient-boosting classifier telling real from "
        "synthetic rows (the larger set subsampled to the smaller's size, at most 5,000 rows each; encoded "
        "rows as features); 0.5 means indistinguishable."),
}
KEYS = tuple(_SPECS)


def _metric(key: str, value: float | None, *, details: dict[str, Any] | None = None,
            synthetic_details: dict[str, Any] | None = None, real_details: dict[str, Any] | None = None,
            reason: str = "") -> Metric:
    label, low, high, better, description = _SPECS[key]
    if value is not None and math.isfinite(value):
        value = float(min(high, max(low, value)))  # float rounding must not leave the stated range
    elif value is not None:
        value, reason = None, reason or "the value could not be computed on these rows"
    return Metric(key=key, label=label, value=value, low=low, high=high, better=better, description=description,
                  reason=reason, details=details or {}, synthetic_details=synthetic_details or {},
                  real_details=real_details or {})


def _not_applicable(key: str, reason: str) -> Metric:
    label, low, high, better, description = _SPECS[key]
    return Metric.not_applicable(key, label, reason, low=low, high=high, better=better, description=description)


# --------------------------------------------------------------------------------------- the frames

@dataclass(frozen=True)
class _Column:
    """One column of both frames as arrays: numbers as float64 (NaN missing), categories and events
    as codes into the schema's categories (-1 missing)."""

    column: Column
    real: np.ndarray
    synthetic: np.ndarray

    @property
    def name(self) -> str:
        return self.column.name

    @property
    def numeric(self) -> bool:
        return self.column.is_numeric

    @property
    def size(self) -> int:
        """Number of categories (0 for a number)."""
        return 0 if self.numeric else len(categories(self.column))

    def values(self, frame: Frame) -> np.ndarray:
        return self.real if frame == "real" else self.synthetic

    def present(self, frame: Frame) -> np.ndarray:
        values = self.values(frame)
        return ~np.isnan(values) if self.numeric else values >= 0

    def observed(self, frame: Frame) -> np.ndarray:
        return self.values(frame)[self.present(frame)]

    @cached_property
    def constant(self) -> bool:
        """At most one distinct value in either frame: no correlation or association is defined."""
        return any(np.unique(self.observed(frame)).size <= 1 for frame in FRAMES)


def _arrays(series: pd.Series, column: Column) -> np.ndarray:
    if column.is_numeric:
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return pd.Categorical(labels(series, column), categories=categories(column)).codes.astype("int64")


_NO_REAL = "every value is missing in the real rows"
_NO_SYNTHETIC = "every value is missing in the synthetic rows"


@dataclass
class _Data:
    real: pd.DataFrame
    synthetic: pd.DataFrame
    #: Columns with values in the real rows (the synthetic ones may all be missing).
    kept: list[_Column]
    #: Columns with values in both frames: what distributions and associations compare.
    compared: list[_Column]
    no_real: list[Column]
    no_synthetic: list[Column]

    def skipped(self, *, compared: bool, where: Callable[[Column], bool] = lambda column: True) -> list[dict]:
        """The left-out columns (those ``where`` selects) with their reasons: all-missing in the real
        rows, and for a metric on ``compared`` columns all-missing in the synthetic rows too."""
        out = [{"column": c.name, "reason": _NO_REAL} for c in self.no_real if where(c)]
        if compared:
            out += [{"column": c.name, "reason": _NO_SYNTHETIC} for c in self.no_synthetic if where(c)]
        return out


def _prepare(ctx: EvalContext, real: pd.DataFrame) -> _Data:
    data = _Data(real=real, synthetic=ctx.synthetic, kept=[], compared=[], no_real=[], no_synthetic=[])
    for column in ctx.columns:
        col = _Column(column, _arrays(real[column.name], column), _arrays(ctx.synthetic[column.name], column))
        if not col.present("real").any():
            data.no_real.append(column)
            continue
        data.kept.append(col)
        if col.present("synthetic").any():
            data.compared.append(col)
        else:
            data.no_synthetic.append(column)
    return data


def _pairs(columns: list[_Column]) -> list[tuple[_Column, _Column]]:
    return list(combinations(columns, 2))


def _pair_name(a: _Column, b: _Column) -> list[str]:
    return [a.name, b.name]


def _tv_complement(p: np.ndarray, q: np.ndarray) -> float:
    """1 − total-variation distance of two frequency vectors over the same cells."""
    return float(1.0 - 0.5 * np.abs(p - q).sum())


def _frequencies(codes: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(codes, minlength=size) / max(codes.size, 1)


def _ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    # "asymp" only skips the exact p-value (slow beyond a few thousand rows); the statistic is the same
    return float(1.0 - ks_2samp(real, synthetic, method="asymp").statistic)


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson r on the rows where both are present; None when undefined there."""
    both = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[both], y[both]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    r = float(pearsonr(x, y).statistic)
    return r if math.isfinite(r) else None


# ------------------------------------------------------------------- SDMetrics' Quality Report

def _column_shapes(data: _Data) -> Metric:
    key = "fidelity.column_shapes"
    scores: dict[str, float] = {}
    for col in data.compared:
        if col.numeric:
            scores[col.name] = _ks_complement(col.observed("real"), col.observed("synthetic"))
        else:
            scores[col.name] = _tv_complement(_frequencies(col.observed("real"), col.size),
                                               _frequencies(col.observed("synthetic"), col.size))
    details = {"columns": scores, "skipped": data.skipped(compared=True)}
    if not scores:
        return _not_applicable(key, "no column has values in both the real and the synthetic rows")
    return _metric(key, float(np.mean(list(scores.values()))), details=details)


def _pair_codes(col: _Column, frame: Frame) -> tuple[np.ndarray, int]:
    """Codes for a contingency table (0 = missing). A number goes into numpy's 10 equal-width bins of
    this frame's own range, as SDMetrics' Quality Report does (np.digitize: the maximum gets a bin of
    its own)."""
    values = col.values(frame)
    present = col.present(frame)
    if not col.numeric:
        return values + 1, col.size + 1
    codes = np.zeros(values.size, dtype="int64")
    if present.any():
        edges = np.histogram_bin_edges(values[present], bins=PAIR_BINS)
        codes[present] = np.digitize(values[present], edges)
    return codes, PAIR_BINS + 2


_Codes = tuple[dict[Frame, np.ndarray], int]


def _contingency_similarity(a: _Codes, b: _Codes) -> float:
    """SDMetrics' ContingencySimilarity: 1 − total-variation distance of the joint frequencies."""
    (codes_a, size_a), (codes_b, size_b) = a, b
    joint = [_frequencies(codes_a[frame] * size_b + codes_b[frame], size_a * size_b) for frame in FRAMES]
    return _tv_complement(*joint)


@dataclass
class _Trends:
    metric: Metric
    #: CorrelationSimilarity of each scored numeric pair, for the CSF's correlation component.
    correlation_scores: list[float]
    #: Pearson r per scored numeric pair and frame, reused by the log-correlation score.
    pearson: dict[tuple[str, str], dict[Frame, float | None]]


def _column_pair_trends(data: _Data) -> _Trends:
    key = "fidelity.column_pair_trends"
    codes: dict[str, _Codes] = {}
    for col in data.kept:
        per_frame = {frame: _pair_codes(col, frame) for frame in FRAMES}
        codes[col.name] = ({frame: per_frame[frame][0] for frame in FRAMES}, per_frame["real"][1])
    pairs, skipped, correlation_scores = [], [], []
    real_r, synthetic_r, pearson = [], [], {}
    no_synthetic = {column.name for column in data.no_synthetic}
    for a, b in _pairs(data.kept):
        columns = _pair_name(a, b)
        if a.numeric and b.numeric:
            empty = [name for name in columns if name in no_synthetic]
            if empty:
                skipped.append({"columns": columns, "reason": f"{empty[0]}: {_NO_SYNTHETIC}"})
                continue
            if a.constant or b.constant:
                skipped.append({"columns": columns,
                                "reason": "a column has a single value, so its correlation is undefined"})
                continue
            r = {frame: _pearson(a.values(frame), b.values(frame)) for frame in FRAMES}
            if r["real"] is None or r["synthetic"] is None:
                skipped.append({"columns": columns,
                                "reason": "the correlation is undefined on the rows where both are present"})
                continue
            pearson[(a.name, b.name)] = r
            score = 1.0 - abs(r["real"] - r["synthetic"]) / 2
            correlation_scores.append(score)
            real_r.append({"columns": columns, "r": r["real"]})
            synthetic_r.append({"columns": columns, "r": r["synthetic"]})
            pairs.append({"columns": columns, "metric": "CorrelationSimilarity", "score": score})
        else:
            score = _contingency_similarity(codes[a.name], codes[b.name])
            pairs.append({"columns": columns, "metric": "ContingencySimilarity", "score": score})
    details = {"pairs": pairs, "skipped": data.skipped(compared=False) + skipped}
    if not pairs:
        metric = _not_applicable(key, "no pair of columns could be scored (fewer than two usable columns)")
        metric.details = details
    else:
        metric = _metric(key, float(np.mean([p["score"] for p in pairs])), details=details,
                         synthetic_details={"correlations": synthetic_r}, real_details={"correlations": real_r})
    return _Trends(metric, correlation_scores, pearson)


def _overall(shapes: Metric, trends: Metric) -> Metric:
    key = "fidelity.overall"
    if not shapes.applicable:
        return _not_applicable(key, f"column shapes could not be scored: {shapes.reason}")
    parts = {"column_shapes": shapes.value}
    if trends.applicable:
        parts["column_pair_trends"] = trends.value
    details: dict[str, Any] = {"components": parts}
    if not trends.applicable:
        details["left_out"] = {"column_pair_trends": trends.reason}
    return _metric(key, float(np.mean(list(parts.values()))), details=details)


# --------------------------------------------------------------- the hematology paper's SVF

def _pca(ctx: EvalContext, data: _Data) -> Metric:
    key = "fidelity.pca"
    real_x = encode(data.real, ctx.schema)
    if real_x.shape[1] == 0:
        return _not_applicable(key, "no column to encode")
    if len(data.real) < 2:
        return _not_applicable(key, "fewer than two real rows")
    if not np.any(np.var(real_x, axis=0) > 0):
        return _not_applicable(key, "every encoded column is constant in the real rows")
    synthetic_x = encode(data.synthetic, ctx.schema)
    n_components = min(PCA_MAX, real_x.shape[1], len(data.real))
    # Beyond PCA_FULL_SVD_ROWS the exact eigendecomposition of the p × p covariance replaces the
    # SVD of the whole n × p matrix (18 s at a million rows; the same components up to rounding).
    solver = "full" if len(real_x) <= PCA_FULL_SVD_ROWS else "covariance_eigh"
    pca = PCA(n_components=n_components, svd_solver=solver).fit(real_x)
    ratios = pca.explained_variance_ratio_
    reached = np.nonzero(np.cumsum(ratios) >= PCA_VARIANCE - 1e-12)[0]
    k = int(reached[0]) + 1 if reached.size else n_components
    real_p, synthetic_p = pca.transform(real_x)[:, :k], pca.transform(synthetic_x)[:, :k]
    scores = [_ks_complement(real_p[:, i], synthetic_p[:, i]) for i in range(k)]
    return _metric(key, float(np.mean(scores)), details={"components": k, "scores": scores},
                   real_details={"explained_variance_ratio": ratios[:k].tolist(),
                                 "cumulative_explained_variance": float(np.sum(ratios[:k]))})


def _csf(shapes: Metric, trends: _Trends, pca: Metric) -> Metric:
    key = "fidelity.csf"
    parts: dict[str, float] = {}
    left_out: dict[str, str] = {}
    if shapes.applicable:
        parts["distributions"] = shapes.value
    else:
        left_out["distributions"] = shapes.reason
    if trends.correlation_scores:
        parts["correlation_matrices"] = float(np.mean(trends.correlation_scores))
    else:
        left_out["correlation_matrices"] = "no pair of numeric columns has a defined correlation in both frames"
    if pca.applicable:
        parts["pca"] = pca.value
    else:
        left_out["pca"] = pca.reason
    if not parts:
        return _not_applicable(key, "; ".join(f"{name}: {why}" for name, why in left_out.items()))
    details: dict[str, Any] = {"components": parts}
    if left_out:
        details["left_out"] = left_out
    return _metric(key, float(np.mean(list(parts.values()))), details=details)


def _binary(column: Column) -> bool:
    return column.type == "event" or (column.type == "categorical" and len(column.categories) == 2)


def _log_odds_ratios(positive: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column pair (matrices): rows where both are present, log odds ratio and its standard error,
    from the 2×2 tables with 0.5 added to every cell (Haldane–Anscombe)."""
    negative = present - positive
    a, b = positive.T @ positive, positive.T @ negative
    c, d = negative.T @ positive, negative.T @ negative
    cells = [x + HALDANE for x in (a, b, c, d)]
    log_or = np.log(cells[0]) + np.log(cells[3]) - np.log(cells[1]) - np.log(cells[2])
    se = np.sqrt(sum(1.0 / x for x in cells))
    return a + b + c + d, log_or, se


def _gsf(data: _Data) -> Metric:
    key = "fidelity.gsf"
    binary = [col for col in data.compared if _binary(col.column)]
    names = [col.name for col in binary]
    skipped = data.skipped(compared=True, where=_binary)
    if len(binary) < 2:
        return _not_applicable(
            key, f"needs at least two binary columns (two-category or event) with values in both frames; "
                 f"this table has {len(binary)}")
    m = len(binary)
    positive, present, shares, counts, both, log_or, se, pair_rows = {}, {}, {}, {}, {}, {}, {}, {}
    for frame in FRAMES:
        codes = np.stack([col.values(frame) for col in binary], axis=1)
        present[frame] = (codes >= 0).astype("float64")
        positive[frame] = (codes == 1).astype("float64")
        shares[frame] = positive[frame].sum(axis=0) / present[frame].sum(axis=0)
        counts[frame] = _frequencies(positive[frame].sum(axis=1).astype("int64"), m + 1)
        pair_rows[frame], log_or[frame], se[frame] = _log_odds_ratios(positive[frame], present[frame])
        with np.errstate(divide="ignore", invalid="ignore"):
            both[frame] = (positive[frame].T @ positive[frame]) / pair_rows[frame]
    frequency = 1.0 - np.abs(shares["real"] - shares["synthetic"])
    parts = {"frequencies": float(frequency.mean()),
             "positives_per_row": _tv_complement(counts["real"], counts["synthetic"])}
    pairs, cooccurrence, agreement = [], [], []
    real_or, synthetic_or = [], []
    for i, j in combinations(range(m), 2):
        columns = [names[i], names[j]]
        if pair_rows["real"][i, j] == 0 or pair_rows["synthetic"][i, j] == 0:
            skipped.append({"columns": columns, "reason": "no row has both values present in one of the frames"})
            continue
        similar = 1.0 - abs(both["real"][i, j] - both["synthetic"][i, j])
        r, s = log_or["real"][i, j], log_or["synthetic"][i, j]
        r_null = abs(r) <= Z95 * se["real"][i, j]
        s_null = abs(s) <= Z95 * se["synthetic"][i, j]
        agrees = bool(np.sign(r) == np.sign(s) or (r_null and s_null))
        cooccurrence.append(similar)
        agreement.append(agrees)
        pairs.append({"columns": columns, "cooccurrence": similar, "odds_ratio_agrees": agrees})
        real_or.append({"columns": columns, "log_odds_ratio": r, "se": se["real"][i, j],
                        "cooccurrence": both["real"][i, j]})
        synthetic_or.append({"columns": columns, "log_odds_ratio": s, "se": se["synthetic"][i, j],
                             "cooccurrence": both["synthetic"][i, j]})
    left_out = {}
    if pairs:
        parts["cooccurrence"] = float(np.mean(cooccurrence))
        parts["odds_ratios"] = float(np.mean(agreement))
    else:
        left_out = {name: "no pair of binary columns is present together in both frames"
                    for name in ("cooccurrence", "odds_ratios")}
    details: dict[str, Any] = {"components": parts, "binary_columns": names,
                               "columns": dict(zip(names, frequency.tolist())), "pairs": pairs,
                               "skipped": skipped}
    if left_out:
        details["left_out"] = left_out
    return _metric(
        key, float(np.mean(list(parts.values()))), details=details,
        synthetic_details={"positive_shares": dict(zip(names, shares["synthetic"].tolist())),
                           "positives_per_row": counts["synthetic"].tolist(), "pairs": synthetic_or},
        real_details={"positive_shares": dict(zip(names, shares["real"].tolist())),
                      "positives_per_row": counts["real"].tolist(), "pairs": real_or})


# ------------------------------------------------------------------------------------ TabSynDex

def _statistics(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "median": float(np.median(values)), "std": float(np.std(values))}


def _basic_statistics(data: _Data) -> Metric:
    key = "fidelity.basic_statistics"
    numeric = [col for col in data.compared if col.numeric]
    if not numeric:
        return _not_applicable(key, "no numeric column with values in both frames")
    scores, real_stats, synthetic_stats, errors = {}, {}, {}, []
    for col in numeric:
        real, synthetic = _statistics(col.observed("real")), _statistics(col.observed("synthetic"))
        span = float(col.column.max) - float(col.column.min)
        column_errors = []
        for name, value in real.items():
            scale = abs(value) if value != 0 else span
            column_errors.append(min(1.0, abs(synthetic[name] - value) / scale))
        errors.extend(column_errors)
        scores[col.name] = 1.0 - float(np.mean(column_errors))
        real_stats[col.name], synthetic_stats[col.name] = real, synthetic
    details = {"columns": scores, "skipped": data.skipped(compared=True, where=lambda c: c.is_numeric)}
    return _metric(key, 1.0 - float(np.mean(errors)), details=details,
                   synthetic_details={"columns": synthetic_stats}, real_details={"columns": real_stats})


def _support_codes(col: _Column, frame: Frame) -> tuple[np.ndarray, int]:
    """Codes for support coverage (0 = missing): numbers in 10 equal-width bins of the public
    bounds (so no real statistic shapes the bins), categories by schema position."""
    values = col.values(frame)
    if not col.numeric:
        return values + 1, col.size + 1
    lo, hi = float(col.column.min), float(col.column.max)
    scaled = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    codes = np.zeros(values.size, dtype="int64")
    present = ~np.isnan(values)
    codes[present] = np.minimum(np.floor(scaled[present] * SUPPORT_BINS), SUPPORT_BINS - 1).astype("int64") + 1
    return codes, SUPPORT_BINS + 1


def _support_coverage(data: _Data) -> Metric:
    key = "fidelity.support_coverage"
    if not data.kept:
        return _not_applicable(key, "no column has values in the real rows")
    scores, occupied = {}, {}
    for col in data.kept:
        (real, size), (synthetic, _) = (_support_codes(col, frame) for frame in FRAMES)
        real_share, synthetic_share = _frequencies(real, size), _frequencies(synthetic, size)
        seen = real_share > 0
        scores[col.name] = float(np.minimum(1.0, synthetic_share[seen] / real_share[seen]).mean())
        occupied[col.name] = int(seen.sum())
    return _metric(key, float(np.mean(list(scores.values()))),
                   details={"columns": scores, "skipped": data.skipped(compared=False)},
                   real_details={"categories_present": occupied})


def _correlation_ratio(codes: np.ndarray, values: np.ndarray, size: int) -> float | None:
    """η = sqrt(between-category sum of squares / total sum of squares) on the rows where both are
    present; None when undefined there (a single row or a constant number)."""
    both = (codes >= 0) & ~np.isnan(values)
    codes, values = codes[both], values[both]
    if values.size < 2:
        return None
    centred = values - values.mean()
    total = float(centred @ centred)
    if total <= 0:
        return None
    counts = np.bincount(codes, minlength=size)
    sums = np.bincount(codes, weights=centred, minlength=size)
    seen = counts > 0
    between = float((sums[seen] ** 2 / counts[seen]).sum())
    return min(1.0, math.sqrt(max(between, 0.0) / total))


def _theils_u(x: np.ndarray, y: np.ndarray, size_x: int, size_y: int) -> float | None:
    """Theil's uncertainty coefficient U(x | y) = I(x; y) / H(x) on the rows where both are present;
    None when x has a single value there."""
    both = (x >= 0) & (y >= 0)
    table = np.bincount(x[both] * size_y + y[both], minlength=size_x * size_y).reshape(size_x, size_y)
    total = table.sum()
    if total == 0:
        return None
    h_x = _entropy(table.sum(axis=1) / total)
    if h_x <= 0:
        return None
    mutual_information = h_x + _entropy(table.sum(axis=0) / total) - _entropy(table / total)
    return min(1.0, max(0.0, mutual_information / h_x))


def _entropy(p: np.ndarray) -> float:
    """Shannon entropy (nats) of a probability table (scipy.stats.entropy without its per-call overhead)."""
    return float(entr(p).sum())


def _associations(a: _Column, b: _Column, frame: Frame,
                  pearson: dict[tuple[str, str], dict[Frame, float | None]]) -> list[float | None]:
    """The pair's association(s) in one frame: one value if symmetric, both directions for Theil's U."""
    if a.numeric and b.numeric:
        cached = pearson.get((a.name, b.name))
        return [cached[frame] if cached is not None else _pearson(a.values(frame), b.values(frame))]
    if a.numeric or b.numeric:
        category, number = (b, a) if a.numeric else (a, b)
        return [_correlation_ratio(category.values(frame), number.values(frame), category.size)]
    return [_theils_u(a.values(frame), b.values(frame), a.size, b.size),
            _theils_u(b.values(frame), a.values(frame), b.size, a.size)]


def _log_transformed(c: float) -> float:
    magnitude = min(1.0, max(abs(c), LOG_FLOOR))
    return (-1.0 if c < 0 else 1.0) * math.log(magnitude)


def _log_error(real: float, synthetic: float) -> float:
    l_real, l_synthetic = _log_transformed(real), _log_transformed(synthetic)
    return min(1.0, abs(l_real - l_synthetic) / max(abs(l_real), LOG_FLOOR))


def _log_correlation(data: _Data, pearson: dict[tuple[str, str], dict[Frame, float | None]]) -> Metric:
    key = "fidelity.log_correlation"
    pairs, skipped, real_c, synthetic_c = [], [], [], []
    for a, b in _pairs(data.compared):
        columns = _pair_name(a, b)
        if a.constant or b.constant:
            skipped.append({"columns": columns, "reason": "a column has a single value, so its association is "
                                                          "undefined"})
            continue
        real, synthetic = (_associations(a, b, frame, pearson) for frame in FRAMES)
        if any(v is None for v in real + synthetic):
            skipped.append({"columns": columns,
                            "reason": "the association is undefined on the rows where both are present"})
            continue
        # Theil's U is asymmetric: each direction is one of TabSynDex's ordered pairs
        score = 1.0 - float(np.mean([_log_error(r, s) for r, s in zip(real, synthetic)]))
        pairs.append({"columns": columns, "score": score})
        real_c.append({"columns": columns, "association": real})
        synthetic_c.append({"columns": columns, "association": synthetic})
    details = {"pairs": pairs, "skipped": data.skipped(compared=True) + skipped}
    if not pairs:
        metric = _not_applicable(key, "no pair of columns has a defined association in both frames")
        metric.details = details
        return metric
    return _metric(key, float(np.mean([p["score"] for p in pairs])), details=details,
                   synthetic_details={"associations": synthetic_c}, real_details={"associations": real_c})


# ------------------------------------------------------------------------------------ detection

def _detection_auc(ctx: EvalContext, data: _Data) -> Metric:
    key = "fidelity.detection_auc"
    n = min(len(data.real), len(data.synthetic))
    if n < DETECTION_MIN_ROWS:
        return _not_applicable(key, f"needs at least {DETECTION_MIN_ROWS} rows in each frame for "
                                    f"{DETECTION_FOLDS} stratified folds; the smaller has {n}")
    n = min(n, DETECTION_MAX_ROWS)
    # The encoding is row by row (public bounds), so the rows are drawn first and only they encoded.
    rng = np.random.default_rng(ctx.seed)
    real, synthetic = data.real, data.synthetic
    real = real.iloc[np.sort(rng.choice(len(real), n, replace=False))] if len(real) > n else real
    synthetic = (synthetic.iloc[np.sort(rng.choice(len(synthetic), n, replace=False))]
                 if len(synthetic) > n else synthetic)
    real_x, synthetic_x = encode(real, ctx.schema), encode(synthetic, ctx.schema)
    if real_x.shape[1] == 0:
        return _not_applicable(key, "no column to encode")
    x = np.concatenate([real_x, synthetic_x])
    y = np.repeat([0, 1], n)
    state = ctx.seed % 2**32
    classifier = HistGradientBoostingClassifier(max_iter=DETECTION_ROUNDS, max_leaf_nodes=DETECTION_LEAVES,
                                                early_stopping=False, random_state=state)
    folds = StratifiedKFold(n_splits=DETECTION_FOLDS, shuffle=True, random_state=state)
    aucs = cross_val_score(classifier, x, y, cv=folds, scoring="roc_auc")
    return _metric(key, float(np.mean(aucs)), details={"fold_aucs": aucs.tolist(), "rows_per_class": n})


# ------------------------------------------------------------------------------------- the section

_DATA_ERRORS = (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError)


def _safely(key: str, compute: Callable[[], Metric]) -> Metric:
    """A data-shaped failure of one metric makes it not applicable instead of failing the report."""
    try:
        return compute()
    except _DATA_ERRORS as error:
        return _not_applicable(key, f"could not be computed on these rows: {error}")


def metrics(ctx: EvalContext) -> list[Metric]:
    real = ctx.real
    reason = ("the real cohort has no rows" if len(real) == 0 else
              "the synthetic frame has no rows" if len(ctx.synthetic) == 0 else
              "the schema has no stored column" if not ctx.columns else "")
    if reason:
        return [_not_applicable(key, reason) for key in KEYS]
    # One thread: the boosting's OpenMP threads, when the cores are shared with other work, run
    # 5-10x slower than one (measured: 1.4 s on one thread, 20 s on two, at 5k rows per class).
    with np.errstate(divide="ignore", invalid="ignore"), threadpool_limits(limits=1):
        data = _prepare(ctx, real)
        shapes = _safely("fidelity.column_shapes", lambda: _column_shapes(data))
        try:
            trends = _column_pair_trends(data)
        except _DATA_ERRORS as error:
            trends = _Trends(_not_applicable("fidelity.column_pair_trends",
                                             f"could not be computed on these rows: {error}"), [], {})
        overall = _overall(shapes, trends.metric)
        pca = _safely("fidelity.pca", lambda: _pca(ctx, data))
        return [
            shapes, trends.metric, overall, pca, _csf(shapes, trends, pca),
            _safely("fidelity.gsf", lambda: _gsf(data)),
            _safely("fidelity.basic_statistics", lambda: _basic_statistics(data)),
            _safely("fidelity.support_coverage", lambda: _support_coverage(data)),
            _safely("fidelity.log_correlation", lambda: _log_correlation(data, trends.pearson)),
            _safely("fidelity.detection_auc", lambda: _detection_auc(ctx, data)),
        ]
