"""The survival section against lifelines computed directly, on GBSG2 (80/20 split) and an honest
copula release, plus the degenerate cohorts that must give reasons instead of NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index

from clearinghouse.schema import Schema
from generators.core.evaluation import survival
from generators.core.evaluation.report import EvalContext
from tests.generators.conftest import schema_dict

KEYS = [f"survival.{name}" for name in survival.NAMES]
COVARIATES = ["horTh", "age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec"]
#: lifelines stops Newton–Raphson once half the Newton decrement is below 1e-7, a few 1e-5 short of the
#: maximum in HR; run to the maximum so that the two fits can be compared to 1e-6.
TIGHT = {"precision": 1e-12, "r_precision": 1e-15}


def cox(frame: pd.DataFrame) -> pd.DataFrame:
    """lifelines' unpenalised fit of columns T, E and the covariates, run to convergence."""
    return CoxPHFitter().fit(frame, "T", "E", fit_options=TIGHT).summary


def context(gbsg2_split, synthetic: pd.DataFrame, schema: Schema) -> EvalContext:
    train, holdout = gbsg2_split
    return EvalContext(train=train, holdout=holdout, synthetic=synthetic.reset_index(drop=True), schema=schema)


def by_key(metrics) -> dict:
    return {m.key: m for m in metrics}


def dumps(metrics) -> None:
    """Every audience's view is plain JSON without NaN."""
    for metric in metrics:
        for audience in ("custodian", "public"):
            json.dumps(metric.to_dict(audience), allow_nan=False)


def dummies(frame: pd.DataFrame) -> pd.DataFrame:
    """GBSG2's covariates as the Cox models see them: numbers per unit, dummies against the first category."""
    out = frame[["age", "tsize", "pnodes", "progrec", "estrec"]].astype("float64")
    for column, levels in (("horTh", ["yes"]), ("menostat", ["Post"]), ("tgrade", ["II", "III"])):
        for level in levels:
            out[f"{column}={level}"] = (frame[column].astype(str) == level).astype("float64")
    return out


