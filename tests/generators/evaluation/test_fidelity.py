"""The fidelity section: SDMetrics' Quality Report reproduced on GBSG2 (80/20 split) and an honest
copula release, the papers' scores on frames small enough to work out by hand, and the degenerate
cohorts that must give reasons instead of NaN."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy
from sklearn.metrics import mutual_info_score

from clearinghouse.schema import Schema
from generators.core.evaluation import fidelity
from generators.core.evaluation.report import EvalContext
from tests.generators.conftest import schema_dict
from tests.generators.evaluation.conftest import split

KEYS = ["fidelity.column_shapes", "fidelity.column_pair_trends", "fidelity.overall", "fidelity.pca", "fidelity.csf",
        "fidelity.gsf", "fidelity.basic_statistics", "fidelity.support_coverage", "fidelity.log_correlation",
        "fidelity.detection_auc"]
#: Scores our code and SDMetrics compute from the same counts: they agree to float rounding, and the
#: brief's 0.01 is the contract.
SDMETRICS_TOLERANCE = 0.01
EXACT = 1e-9  # the same arithmetic on the same rows


def context(gbsg2_split, synthetic: pd.DataFrame, schema: Schema, seed: int = 0) -> EvalContext:
    train, holdout = gbsg2_split
    return EvalContext(train=train, holdout=holdout, synthetic=synthetic.reset_index(drop=True), schema=schema,
                       seed=seed)


def by_key(metrics) -> dict:
    return {m.key: m for m in metrics}


def dumps(metrics) -> None:
    """Every audience's view is plain JSON without NaN."""
    for metric in metrics:
        for audience in ("custodian", "public"):
            json.dumps(metric.to_dict(audience), allow_nan=False)


def numbers(value) -> list[float]:
    """Every number inside a JSON-like value."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return []


def plain(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Custody dtypes as SDMetrics reads them: numbers as float64, categories and events as strings."""
    out = pd.DataFrame(index=frame.index)
    for column in schema.kept:
        series = frame[column.name]
        if column.is_numeric:
            out[column.name] = series.astype("float64")
        else:
            out[column.name] = series.astype("object").where(series.notna(), None).map(
                lambda v: None if v is None else str(int(v)) if column.type == "event" else str(v))
    return out


@pytest.fixture(scope="module")
def copula_metrics(gbsg2_split, copula_synthetic, gbsg2_schema) -> dict:
    return by_key(fidelity.metrics(context(gbsg2_split, copula_synthetic, gbsg2_schema)))


@pytest.fixture(scope="module")
def sdmetrics_report(gbsg2_split, copula_synthetic, gbsg2_schema):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the single-table report is deprecated, still shipped
        from sdmetrics.reports.single_table import QualityReport

    train, holdout = gbsg2_split
    real = pd.concat([train, holdout], ignore_index=True)
    metadata = {"columns": {c.name: {"sdtype": "numerical" if c.is_numeric else "categorical"}
                            for c in gbsg2_schema.kept}}
    report = QualityReport()
    # SDMetrics ≥ 0.25 averages only the pairs whose *real* |r| > 0.5 or Cramér's V > 0.3; our score is
    # the Quality Report's mean over every pair (no real statistic chooses what counts): thresholds 0.
    report.real_correlation_threshold = 0
    report.real_association_threshold = 0
    report.generate(plain(real, gbsg2_schema), plain(copula_synthetic, gbsg2_schema), metadata, verbose=False)
    return report


# ---------------------------------------------------------------------------------------- the shape

def test_it_returns_every_key_with_its_range_and_direction(copula_metrics):
    assert list(copula_metrics) == KEYS
    for key, metric in copula_metrics.items():
        assert metric.applicable, (key, metric.reason)
        assert (metric.low, metric.high) == (0.0, 1.0)
        assert metric.better == ("lower" if key == "fidelity.detection_auc" else "higher")
        assert metric.description and metric.label
        assert 0.0 <= metric.value <= 1.0
    dumps(copula_metrics.values())


def test_an_honest_release_passes_the_fidelity_gate_and_is_hard_to_detect(copula_metrics):
    # A Gaussian copula keeps marginals and linear dependence: the paper's 0.85 gate passes with margin,
    # and a boosting classifier finds it only a little (measured 0.60 on seed 0).
    assert copula_metrics["fidelity.overall"].value >= 0.9
    assert copula_metrics["fidelity.csf"].value >= 0.9
    assert 0.5 <= copula_metrics["fidelity.detection_auc"].value <= 0.75


# --------------------------------------------------------------------- SDMetrics' Quality Report

