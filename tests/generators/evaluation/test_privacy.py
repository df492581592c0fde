"""The privacy section: exact matches, DCR, NNDR, the Hamming leakage coefficient and the
membership-inference AUC, checked against brute force on small frames and against the gates on
an honest and a leaking release of GBSG2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from clearinghouse.schema import Schema
from generators.core.evaluation import privacy
from generators.core.evaluation.encoding import encode, hamming_codes
from generators.core.evaluation.gates import check_gates
from generators.core.evaluation.report import EvalContext, Metric, Report

from .conftest import noisy_copy, split

KEYS = ["privacy.ims", "privacy.dcr_ratio", "privacy.nndr", "privacy.leakage_coefficient", "privacy.mia_auc"]


def run(train, holdout, synthetic, schema, seed: int = 0) -> dict[str, Metric]:
    ctx = EvalContext(train=train, holdout=holdout, synthetic=synthetic, schema=schema, seed=seed)
    metrics = privacy.metrics(ctx)
    assert [m.key for m in metrics] == KEYS
    for metric in metrics:  # no NaN, no numpy: the custodian view is strict JSON
        json.dumps(metric.to_dict("custodian"), allow_nan=False)
    return {m.key: m for m in metrics}


def gate_results(metrics: dict[str, Metric]) -> dict[str, object]:
    stub = Metric(key="fidelity.overall", label="stub", value=0.95, low=0.0, high=1.0, better="higher")
    report = Report(sections={"fidelity": [stub], "privacy": list(metrics.values())})
    return {result.gate: result for result in check_gates(report)}


@pytest.fixture(scope="module")
def small(gbsg2_table, gbsg2_schema, copula_synthetic):
    """40 training, 10 holdout and 25 synthetic rows: small enough for brute force."""
    return gbsg2_table.iloc[:40].reset_index(drop=True), gbsg2_table.iloc[40:50].reset_index(drop=True), \
        copula_synthetic.iloc[:25].reset_index(drop=True)


def brute_subsets(n_train: int, n_holdout: int, seed: int) -> np.ndarray:
    k = n_train // n_holdout
    return np.random.default_rng(seed).permutation(n_train)[: k * n_holdout].reshape(k, n_holdout)


# ------------------------------------------------------------------------------------------- IMS
def test_planted_copies_are_counted_exactly(gbsg2_split, gbsg2_schema, copula_synthetic):
    train, holdout = gbsg2_split
    rng = np.random.default_rng(7)
    planted = train.iloc[rng.choice(len(train), 10, replace=False)]
    synthetic = pd.concat([copula_synthetic.iloc[10:], planted], ignore_index=True)
    synthetic = synthetic.iloc[rng.permutation(len(synthetic))].reset_index(drop=True)
    ims = run(train, holdout, synthetic, gbsg2_schema)["privacy.ims"]
    assert ims.value == 10 / len(synthetic)  # exact
    assert ims.real_details["matches"] == 10 and ims.real_details["training_rows_copied"] == 10
    assert ims.real_details["holdout_matches"] == 0


def test_exact_copy_has_ims_one(gbsg2_split, gbsg2_schema):
    train, holdout = gbsg2_split
    metrics = run(train, holdout, noisy_copy(train, gbsg2_schema, jitter=0.0), gbsg2_schema)
    assert metrics["privacy.ims"].value == 1.0
    assert metrics["privacy.ims"].real_details["matches"] == len(train)
    assert metrics["privacy.nndr"].value == 0.0  # every synthetic row sits on one training row
    assert metrics["privacy.mia_auc"].value == 1.0  # members at distance 0, non-members above


def test_missing_equals_missing_and_nothing_else(nullable_table, nullable_schema):
    train, holdout = split(nullable_table)
    blank = train[train["tsize"].isna()].iloc[:3]
    filled = train[train["tsize"].notna()].iloc[:4].copy()
    filled["tsize"] = pd.array([pd.NA] * 4, dtype="Int64")  # a value turned missing is no longer a copy
    nudged = train.iloc[10:12].copy()
    nudged["time"] = nudged["time"] + 1.0
    synthetic = pd.concat([blank, filled, nudged], ignore_index=True)
    ims = run(train, holdout, synthetic, nullable_schema)["privacy.ims"]
    # No two GBSG2 rows agree even outside tsize, so the blanked and nudged rows match nothing.
    assert ims.real_details["matches"] == 3
    assert ims.value == 3 / 9  # exact


# -------------------------------------------------------------------------------- distances
def test_dcr_nndr_and_mia_match_brute_force(small, gbsg2_schema):
    train, holdout, synthetic = small
    metrics = run(train, holdout, synthetic, gbsg2_schema, seed=5)
    e_train, e_holdout, e_syn = (encode(f, gbsg2_schema) for f in (train, holdout, synthetic))
    groups = brute_subsets(len(train), len(holdout), seed=5)
    assert groups.shape == (4, 10)

    to_train = cdist(e_syn, e_train)
    dcr_train = np.mean([np.median(to_train[:, g].min(axis=1)) for g in groups])
    dcr_holdout = np.median(cdist(e_syn, e_holdout).min(axis=1))
    dcr = metrics["privacy.dcr_ratio"]
    assert dcr.value == pytest.approx(dcr_train / dcr_holdout, abs=1e-9)  # same sums, another order
    assert dcr.real_details["dcr_train_median"] == pytest.approx(dcr_train, abs=1e-9)
    assert dcr.real_details["dcr_holdout_median"] == pytest.approx(dcr_holdout, abs=1e-9)

    two = np.sort(to_train, axis=1)[:, :2]
    ratios = np.where(two[:, 1] > 0, two[:, 0] / np.where(two[:, 1] > 0, two[:, 1], 1.0), 1.0)
    assert metrics["privacy.nndr"].value == pytest.approx(np.median(ratios), abs=1e-9)

    real_to_syn = cdist(np.vstack([e_train, e_holdout]), e_syn).min(axis=1)
    members, others = real_to_syn[: len(train)], real_to_syn[len(train):]
    truth = np.r_[np.ones(10), np.zeros(10)]
    aucs = [roc_auc_score(truth, -np.r_[members[g], others]) for g in groups]
    assert metrics["privacy.mia_auc"].value == pytest.approx(np.mean(aucs), abs=1e-12)  # same distances
    assert metrics["privacy.mia_auc"].details["subset_aucs"] == pytest.approx(aucs, abs=1e-12)


def test_nearest_is_exact_across_chunks_and_ties(monkeypatch):
    rng = np.random.default_rng(0)
    reference = rng.random((57, 6))
    queries = np.vstack([rng.random((30, 6)), reference[:5], reference[:2]])  # exact copies: distance 0
    reference = np.vstack([reference, reference[:1]])  # a duplicated row: 0/0 for its copy
    monkeypatch.setattr(privacy, "_CHUNK_CELLS", 200)  # several rows per chunk, many chunks
    blocks = [(slice(0, 58), 3), (slice(0, 20), 1), (slice(20, 40), 1)]
    got, reverse = privacy.nearest(queries, reference, blocks, reverse=True)
    full = cdist(queries, reference)
    assert np.abs(got[0] - np.sort(full, axis=1)[:, :3]).max() < 1e-12  # direct differences both ways
    assert np.abs(got[1][:, 0] - full[:, :20].min(axis=1)).max() < 1e-12
    assert np.abs(got[2][:, 0] - full[:, 20:40].min(axis=1)).max() < 1e-12
    assert np.abs(reverse - full.min(axis=0)).max() < 1e-12
    assert got[0][-1, 0] == 0.0 and got[0][30, 1] == 0.0  # copies are at exactly 0, the duplicate too


def test_chunking_does_not_change_the_section(small, gbsg2_schema, monkeypatch):
    train, holdout, synthetic = small
    whole = run(train, holdout, synthetic, gbsg2_schema)
    monkeypatch.setattr(privacy, "_CHUNK_CELLS", 64)
    chunked = run(train, holdout, synthetic, gbsg2_schema)
    for key in KEYS:
        assert chunked[key].value == pytest.approx(whole[key].value, abs=1e-12)


# -------------------------------------------------------------------------------- Hamming
def test_min_hamming_matches_a_loop(small, gbsg2_schema, monkeypatch):
    train, holdout, synthetic = small
    codes = [hamming_codes(f, gbsg2_schema, bins=10) for f in (synthetic, train)]
    monkeypatch.setattr(privacy, "_CHUNK_CELLS", 100)
    syn, ref = privacy.hamming_onehot(codes)
    got = privacy.min_hamming(syn, ref, codes[0].shape[1], [slice(0, 40), slice(10, 25)])
    for i, row in enumerate(codes[0]):
        distances = [int((row != other).sum()) for other in codes[1]]
        assert got[0][i] == min(distances)  # exact integers
        assert got[1][i] == min(distances[10:25])


def test_leakage_coefficient_by_hand(small, gbsg2_schema):
    train, holdout, synthetic = small
    leakage = run(train, holdout, synthetic, gbsg2_schema, seed=3)["privacy.leakage_coefficient"]
    codes = [hamming_codes(f, gbsg2_schema, bins=10) for f in (synthetic, train, holdout)]
    distance = (codes[0][:, None, :] != codes[1][None, :, :]).sum(axis=2)
    syn_train = np.mean([distance[:, g].min(axis=1).mean() for g in brute_subsets(40, 10, seed=3)])
    syn_test = (codes[0][:, None, :] != codes[2][None, :, :]).sum(axis=2).min(axis=1).mean()
    assert leakage.value == pytest.approx(syn_test / syn_train - 1, abs=1e-12)  # same integer sums
    assert leakage.real_details["median_variables_to_match_training_row"] == np.median(distance.min(axis=1))


def test_leakage_on_a_tiny_table():
    """Three yes/no columns; every training row (a,a,a), every holdout row (b,b,b). Synthetic
    (a,a,a) is 0 from train and 3 from the holdout, (a,b,b) 2 and 1: syn→train = 1, syn→test = 2,
    coefficient 2/1 − 1 = 1, whatever the subsets."""
    schema = Schema.from_dict({"columns": [{"name": n, "type": "categorical", "categories": ["a", "b"]}
                                           for n in "xyz"]})

    def frame(rows):
        return pd.DataFrame({n: pd.Categorical([r[i] for r in rows], categories=["a", "b"])
                             for i, n in enumerate("xyz")})

    metrics = run(frame(["aaa"] * 10), frame(["bbb"] * 5), frame(["aaa", "abb"]), schema)
    leakage = metrics["privacy.leakage_coefficient"]
    assert leakage.value == 1.0  # exact: 2 / 1 − 1
    assert leakage.real_details["syn_to_train"] == 1.0 and leakage.real_details["syn_to_test"] == 2.0
    assert leakage.real_details["median_variables_to_match_training_row"] == 1.0
    # A mismatched category costs a distance of 1, so the encoded distances are √(mismatches):
    # DCR_train = median(0, √2), DCR_holdout = median(√3, 1).
    assert metrics["privacy.dcr_ratio"].value == pytest.approx((np.sqrt(2) / 2) / ((np.sqrt(3) + 1) / 2), abs=1e-12)
    assert metrics["privacy.ims"].value == 0.5  # exact: (a,a,a) copies a training row
    # Identical training rows: (a,a,a) has 0/0, counted as 1, and (a,b,b) √2/√2 = 1.
    assert metrics["privacy.nndr"].value == 1.0  # exact


# -------------------------------------------------------------------------------- gates
def test_the_leaking_release_fails_the_gates(gbsg2_split, gbsg2_schema, leaking_synthetic):
    train, holdout = gbsg2_split
    metrics = run(train, holdout, leaking_synthetic, gbsg2_schema)
    gates = gate_results(metrics)
    # Every synthetic duration moved (a float column), so no row is an exact copy: IMS cannot see this leak.
    assert metrics["privacy.ims"].value == 0.0 and gates["ims_max"].passed
    # Each synthetic row sits on one training row, i.e. in one of the 4 subsets: measured 0.807.
    assert 0.70 <= metrics["privacy.dcr_ratio"].value <= 0.88 and not gates["dcr_margin"].passed
    # Members are ~0.006 from a synthetic row, non-members ~0.10: measured AUC 1.0.
    assert metrics["privacy.mia_auc"].value >= 0.99 and not gates["mia_auc_max"].passed
    # About a quarter of the rows match their subset exactly after binning: measured 0.341.
    assert 0.25 <= metrics["privacy.leakage_coefficient"].value <= 0.45 and not gates["leakage_max"].passed
    # NNDR: each row hugs its source (d1 ≈ 0.006, d2 ≈ 0.1): measured 0.053, far below the 0.60 band.
    assert metrics["privacy.nndr"].value < 0.1
    assert gates["fidelity_min"].passed  # the stub, so only the privacy gates fail


def test_the_honest_release_passes_the_gates(gbsg2_split, gbsg2_schema, copula_synthetic):
    train, holdout = gbsg2_split
    metrics = run(train, holdout, copula_synthetic, gbsg2_schema)
    gates = gate_results(metrics)
    assert all(result.passed for result in gates.values()), gates
    # Measured: IMS 0, DCR ratio 1.003, MIA 0.530, leakage 0.0034, NNDR 0.867 (seed 0).
    assert metrics["privacy.ims"].value == 0.0
    assert 0.9 <= metrics["privacy.dcr_ratio"].value <= 1.1  # the copula never saw the holdout: ≈ 1
    assert 0.45 <= metrics["privacy.mia_auc"].value <= 0.6  # ≈ chance
    assert -0.05 < metrics["privacy.leakage_coefficient"].value < 0.05
    assert 0.6 <= metrics["privacy.nndr"].value <= 1.0


def test_same_seed_same_report(small, gbsg2_schema):
    train, holdout, synthetic = small
    first = run(train, holdout, synthetic, gbsg2_schema, seed=11)
    second = run(train, holdout, synthetic, gbsg2_schema, seed=11)
    assert all(first[key].to_dict() == second[key].to_dict() for key in KEYS)


def test_public_view_holds_no_distances(gbsg2_split, gbsg2_schema, copula_synthetic):
    train, holdout = gbsg2_split
    for metric in run(train, holdout, copula_synthetic, gbsg2_schema).values():
        public = metric.to_dict("public")
        assert "real_details" not in public and "details" not in public
        text = json.dumps(public["synthetic_details"])
        assert "median" not in text and "syn_to" not in text and "matches" not in text and "distance" not in text


# -------------------------------------------------------------------------------- not applicable
def test_a_tiny_holdout_leaves_only_ims_and_nndr(small, gbsg2_schema):
    train, holdout, synthetic = small
    metrics = run(train, holdout.iloc[:3], synthetic, gbsg2_schema)
    assert metrics["privacy.ims"].applicable and metrics["privacy.nndr"].applicable
    for key in ("privacy.dcr_ratio", "privacy.leakage_coefficient", "privacy.mia_auc"):
        assert not metrics[key].applicable and "holdout has 3 rows" in metrics[key].reason
    gates = gate_results(metrics)
    assert not gates["mia_auc_max"].passed and gates["mia_auc_max"].reason.startswith("not measured")


def test_fewer_training_than_holdout_rows(small, gbsg2_schema):
    train, holdout, synthetic = small
    metrics = run(train.iloc[:8], holdout, synthetic, gbsg2_schema)
    for key in ("privacy.dcr_ratio", "privacy.leakage_coefficient", "privacy.mia_auc"):
        assert not metrics[key].applicable and "fewer than the holdout" in metrics[key].reason
    assert metrics["privacy.ims"].applicable and metrics["privacy.nndr"].applicable


def test_no_synthetic_or_training_rows(small, gbsg2_schema):
    train, holdout, synthetic = small
    for metrics, why in ((run(train, holdout, synthetic.iloc[:0], gbsg2_schema), "no synthetic rows"),
                         (run(train.iloc[:0], holdout, synthetic, gbsg2_schema), "no training rows")):
        assert all(not m.applicable and why in m.reason for m in metrics.values())
    one = run(train.iloc[:1], holdout.iloc[:1], synthetic, gbsg2_schema)["privacy.nndr"]
    assert not one.applicable and "two training rows" in one.reason


def test_copies_of_the_holdout_are_not_a_measured_dcr(small, gbsg2_schema):
    """Half the rows copying holdout rows means the holdout reached the generator: DCR is not
    measured (and its gate fails) rather than an unbounded ratio."""
    train, holdout, synthetic = small
    copies = pd.concat([holdout, holdout, synthetic.iloc[:5]], ignore_index=True)
    dcr = run(train, holdout, copies, gbsg2_schema)["privacy.dcr_ratio"]
    assert not dcr.applicable and "holdout seems to have reached the generator" in dcr.reason


def test_the_nullable_table_runs(nullable_table, nullable_schema):
    train, holdout = split(nullable_table)
    metrics = run(train, holdout, noisy_copy(train, nullable_schema, seed=1, jitter=0.01), nullable_schema)
    assert all(m.applicable for m in metrics.values())
    assert metrics["privacy.mia_auc"].value > 0.9  # a noisy copy, missing values and all