def surv(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame["time"].to_numpy("float64"), frame["cens"].to_numpy("int64")


@pytest.fixture(scope="module")
def honest(gbsg2_split, copula_synthetic, gbsg2_schema):
    ctx = context(gbsg2_split, copula_synthetic, gbsg2_schema)
    return ctx, by_key(survival.metrics(ctx))


def test_it_returns_every_key_in_order_with_its_range(honest):
    _, metrics = honest
    assert list(metrics) == KEYS
    for metric in metrics.values():
        assert metric.applicable, metric.reason
        assert (metric.low, metric.high, metric.better) == (0.0, 1.0, "higher")
        assert 0.0 <= metric.value <= 1.0 and metric.description
    dumps(metrics.values())


def test_the_km_curves_are_lifelines_kaplan_meier(honest):
    ctx, metrics = honest
    metric = metrics["survival.km_divergence"]
    for frame, curve in ((ctx.real, metric.real_details["km"]), (ctx.synthetic, metric.synthetic_details["km"])):
        fitter = KaplanMeierFitter().fit(*surv(frame))
        times = np.asarray(curve["times"])
        assert 2 < len(times) <= survival.CURVE_POINTS
        assert times[0] == 0 and times[-1] == frame["time"].max()
        expected = fitter.survival_function_.loc[times].to_numpy()[:, 0]
        band = fitter.confidence_interval_.loc[times].to_numpy()
        np.testing.assert_allclose(curve["survival"], expected, rtol=0, atol=1e-9)  # tolerance: 1e-9, same numbers
        np.testing.assert_allclose(curve["lower"], band[:, 0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(curve["upper"], band[:, 1], rtol=0, atol=1e-9)


def test_the_km_divergence_is_the_time_averaged_gap(honest):
    """Against a brute-force fine grid: the exact step integral and a 200 001-point grid agree to 1e-4."""
    ctx, metrics = honest
    real, synthetic = (KaplanMeierFitter().fit(*surv(f)) for f in (ctx.real, ctx.synthetic))
    horizon = min(ctx.real["time"].max(), ctx.synthetic["time"].max())
    grid = np.linspace(0, horizon, 200_001)
    gap = synthetic.survival_function_at_times(grid).to_numpy() - real.survival_function_at_times(grid).to_numpy()
    assert metrics["survival.km_divergence"].value == pytest.approx(1 - np.abs(gap).mean(), abs=1e-4)
    assert metrics["survival.optimism"].details["signed_optimism"] == pytest.approx(gap.mean(), abs=1e-4)
    assert metrics["survival.optimism"].value == pytest.approx(1 - abs(gap.mean()), abs=1e-4)
    shortfall = max(0.0, 1 - ctx.synthetic["time"].max() / ctx.real["time"].max())
    assert metrics["survival.short_sightedness"].value == pytest.approx(1 - shortfall, abs=1e-12)  # exact formula
    # An honest copula keeps the curve: the AML paper's releases scored 0.97–0.98.
    assert metrics["survival.km_divergence"].value > 0.9


def test_the_logrank_p_is_lifelines(honest):
    ctx, metrics = honest
    (t_real, e_real), (t_syn, e_syn) = surv(ctx.real), surv(ctx.synthetic)
    expected = logrank_test(t_real, t_syn, event_observed_A=e_real, event_observed_B=e_syn)
    metric = metrics["survival.logrank_p"]
    assert metric.value == pytest.approx(expected.p_value, rel=1e-9)  # tolerance: same computation
    assert metric.details["test_statistic"] == pytest.approx(expected.test_statistic, rel=1e-9)


def test_the_median_follow_up_is_the_reverse_kaplan_meier_median(honest):
    ctx, metrics = honest
    medians = {}
    for who, frame in (("real", ctx.real), ("synthetic", ctx.synthetic)):
        time, event = surv(frame)
        medians[who] = KaplanMeierFitter().fit(time, 1 - event).median_survival_time_
    metric = metrics["survival.median_follow_up"]
    assert metric.real_details["median_follow_up"] == medians["real"]  # exact: the same lifelines call
    assert metric.synthetic_details["median_follow_up"] == medians["synthetic"]
    assert metric.value == pytest.approx(1 - min(1, abs(medians["synthetic"] - medians["real"]) / medians["real"]),
                                         abs=1e-12)


@pytest.mark.parametrize("who", ["real", "synthetic"])
def test_every_univariable_hr_is_a_coxphfitter_fit(honest, who):
    ctx, metrics = honest
    frame = ctx.real if who == "real" else ctx.synthetic
    metric = metrics["survival.cox_sign_agreement"]
    table = (metric.real_details if who == "real" else metric.synthetic_details)["covariates"]
    x = dummies(frame)
    groups = {c: [n for n in x.columns if n == c or n.startswith(f"{c}=")] for c in COVARIATES}
    assert set(table) == set(x.columns) and metric.details["skipped"] == {}
    time, event = surv(frame)
    for column, names in groups.items():
        fit = cox(x[names].assign(T=time, E=event))
        for name in names:
            got = table[name]
            # tolerance: rel 1e-6 on HR, its interval and p (both fits are at the maximum to ~1e-9)
            assert got["hr"] == pytest.approx(fit.loc[name, "exp(coef)"], rel=1e-6)
            assert got["ci_low"] == pytest.approx(fit.loc[name, "exp(coef) lower 95%"], rel=1e-6)
            assert got["ci_high"] == pytest.approx(fit.loc[name, "exp(coef) upper 95%"], rel=1e-6)
            assert got["p"] == pytest.approx(fit.loc[name, "p"], rel=1e-6)


def test_agreement_is_the_share_of_matching_hazard_ratios(honest):
    _, metrics = honest
    sign, significance = metrics["survival.cox_sign_agreement"], metrics["survival.cox_significance_agreement"]
    real, synthetic = sign.real_details["covariates"], sign.synthetic_details["covariates"]
    same_side = [(real[k]["hr"] > 1) == (synthetic[k]["hr"] > 1) for k in real]
    same_verdict = [(real[k]["p"] < 0.05) == (synthetic[k]["p"] < 0.05) for k in real]
    assert sign.value == pytest.approx(np.mean(same_side), abs=1e-12)  # exact share
    assert significance.value == pytest.approx(np.mean(same_verdict), abs=1e-12)
    assert sign.details["compared"] == 9 and sign.details["covariates"]["tgrade=III"]["reference"] == "I"
    # pnodes is GBSG2's strongest prognostic factor: the copula keeps its direction and significance.
    assert sign.details["covariates"]["pnodes"] == {"agree_sign": True, "agree_significance": True}


def test_the_c_indices_are_concordance_of_cox_models_on_the_holdout(honest):
    ctx, metrics = honest
    h_time, h_event = surv(ctx.holdout)
    expected = []
    for frame in (ctx.train, ctx.synthetic):
        x = dummies(frame)
        model = CoxPHFitter(penalizer=survival.PENALIZER).fit(x.assign(T=surv(frame)[0], E=surv(frame)[1]), "T", "E")
        expected.append(concordance_index(h_time, -model.predict_partial_hazard(dummies(ctx.holdout)), h_event))
    # tolerance: 1e-9, the same lifelines fit on the same design
    assert metrics["survival.c_index_real"].value == pytest.approx(expected[0], abs=1e-9)
    assert metrics["survival.c_index_synthetic"].value == pytest.approx(expected[1], abs=1e-9)
    assert survival.cox_c_indices(ctx) == (metrics["survival.c_index_real"].value,
                                           metrics["survival.c_index_synthetic"].value)
    assert 0.6 < expected[0] < 0.8  # GBSG2's usual discrimination


def test_the_indicator_model_is_a_coxphfitter_fit(honest):
    ctx, metrics = honest
    rows = pd.concat([ctx.real.assign(synthetic=0.0), ctx.synthetic.assign(synthetic=1.0)], ignore_index=True)
    time, event = surv(rows)
    fit = cox(pd.DataFrame({"synthetic": rows["synthetic"], "T": time, "E": event}))
    metric = metrics["survival.indicator_p"]
    assert metric.value == pytest.approx(fit.loc["synthetic", "p"], rel=1e-6)  # tolerance: as the univariable fits
    assert metric.details["hr"] == pytest.approx(fit.loc["synthetic", "exp(coef)"], rel=1e-6)


def test_a_copy_of_the_real_rows_scores_one(gbsg2_split, gbsg2_schema):
    train, holdout = gbsg2_split
    ctx = context(gbsg2_split, pd.concat([train, holdout], ignore_index=True), gbsg2_schema)
    metrics = by_key(survival.metrics(ctx))
    for key in ("km_divergence", "optimism", "short_sightedness", "median_follow_up", "cox_sign_agreement",
                "cox_significance_agreement"):
        assert metrics[f"survival.{key}"].value == pytest.approx(1.0, abs=1e-12), key  # identical cohorts: exact
    assert metrics["survival.logrank_p"].value == pytest.approx(1.0, abs=1e-9)  # statistic 0 up to rounding
    assert metrics["survival.indicator_p"].value == pytest.approx(1.0, abs=1e-6)  # coefficient 0 up to Newton's 1e-10


def test_halved_durations_look_pessimistic_and_short_sighted(gbsg2_split, gbsg2_schema):
    train, holdout = gbsg2_split
    real = pd.concat([train, holdout], ignore_index=True)
    metrics = by_key(survival.metrics(context(gbsg2_split, real.assign(time=real["time"] / 2), gbsg2_schema)))
    assert metrics["survival.short_sightedness"].value == pytest.approx(0.5, abs=1e-12)  # T_syn = T_real / 2
    assert metrics["survival.km_divergence"].value < 0.9  # events come twice as fast: a gap of ≥ 0.1 on average
    assert metrics["survival.optimism"].details["signed_optimism"] < -0.1
    assert metrics["survival.optimism"].value < 0.9
    assert metrics["survival.logrank_p"].value < 1e-6
    assert metrics["survival.median_follow_up"].value == pytest.approx(0.5, abs=1e-12)  # the median halves too
    # Halving every time keeps the order of events: the hazard ratios keep their direction.
    assert metrics["survival.cox_sign_agreement"].value == 1.0


def test_without_a_survival_pair_nothing_applies(gbsg2_split, gbsg2_schema, copula_synthetic):
    raw = schema_dict()
    raw.pop("survival")
    schema = Schema.from_dict(raw)
    ctx = context(gbsg2_split, copula_synthetic, schema)
    metrics = survival.metrics(ctx)
    assert [m.key for m in metrics] == KEYS
    assert all(not m.applicable and m.value is None and m.reason == "the schema has no survival pair" for m in metrics)
    assert survival.cox_c_indices(ctx) == "the schema has no survival pair"
    dumps(metrics)


@pytest.mark.parametrize("events, reason", [(0, "the synthetic rows have no events"),
                                             (5, "the synthetic rows have fewer than 10 events")])
def test_too_few_synthetic_events_is_not_applicable(gbsg2_split, gbsg2_schema, copula_synthetic, events, reason):
    synthetic = copula_synthetic.copy()
    synthetic["cens"] = pd.array([1] * events + [0] * (len(synthetic) - events), dtype="Int8")
    ctx = context(gbsg2_split, synthetic, gbsg2_schema)
    metrics = by_key(survival.metrics(ctx))
    assert list(metrics) == KEYS
    for key, metric in metrics.items():
        if key == "survival.c_index_real":  # fitted on the training rows: unaffected
            assert metric.applicable and 0.6 < metric.value < 0.8
        else:
            assert not metric.applicable and metric.reason == reason, key
    assert survival.cox_c_indices(ctx) == reason
    dumps(metrics.values())


def test_constant_covariates_are_skipped_with_a_reason(gbsg2_split, gbsg2_schema, copula_synthetic):
    synthetic = copula_synthetic.assign(age=pd.array([50] * len(copula_synthetic), dtype="Int64"))
    synthetic["tgrade"] = synthetic["tgrade"].where(synthetic["tgrade"] != "I", "II")
    metrics = by_key(survival.metrics(context(gbsg2_split, synthetic, gbsg2_schema)))
    sign = metrics["survival.cox_sign_agreement"]
    assert sign.details["skipped"] == {"age": "cannot be estimated on the synthetic rows: it is constant",
                                       "tgrade=I": "the level does not occur in the synthetic rows"}
    # tgrade I is gone: II becomes the reference and III is compared against it.
    assert sign.details["covariates"]["tgrade=III"]["reference"] == "II"
    assert "age" not in sign.details["covariates"] and sign.details["compared"] == 7
    assert metrics["survival.c_index_synthetic"].details["skipped"] == {"age": "constant in the fitting rows"}
    dumps(metrics.values())


def test_missing_covariates_drop_rows_for_that_fit_only(nullable_table, nullable_schema, copula_synthetic):
    from tests.generators.evaluation.conftest import split

    train, holdout = split(nullable_table[[c.name for c in nullable_schema.kept]])
    ctx = EvalContext(train=train, holdout=holdout, synthetic=copula_synthetic, schema=nullable_schema)
    metrics = by_key(survival.metrics(ctx))
    real = metrics["survival.cox_sign_agreement"].real_details["covariates"]
    present = ctx.real[ctx.real["tsize"].notna()]
    fit = cox(pd.DataFrame({"tsize": present["tsize"].astype(float), "T": surv(present)[0], "E": surv(present)[1]}))
    assert real["tsize"]["hr"] == pytest.approx(fit.loc["tsize", "exp(coef)"], rel=1e-6)  # tolerance as above
    # The other covariates still use every row: age matches a fit on the whole cohort.
    whole = cox(pd.DataFrame({"age": ctx.real["age"].astype(float), "T": surv(ctx.real)[0], "E": surv(ctx.real)[1]}))
    assert real["age"]["hr"] == pytest.approx(whole.loc["age", "exp(coef)"], rel=1e-6)
    assert metrics["survival.c_index_real"].applicable  # the holdout's missing sizes take the training median
    dumps(metrics.values())


def test_real_statistics_stay_out_of_the_public_view(honest):
    _, metrics = honest
    public = json.dumps([m.to_dict("public") for m in metrics.values()])
    real = metrics["survival.cox_sign_agreement"].real_details["covariates"]
    assert real and "real_details" not in public
    for item in real.values():
        for field in ("hr", "ci_low", "ci_high", "p"):
            assert json.dumps(item[field]) not in public
    km = metrics["survival.km_divergence"].real_details
    assert json.dumps(km["max_time"]) not in json.dumps(metrics["survival.km_divergence"].to_dict("public"))


def test_a_diverging_fit_is_refused():
    """A covariate that orders the events perfectly has no finite MLE (complete separation)."""
    time = np.arange(1.0, 41.0)
    event = np.ones(40, dtype=bool)
    with pytest.raises(ValueError, match="separation"):
        survival.efron_cox(time, event, -time)
    with pytest.raises(ValueError, match="constant"):
        survival.efron_cox(time, event, np.ones(40))
    coef, se = survival.efron_cox(time, event, np.sin(time))
    assert math.isfinite(coef[0]) and se[0] > 0