def test_column_shapes_and_pair_trends_agree_with_sdmetrics(copula_metrics, sdmetrics_report):
    properties = sdmetrics_report.get_properties().set_index("Property")["Score"]
    shapes, trends = copula_metrics["fidelity.column_shapes"], copula_metrics["fidelity.column_pair_trends"]
    assert shapes.value == pytest.approx(properties["Column Shapes"], abs=SDMETRICS_TOLERANCE)
    assert trends.value == pytest.approx(properties["Column Pair Trends"], abs=SDMETRICS_TOLERANCE)
    assert copula_metrics["fidelity.overall"].value == pytest.approx(
        (properties["Column Shapes"] + properties["Column Pair Trends"]) / 2, abs=SDMETRICS_TOLERANCE)

    theirs = sdmetrics_report.get_details("Column Pair Trends")
    ours = {tuple(p["columns"]): p for p in trends.details["pairs"]}
    assert len(ours) == len(theirs) == 45  # every pair of GBSG2's ten columns
    for row in theirs.itertuples():
        pair = ours[(row[1], row[2])]
        assert pair["metric"] == row.Metric
        assert pair["score"] == pytest.approx(row.Score, abs=SDMETRICS_TOLERANCE), pair


def test_each_column_shape_agrees_with_sdmetrics_single_column_metrics(copula_metrics, gbsg2_split,
                                                                      copula_synthetic, gbsg2_schema):
    from sdmetrics.single_column import KSComplement, TVComplement

    real = plain(pd.concat(gbsg2_split, ignore_index=True), gbsg2_schema)
    synthetic = plain(copula_synthetic, gbsg2_schema)
    scores = copula_metrics["fidelity.column_shapes"].details["columns"]
    assert list(scores) == [c.name for c in gbsg2_schema.kept]
    for column in gbsg2_schema.kept:
        metric = KSComplement if column.is_numeric else TVComplement
        expected = metric.compute(real[column.name], synthetic[column.name])
        assert scores[column.name] == pytest.approx(expected, abs=SDMETRICS_TOLERANCE), column.name


def test_csf_averages_shapes_correlation_matrices_and_pca(copula_metrics):
    csf = copula_metrics["fidelity.csf"]
    trends = copula_metrics["fidelity.column_pair_trends"].details["pairs"]
    correlation = np.mean([p["score"] for p in trends if p["metric"] == "CorrelationSimilarity"])
    parts = csf.details["components"]
    assert parts == pytest.approx({"distributions": copula_metrics["fidelity.column_shapes"].value,
                                   "correlation_matrices": correlation,
                                   "pca": copula_metrics["fidelity.pca"].value}, abs=EXACT)
    assert csf.value == pytest.approx(np.mean(list(parts.values())), abs=EXACT)


def test_pca_keeps_the_fewest_components_reaching_80_percent(copula_metrics):
    pca = copula_metrics["fidelity.pca"]
    ratios = pca.real_details["explained_variance_ratio"]
    k = pca.details["components"]
    assert len(ratios) == len(pca.details["scores"]) == k
    assert 1 <= k <= 5
    assert sum(ratios) >= 0.8 or k == 5
    assert k == 1 or sum(ratios[:-1]) < 0.8
    assert pca.value == pytest.approx(np.mean(pca.details["scores"]), abs=EXACT)


# ------------------------------------------------------------------ identical and distinguishable

def test_identical_frames_score_one(gbsg2_split, gbsg2_schema):
    real = pd.concat(gbsg2_split, ignore_index=True)
    metrics = by_key(fidelity.metrics(context(gbsg2_split, real, gbsg2_schema)))
    for key in ("fidelity.column_shapes", "fidelity.column_pair_trends", "fidelity.overall", "fidelity.pca",
                "fidelity.csf", "fidelity.gsf", "fidelity.basic_statistics", "fidelity.support_coverage",
                "fidelity.log_correlation"):
        assert metrics[key].value == pytest.approx(1.0, abs=EXACT), key
    assert metrics["fidelity.gsf"].details["components"]["odds_ratios"] == 1.0


def test_two_halves_of_the_real_cohort_are_indistinguishable(gbsg2_table, gbsg2_schema):
    order = np.random.default_rng(0).permutation(len(gbsg2_table))
    first = gbsg2_table.iloc[order[:343]].reset_index(drop=True)
    second = gbsg2_table.iloc[order[343:]].reset_index(drop=True)
    ctx = EvalContext(train=first, holdout=first.iloc[:0], synthetic=second, schema=gbsg2_schema, seed=0)
    detection = by_key(fidelity.metrics(ctx))["fidelity.detection_auc"]
    # 343 rows a side: over 15 splits × 3 seeds the chance AUC measured 0.41–0.57 (mean 0.49: cross-
    # validated AUC runs slightly below 0.5 on exchangeable samples); 0.1 covers that spread
    assert detection.value == pytest.approx(0.5, abs=0.1)
    assert len(detection.details["fold_aucs"]) == 5
    assert detection.details["rows_per_class"] == 343


