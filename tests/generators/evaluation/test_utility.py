"""The utility section: train on synthetic, test on the real holdout, against train on real."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from clearinghouse.schema import Schema
from generators.core.evaluation import survival, utility
from generators.core.evaluation.encoding import encode
from generators.core.evaluation.report import EvalContext, Metric

KEYS = ["utility.classification_auc_synthetic", "utility.classification_auc_real", "utility.classification_ratio",
        "utility.c_index_ratio"]
CLASSIFICATION = KEYS[:3]


def run(train, holdout, synthetic, schema, target, seed: int = 0) -> dict[str, Metric]:
    ctx = EvalContext(train=train, holdout=holdout, synthetic=synthetic, schema=schema, target=target, seed=seed)
    metrics = utility.metrics(ctx)
    assert [m.key for m in metrics] == KEYS
    for metric in metrics:  # no NaN, no numpy: the custodian view is strict JSON
        json.dumps(metric.to_dict("custodian"), allow_nan=False)
    return {m.key: m for m in metrics}


@pytest.fixture
def no_cox(monkeypatch):
    """The classification tests do not pay for Cox fits."""
    monkeypatch.setattr(survival, "cox_c_indices", lambda ctx: "skipped in this test", raising=False)


def test_the_training_rows_as_release_score_exactly_one(gbsg2_split, gbsg2_schema, no_cox):
    train, holdout = gbsg2_split
    for target in ("cens", "tgrade"):
        metrics = run(train, holdout, train.copy(), gbsg2_schema, target)
        assert metrics["utility.classification_ratio"].value == 1.0  # exact: same rows, model and seed
        assert metrics["utility.classification_auc_synthetic"].value == metrics["utility.classification_auc_real"].value


def test_binary_auc_is_the_holdout_auc_of_the_same_model(gbsg2_split, gbsg2_schema, copula_synthetic, no_cox):
    train, holdout = gbsg2_split
    metrics = run(train, holdout, copula_synthetic, gbsg2_schema, "cens")
    synthetic_auc = metrics["utility.classification_auc_synthetic"]
    # The event target drops the duration (it would give the outcome away) and itself.
    features = [c for c in gbsg2_schema.kept if c.name not in ("cens", "time")]
    assert synthetic_auc.details["features"] == [c.name for c in features]
    for frame, metric in ((copula_synthetic, synthetic_auc), (train, metrics["utility.classification_auc_real"])):
        model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
        model.fit(encode(frame, gbsg2_schema, features), frame["cens"].astype(int).to_numpy())
        expected = roc_auc_score(holdout["cens"].astype(int), model.predict_proba(encode(holdout, gbsg2_schema,
                                                                                         features))[:, 1])
        assert metric.value == pytest.approx(expected, abs=1e-12)  # the same model on the same rows
    ratio = metrics["utility.classification_ratio"].value
    assert ratio == pytest.approx(synthetic_auc.value / metrics["utility.classification_auc_real"].value, abs=1e-12)
    # Measured on GBSG2: AUC 0.574 trained on the copula's rows, 0.652 on the real ones, ratio 0.88.
    assert 0.5 < ratio < 1.2
    assert synthetic_auc.synthetic_details["class_counts"] == {
        "0": int((copula_synthetic["cens"] == 0).sum()), "1": int((copula_synthetic["cens"] == 1).sum())}
    assert "real_details" not in synthetic_auc.to_dict("public")


def test_multiclass_auc_is_the_macro_one_versus_rest(gbsg2_split, gbsg2_schema, copula_synthetic, no_cox):
    train, holdout = gbsg2_split
    metric = run(train, holdout, copula_synthetic, gbsg2_schema, "tgrade")["utility.classification_auc_synthetic"]
    features = [c for c in gbsg2_schema.kept if c.name != "tgrade"]  # the survival pair stays: not the target
    iterations = metric.details["boosting_iterations"]
    assert iterations == 66  # 200 trees / 3 classes
    model = HistGradientBoostingClassifier(max_iter=iterations, random_state=0)
    model.fit(encode(copula_synthetic, gbsg2_schema, features), copula_synthetic["tgrade"].astype(str))
    proba = model.predict_proba(encode(holdout, gbsg2_schema, features))
    expected = roc_auc_score(holdout["tgrade"].astype(str), proba, multi_class="ovr", average="macro")
    assert metric.value == pytest.approx(expected, abs=1e-12)  # every class present on both sides


def test_a_class_the_release_lacks_scores_one_half(gbsg2_split, gbsg2_schema, copula_synthetic, no_cox):
    train, holdout = gbsg2_split
    without = copula_synthetic[copula_synthetic["tgrade"] != "I"].reset_index(drop=True)
    metrics = run(train, holdout, without, gbsg2_schema, "tgrade")
    per_class = metrics["utility.classification_auc_synthetic"].details["per_class_auc"]
    assert set(per_class) == {"I", "II", "III"} and per_class["I"] == 0.5  # exact: a constant score
    assert metrics["utility.classification_auc_synthetic"].value == pytest.approx(np.mean(list(per_class.values())))
    assert metrics["utility.classification_ratio"].applicable


def test_no_target_or_a_single_class_is_not_applicable(gbsg2_split, gbsg2_schema, copula_synthetic, no_cox):
    train, holdout = gbsg2_split
    metrics = run(train, holdout, copula_synthetic, gbsg2_schema, None)
    assert all(not metrics[k].applicable and "no target" in metrics[k].reason for k in CLASSIFICATION)

    one_class = copula_synthetic[copula_synthetic["cens"] == 0].reset_index(drop=True)
    metrics = run(train, holdout, one_class, gbsg2_schema, "cens")
    assert not metrics["utility.classification_auc_synthetic"].applicable
    assert "synthetic rows hold a single class" in metrics["utility.classification_auc_synthetic"].reason
    assert metrics["utility.classification_auc_real"].applicable  # the real side is unaffected
    assert not metrics["utility.classification_ratio"].applicable

    metrics = run(train, holdout[holdout["cens"] == 1], copula_synthetic, gbsg2_schema, "cens")
    assert all(not metrics[k].applicable and "holdout rows hold a single class" in metrics[k].reason
               for k in CLASSIFICATION)

    metrics = run(train, holdout, copula_synthetic, gbsg2_schema, "age")
    assert all(not metrics[k].applicable and "not a categorical or event" in metrics[k].reason for k in CLASSIFICATION)

    metrics = run(train, holdout, copula_synthetic.iloc[:0], gbsg2_schema, "cens")
    assert "no synthetic rows" in metrics["utility.classification_auc_synthetic"].reason


def test_missing_target_values_are_left_out(gbsg2_split, gbsg2_schema, copula_synthetic, no_cox):
    raw = gbsg2_schema.to_dict()
    for column in raw["columns"]:
        if column["name"] == "tgrade":
            column["nullable"] = True
    schema = Schema.from_dict(raw)
    train, holdout = gbsg2_split
    blanked = holdout.copy()
    blanked.loc[::4, "tgrade"] = np.nan
    metrics = run(train, blanked, copula_synthetic, schema, "tgrade")
    kept = blanked[blanked["tgrade"].notna()].reset_index(drop=True)
    expected = run(train, kept, copula_synthetic, schema, "tgrade")
    for key in CLASSIFICATION:  # the rows without a target do not count, and nothing else changes
        assert metrics[key].value == pytest.approx(expected[key].value, abs=1e-12)

    blanked["tgrade"] = pd.Categorical([None] * len(blanked), categories=list(schema["tgrade"].categories))
    metrics = run(train, blanked, copula_synthetic, schema, "tgrade")
    assert all("missing in every holdout row" in metrics[k].reason for k in CLASSIFICATION)


def test_too_many_classes_is_not_applicable(gbsg2_split, gbsg2_schema, copula_synthetic, no_cox, monkeypatch):
    monkeypatch.setattr(utility, "MAX_CLASSES", 2)
    train, holdout = gbsg2_split
    metrics = run(train, holdout, copula_synthetic, gbsg2_schema, "tgrade")
    assert all("3 classes" in metrics[k].reason for k in CLASSIFICATION)


# ------------------------------------------------------------------------------------------- C-index
def test_c_index_ratio_from_the_survival_section(gbsg2_split, gbsg2_schema, copula_synthetic, monkeypatch):
    train, holdout = gbsg2_split
    monkeypatch.setattr(survival, "cox_c_indices", lambda ctx: (0.70, 0.63), raising=False)
    metric = run(train, holdout, copula_synthetic, gbsg2_schema, "cens")["utility.c_index_ratio"]
    assert metric.value == pytest.approx(0.9, abs=1e-12)  # 0.63 / 0.70
    assert metric.details == {"c_index_synthetic": 0.63, "c_index_real": 0.70}

    monkeypatch.setattr(survival, "cox_c_indices", lambda ctx: "too few events in the holdout")
    metric = run(train, holdout, copula_synthetic, gbsg2_schema, "cens")["utility.c_index_ratio"]
    assert not metric.applicable and metric.reason == "too few events in the holdout"

    monkeypatch.delattr(survival, "cox_c_indices")
    metric = run(train, holdout, copula_synthetic, gbsg2_schema, "cens")["utility.c_index_ratio"]
    assert not metric.applicable and "not available" in metric.reason


def test_c_index_ratio_on_gbsg2(gbsg2_split, gbsg2_schema, copula_synthetic):
    if not hasattr(survival, "cox_c_indices"):
        pytest.skip("the survival section has no cox_c_indices yet")
    train, holdout = gbsg2_split
    ctx = EvalContext(train=train, holdout=holdout, synthetic=copula_synthetic, schema=gbsg2_schema, target="cens")
    c_real, c_synthetic = survival.cox_c_indices(ctx)
    metric = {m.key: m for m in utility.metrics(ctx)}["utility.c_index_ratio"]
    assert metric.value == pytest.approx(c_synthetic / c_real, abs=1e-12)  # the quotient, nothing else
    assert 0.7 < metric.value < 1.3  # an honest copula ranks the holdout roughly as well as the real rows