def test_shuffled_and_shifted_columns_are_detected(gbsg2_split, gbsg2_schema):
    real = pd.concat(gbsg2_split, ignore_index=True)
    rng = np.random.default_rng(5)
    fake = real.copy()
    for column in gbsg2_schema.kept:
        values = real[column.name].to_numpy()[rng.permutation(len(real))]
        if column.is_numeric:  # moved by a fifth of the public range, clipped to it
            moved = np.clip(values.astype("float64") + 0.2 * (column.max - column.min), column.min, column.max)
            values = pd.array(np.round(moved) if column.type == "integer" else moved, dtype=real[column.name].dtype)
        fake[column.name] = pd.Series(values, dtype=real[column.name].dtype)
    metrics = by_key(fidelity.metrics(context(gbsg2_split, fake, gbsg2_schema)))
    assert metrics["fidelity.detection_auc"].value > 0.9
    assert metrics["fidelity.overall"].value < 0.85  # and the gate stops it


# ---------------------------------------------------------------------- the papers' scores by hand

@pytest.fixture(scope="module")
def tiny() -> tuple[EvalContext, dict]:
    """Four real and four synthetic rows whose scores are worked out in the test below."""
    schema = Schema.from_dict({"columns": [
        {"name": "x", "type": "continuous", "min": 0, "max": 10},
        {"name": "y", "type": "continuous", "min": 0, "max": 10},
        {"name": "b1", "type": "categorical", "categories": ["no", "yes"]},
        {"name": "b2", "type": "event"},
    ]})

    def frame(x, y, b1, b2):
        return pd.DataFrame({"x": np.array(x, dtype="float64"), "y": np.array(y, dtype="float64"),
                             "b1": pd.Categorical(b1, categories=["no", "yes"]),
                             "b2": pd.array(b2, dtype="Int8")})

    real = frame([1, 2, 3, 4], [0, 0, 0, 0], ["yes", "yes", "no", "no"], [1, 0, 1, 0])
    synthetic = frame([2, 3, 4, 5], [1, 1, 1, 1], ["yes", "yes", "no", "no"], [1, 1, 0, 0])
    ctx = EvalContext(train=real, holdout=real.iloc[:0], synthetic=synthetic, schema=schema, seed=0)
    return ctx, by_key(fidelity.metrics(ctx))


def test_basic_statistics_by_hand(tiny):
    _, metrics = tiny
    basic = metrics["fidelity.basic_statistics"]
    # x moves by 1: mean and median 2.5 → 3.5 (error 0.4 each), same spread; y is 0 in the real rows, so
    # its errors are over the public range 10: mean and median 0.1, spread 0
    assert basic.details["columns"] == pytest.approx({"x": 1 - 0.8 / 3, "y": 1 - 0.2 / 3}, abs=EXACT)
    assert basic.value == pytest.approx(1 - 1.0 / 6, abs=EXACT)
    assert basic.real_details["columns"]["x"]["mean"] == pytest.approx(2.5)
    assert basic.synthetic_details["columns"]["x"]["mean"] == pytest.approx(3.5)


def test_support_coverage_by_hand(tiny):
    _, metrics = tiny
    coverage = metrics["fidelity.support_coverage"]
    # x: real bins 1-4 of width 1, synthetic 2-5, so bin 1 is lost; y: real bin 0, synthetic bin 1;
    # b1 as in the real rows; b2 has the same shares
    assert coverage.details["columns"] == pytest.approx({"x": 0.75, "y": 0.0, "b1": 1.0, "b2": 1.0}, abs=EXACT)
    assert coverage.value == pytest.approx(0.6875, abs=EXACT)


def test_gsf_by_hand(tiny):
    _, metrics = tiny
    gsf = metrics["fidelity.gsf"]
    # real (b1, b2): (1,1) (1,0) (0,1) (0,0); synthetic (1,1) (1,1) (0,0) (0,0).
    # shares 0.5 and 0.5 in both; positives per row real 1/4, 2/4, 1/4, synthetic 2/4, 0, 2/4 (TV 0.5);
    # P(both) 0.25 vs 0.5; log OR real 0, synthetic ln 25 = 3.22 with SE sqrt(2/2.5 + 2/0.5) = 2.19, so
    # both intervals hold 0: the pair agrees
    assert gsf.details["components"] == pytest.approx(
        {"frequencies": 1.0, "positives_per_row": 0.5, "cooccurrence": 0.75, "odds_ratios": 1.0}, abs=EXACT)
    assert gsf.value == pytest.approx(0.8125, abs=EXACT)
    assert gsf.synthetic_details["pairs"][0]["log_odds_ratio"] == pytest.approx(math.log(25), abs=EXACT)
    assert gsf.real_details["pairs"][0]["log_odds_ratio"] == pytest.approx(0.0, abs=EXACT)


def test_too_few_rows_for_detection_and_a_constant_column_in_pairs(tiny):
    _, metrics = tiny
    detection = metrics["fidelity.detection_auc"]
    assert not detection.applicable and "at least 10 rows" in detection.reason
    trends = metrics["fidelity.column_pair_trends"]
    assert {"columns": ["x", "y"], "reason": "a column has a single value, so its correlation is undefined"} \
        in trends.details["skipped"]
    assert all(p["columns"] != ["x", "y"] for p in trends.details["pairs"])
    # y is constant in both frames yet differs: its shape is a mismatch, not a skip
    assert metrics["fidelity.column_shapes"].details["columns"]["y"] == 0.0
    assert metrics["fidelity.csf"].details["left_out"] == {
        "correlation_matrices": "no pair of numeric columns has a defined correlation in both frames"}


def _log_error(real: float, synthetic: float) -> float:
    """TabSynDex's error of one ordered pair, written out again for the check."""
    def transformed(c):
        return math.copysign(1.0, c) * math.log(max(abs(c), 1e-6))
    lr, ls = transformed(real), transformed(synthetic)
    return min(1.0, abs(lr - ls) / max(abs(lr), 1e-6))


def test_log_correlation_follows_tabsyndex(copula_metrics, gbsg2_split, copula_synthetic):
    real = pd.concat(gbsg2_split, ignore_index=True)
    synthetic = copula_synthetic
    pairs = {tuple(p["columns"]): p["score"] for p in copula_metrics["fidelity.log_correlation"].details["pairs"]}
    assert len(pairs) == 45

    # two numbers: Pearson r (pandas)
    r_real, r_syn = real[["age", "pnodes"]].astype(float).corr().iloc[0, 1], \
        synthetic[["age", "pnodes"]].astype(float).corr().iloc[0, 1]
    assert pairs[("age", "pnodes")] == pytest.approx(1 - _log_error(r_real, r_syn), abs=EXACT)

    # a category and a number: the correlation ratio is the square root of R² of the number on the
    # category's dummies (least squares)
    def eta(frame):
        dummies = pd.get_dummies(frame["tgrade"]).to_numpy(dtype=float)
        y = frame["pnodes"].to_numpy(dtype=float)
        fitted = dummies @ np.linalg.lstsq(dummies, y, rcond=None)[0]
        return math.sqrt(1 - ((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    assert pairs[("tgrade", "pnodes")] == pytest.approx(1 - _log_error(eta(real), eta(synthetic)), abs=EXACT)

    # two categories: Theil's U both ways, U(x|y) = I(x; y) / H(x) (scikit-learn, scipy)
    def theil(frame, x, y):
        xs, ys = frame[x].astype(str), frame[y].astype(str)
        return mutual_info_score(xs, ys) / entropy(xs.value_counts())
    errors = [_log_error(theil(real, a, b), theil(synthetic, a, b)) for a, b in (("horTh", "tgrade"),
                                                                                ("tgrade", "horTh"))]
    assert pairs[("horTh", "tgrade")] == pytest.approx(1 - np.mean(errors), abs=EXACT)
    assert copula_metrics["fidelity.log_correlation"].value == pytest.approx(np.mean(list(pairs.values())),
                                                                             abs=EXACT)


# ------------------------------------------------------------------------------ degenerate cohorts

def test_gsf_needs_two_binary_columns(gbsg2_split, copula_synthetic):
    raw = schema_dict()
    raw["columns"] = [c for c in raw["columns"] if c["name"] not in ("horTh", "menostat")]
    schema = Schema.from_dict(raw)
    names = [c.name for c in schema.kept]
    train, holdout = (f[names] for f in gbsg2_split)
    metrics = by_key(fidelity.metrics(EvalContext(train, holdout, copula_synthetic[names], schema)))
    gsf = metrics["fidelity.gsf"]
    assert not gsf.applicable
    assert "at least two binary columns" in gsf.reason and "has 1" in gsf.reason
    assert metrics["fidelity.overall"].applicable
    dumps(metrics.values())


def test_constant_and_all_missing_columns_give_reasons_not_nan(nullable_table, nullable_schema, copula_synthetic):
    train, holdout = split(nullable_table)
    train, holdout, synthetic = (f.copy() for f in (train, holdout, copula_synthetic))
    for frame in (train, holdout, synthetic):
        frame["tsize"] = pd.array([pd.NA] * len(frame), dtype="Int64")  # nullable, all missing
        frame["age"] = pd.array([50] * len(frame), dtype="Int64")  # a single value in both frames
    names = [c.name for c in nullable_schema.kept]
    ctx = EvalContext(train[names], holdout[names], synthetic[names].reset_index(drop=True), nullable_schema)
    metrics = fidelity.metrics(ctx)
    dumps(metrics)
    found = by_key(metrics)
    assert all(m.applicable for m in metrics), [(m.key, m.reason) for m in metrics if not m.applicable]
    shapes = found["fidelity.column_shapes"]
    assert shapes.details["columns"]["age"] == 1.0  # the same single value in both frames
    assert "tsize" not in shapes.details["columns"]
    assert {"column": "tsize", "reason": "every value is missing in the real rows"} in shapes.details["skipped"]
    skipped_pairs = [s["columns"] for s in found["fidelity.column_pair_trends"].details["skipped"] if "columns" in s]
    assert ["age", "pnodes"] in skipped_pairs
    assert ["age", "pnodes"] in [s["columns"] for s in found["fidelity.log_correlation"].details["skipped"]
                                 if "columns" in s]


def test_missing_synthetic_values_are_a_category_in_pairs_and_coverage(gbsg2_split, copula_synthetic, gbsg2_schema):
    synthetic = copula_synthetic.copy()
    synthetic["pnodes"] = pd.array([pd.NA] * len(synthetic), dtype="Int64")
    found = by_key(fidelity.metrics(context(gbsg2_split, synthetic, gbsg2_schema)))
    dumps(found.values())
    assert {"column": "pnodes", "reason": "every value is missing in the synthetic rows"} in \
        found["fidelity.column_shapes"].details["skipped"]
    assert found["fidelity.support_coverage"].details["columns"]["pnodes"] == 0.0
    contingency = [p for p in found["fidelity.column_pair_trends"].details["pairs"] if "pnodes" in p["columns"]]
    assert contingency and all(p["score"] < 0.01 for p in contingency)  # every synthetic row in the "missing" cell


def test_an_empty_synthetic_frame_makes_every_metric_not_applicable(gbsg2_split, copula_synthetic, gbsg2_schema):
    metrics = fidelity.metrics(context(gbsg2_split, copula_synthetic.iloc[:0], gbsg2_schema))
    assert [m.key for m in metrics] == KEYS
    assert all(not m.applicable and m.reason == "the synthetic frame has no rows" for m in metrics)
    dumps(metrics)


# ------------------------------------------------------------------------------------------ privacy

def test_real_statistics_stay_in_real_details(copula_metrics, gbsg2_split, copula_synthetic, gbsg2_schema):
    real = pd.concat(gbsg2_split, ignore_index=True)
    secrets, synthetic_statistics = [], []
    for column in gbsg2_schema.kept:
        if column.is_numeric:
            for frame, out in ((real, secrets), (copula_synthetic, synthetic_statistics)):
                values = frame[column.name].astype(float)
                out += [values.mean(), values.median(), values.std(ddof=0)]
    # an integer median can be the same in both frames (tsize: 25); that value is the synthetic one too
    secrets = [x for x in secrets if not any(math.isclose(x, y) for y in synthetic_statistics)]
    assert len(secrets) >= 15
    secrets += [p["r"] for p in copula_metrics["fidelity.column_pair_trends"].real_details["correlations"]]
    secrets += copula_metrics["fidelity.pca"].real_details["explained_variance_ratio"]
    secrets += [p["log_odds_ratio"] for p in copula_metrics["fidelity.gsf"].real_details["pairs"]]
    for metric in copula_metrics.values():
        public = metric.to_dict("public")
        assert "real_details" not in public and "details" not in public  # breakdowns stay with the custodian
        shown = numbers(public["synthetic_details"]) + numbers(public["value"])
        for secret in secrets:
            assert not any(math.isclose(secret, x, rel_tol=1e-9, abs_tol=1e-12) for x in shown), (metric.key, secret)
    basic = copula_metrics["fidelity.basic_statistics"]
    assert basic.real_details["columns"]["age"]["mean"] == pytest.approx(real["age"].astype(float).mean())
