"""POST/GET /api/v1/verifications/ on GBSG2: every kind, reuse, refunds, bad input, roles, the
audit trail and the noise. Each test checks the payload and what was stored: the verification
row, the ledger, the allocation and the audit rows (not just the status)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import verification.core
import verification.services
from accounts.models import BudgetPolicy, LedgerEntry
from clearinghouse.custody import CustodyError
from clearinghouse.schema import Schema
from tests.conftest import GBSG2_SCHEMA, last_event
from tests.verification.conftest import (
    VERIFY,
    ask,
    assert_error,
    assert_ledger_adds_up,
    audit_events,
    hypothesis,
    ledger,
    micro,
    publish_another_release,
    publish_gbsg2,
    release_frame,
    spent_micro,
    state,
)
from verification.core.answer import VERDICTS, verdict_for
from verification.models import Verification

ANSWER_FIELDS = {"kind", "estimate", "ci_low", "ci_high", "confidence", "noisy_n", "method", "epsilon",
                 "epsilon_split", "withheld", "informative", "reason", "synthetic_estimate", "verdict", "details"}
VERIFICATION_FIELDS = {"id", "dataset", "release", "kind", "hypothesis", "status", "reused", "reused_from",
                       "epsilon_charged", "answer", "created_at", "answered_at"}


# --------------------------------------------------------------------------------------------
# The statistic on the release's rows, computed here from the downloaded parquet (no noise).
# --------------------------------------------------------------------------------------------

def _num(frame, name: str):
    column = next(c for c in GBSG2_SCHEMA["columns"] if c["name"] == name)
    return frame[name].astype("float64").clip(column["min"], column["max"])


def _odds_ratio(frame) -> float:
    a = (frame["horTh"] == "yes").to_numpy()
    b = (frame["menostat"] == "Post").to_numpy()
    cells = np.array([(a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum()], dtype=float)
    if cells.min() == 0:
        cells += 0.5  # Haldane–Anscombe, as for the answer
    return cells[0] * cells[3] / (cells[1] * cells[2])


YES = {"column": "horTh", "op": "==", "value": "yes"}
POST = {"column": "menostat", "op": "==", "value": "Post"}
HORTH = {"column": "horTh", "a": "yes", "b": "no"}

#: kind -> (params, where, claim, the statistic on the release's rows or None: see _synthetic_reference).
KIND_CASES = {
    "count": ({}, [YES], {"direction": "greater", "value": 100},
              lambda f: float((f["horTh"] == "yes").sum())),
    "proportion": ({"column": "horTh", "value": "yes"}, [], {"direction": "less", "value": 0.5},
                   lambda f: float((f["horTh"] == "yes").mean())),
    "mean": ({"column": "age"}, [POST], {"direction": "greater", "value": 50},
             lambda f: float(_num(f[f["menostat"] == "Post"], "age").mean())),
    "quantile": ({"column": "age", "q": 0.5}, [], {"direction": "greater", "value": 50},
                 lambda f: float(np.quantile(_num(f, "age"), 0.5))),
    "difference_in_means": ({"column": "age", "group": HORTH}, [], {"direction": "greater", "value": 0},
                            lambda f: float(_num(f[f["horTh"] == "yes"], "age").mean()
                                            - _num(f[f["horTh"] == "no"], "age").mean())),
    "difference_in_proportions": ({"column": "menostat", "value": "Post", "group": HORTH}, [],
                                  {"direction": "greater", "value": 0},
                                  lambda f: float((f[f["horTh"] == "yes"]["menostat"] == "Post").mean()
                                                  - (f[f["horTh"] == "no"]["menostat"] == "Post").mean())),
    # age and time spread over their public bounds: with bounds much wider than the values (progrec,
    # estrec) the noisy variances are often not positive at ε ≤ 1 and r is not released.
    "correlation": ({"x": "time", "y": "age"}, [], {"direction": "greater", "value": 0},
                    lambda f: float(np.corrcoef(_num(f, "age"), _num(f, "time"))[0, 1])),
    "odds_ratio": ({"a": {"column": "horTh", "value": "yes"}, "b": {"column": "menostat", "value": "Post"}}, [],
                   {"direction": "greater", "value": 1}, _odds_ratio),
    # Being added by another person: answered once registered in verification.core.KINDS.
    "logistic_odds_ratio": ({"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh",
                                                                                     "value": "yes"}},
                            [], {"direction": "less", "value": 1}, None),
    "hazard_ratio": ({"exposure": {"column": "horTh", "value": "yes"}}, [], {"direction": "less", "value": 1}, None),
    "km_median": ({}, [], {"direction": "greater", "value": 1000}, None),
    "survival_at": ({"time": 1000}, [], {"direction": "greater", "value": 0.5}, None),
    "logrank": ({"group": HORTH}, [], {"direction": "less", "value": 1}, None),
}
#: ε per kind (0.5 unless listed): the kinds with many noisy parts get the per-query maximum.
EPSILON = {"correlation": 1, "logistic_odds_ratio": 1, "hazard_ratio": 1, "km_median": 1, "survival_at": 1,
           "logrank": 1}
LATER_KINDS = {"logistic_odds_ratio", "hazard_ratio", "km_median", "survival_at", "logrank"}
#: Kinds whose CI is estimate ± a normal half-width (on the estimate's or its log's scale).
CI_AROUND_ESTIMATE = {"count", "proportion", "mean", "difference_in_means", "difference_in_proportions",
                      "odds_ratio"}


def _synthetic_reference(release, body: dict) -> float | None:
    """The engine's own noiseless statistic on the release, for the kinds added later."""
    from verification.core import parse_hypothesis
    from releases.selectors import release_synthetic_rows
    from verification.core.kinds import EXACT, apply_where

    schema = Schema.from_dict(GBSG2_SCHEMA)
    parsed = parse_hypothesis({k: v for k, v in body.items() if k != "release"}, schema, max_epsilon=1.0)
    frame = release_synthetic_rows(release, schema)
    value = EXACT[parsed.kind](apply_where(frame, parsed.where), schema, parsed)
    return None if value is None or not math.isfinite(value) else float(value)


# --------------------------------------------------------------------------------------------
# 1. Every kind through the API
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KIND_CASES))
def test_every_kind_is_answered_or_cleanly_not_available(kind, gbsg2, researcher, clients):
    dataset, release = gbsg2
    params, where, claim, direct = KIND_CASES[kind]
    epsilon = EPSILON.get(kind, 0.5)
    eps_text, eps_micro = str(epsilon), micro(epsilon)
    body = hypothesis(release, kind, params, where=where, claim=claim, epsilon=epsilon)
    before = state()
    response = ask(clients["researcher"], body)

    if kind not in verification.core.KINDS:  # not registered yet: refused before any charge
        error = assert_error(response, 400, "kind_not_available")
        assert kind in error["message"]
        assert state() == before
        assert not Verification.objects.exists()
        event = last_event()
        assert (event.action, event.outcome, event.actor_id) == ("verification.create", "refused", researcher[0].pk)
        assert event.details["code"] == "kind_not_available"
        return

    assert response.status_code == 201, response.content
    body_out = response.json()
    assert set(body_out) == VERIFICATION_FIELDS | {"budget"}
    assert body_out["kind"] == kind and body_out["dataset"] == "gbsg2" and body_out["release"] == release.pk
    assert body_out["status"] == "answered" and body_out["reused"] is False and body_out["reused_from"] is None
    assert body_out["epsilon_charged"] == eps_text
    assert body_out["budget"] == {"dataset": "gbsg2", "allocation": "2", "spent": eps_text,
                                  "left": str(2 - epsilon)}
    assert body_out["hypothesis"]["claim"] == claim and body_out["hypothesis"]["epsilon"] == eps_text

    answer = body_out["answer"]
    assert set(answer) == ANSWER_FIELDS
    assert answer["kind"] == kind and answer["epsilon"] == eps_text and answer["confidence"] == 0.95
    assert answer["withheld"] is False, answer  # 686 patients, minimum subgroup 20
    assert isinstance(answer["method"], str) and answer["method"]
    assert isinstance(answer["noisy_n"], int) and answer["noisy_n"] >= 20
    estimate, low, high = answer["estimate"], answer["ci_low"], answer["ci_high"]
    assert isinstance(estimate, float) and math.isfinite(estimate), answer
    if kind in LATER_KINDS:  # a KM band may not reach 0.5 within the data: that bound is null (unbounded)
        assert low is not None or high is not None, answer
    else:
        assert low is not None and high is not None, answer
    assert all(isinstance(v, float) and math.isfinite(v) for v in (low, high) if v is not None), answer
    if low is not None and high is not None:
        assert low <= high
    if kind in CI_AROUND_ESTIMATE:
        assert low <= estimate <= high
    assert answer["verdict"] in VERDICTS
    assert answer["verdict"] == verdict_for(low, high, claim)
    # The same statistic on the release it came from, without noise.
    expected = direct(release_frame(release)) if direct is not None else _synthetic_reference(release, body)
    if expected is None:
        assert answer["synthetic_estimate"] is None
    else:
        assert answer["synthetic_estimate"] == pytest.approx(expected, rel=1e-9, abs=1e-12)

    stored = Verification.objects.get()
    assert stored.pk == body_out["id"] and stored.status == "answered" and stored.primary is True
    assert stored.answer == answer and stored.epsilon_micro == eps_micro and stored.user_id == researcher[0].pk
    [charge] = ledger(kind="charge")
    assert (charge.verification_id, charge.epsilon_micro, charge.spent_after_micro) == (stored.pk, eps_micro,
                                                                                         eps_micro)
    assert not ledger(kind="refund")
    assert spent_micro(researcher[0], dataset) == eps_micro
    assert_ledger_adds_up(dataset)
    events = audit_events(object_type="verification", object_id=str(stored.pk))
    assert [e.action for e in events] == ["verification.charge", "verification.answer"]
    assert all(e.actor_id == researcher[0].pk and e.outcome == "success" for e in events)
    assert events[1].details["answer"] == answer and events[1].details["epsilon"] == eps_text
    assert events[1].details["hypothesis"] == body_out["hypothesis"]


# --------------------------------------------------------------------------------------------
# 2. Reuse
# --------------------------------------------------------------------------------------------

def test_identical_canonical_hypothesis_is_reused_free(gbsg2, researcher, clients):
    dataset, release = gbsg2
    first = ask(clients["researcher"], hypothesis(
        release, "mean", {"column": "age"}, epsilon=0.5, claim={"direction": "greater", "value": 50},
        where=[{"column": "tsize", "op": "<=", "value": 100}, POST]))
    assert first.status_code == 201, first.content
    first = first.json()
    after_first = state()
    # Keys in another order, the filters reversed, 0.50 for 0.5, 100.0 for 100, another claim.
    raw = ('{"epsilon": 0.50, "claim": {"value": 60, "direction": "less"}, '
           '"where": [{"value": "Post", "op": "==", "column": "menostat"}, '
           '{"op": "<=", "column": "tsize", "value": 100.0}], '
           f'"params": {{"column": "age"}}, "kind": "mean", "release": {release.pk}}}')
    response = clients["researcher"].post(VERIFY, raw.encode(), content_type="application/json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reused"] is True and body["status"] == "reused" and body["reused_from"] == first["id"]
    assert body["epsilon_charged"] == "0"
    assert body["budget"] == {"dataset": "gbsg2", "allocation": "2", "spent": "0.5", "left": "1.5"}
    assert body["hypothesis"]["claim"] == {"direction": "less", "value": 60}
    for key in ("estimate", "ci_low", "ci_high", "noisy_n", "method", "epsilon", "synthetic_estimate"):
        assert body["answer"][key] == first["answer"][key], key
    assert body["answer"]["verdict"] == verdict_for(first["answer"]["ci_low"], first["answer"]["ci_high"],
                                                    {"direction": "less", "value": 60})
    # No charge: the ledger and the allocation are as they were; one more (free) verification row.
    now = state()
    assert now["ledger"] == after_first["ledger"]
    assert now["allocations"] == after_first["allocations"] and now["policies"] == after_first["policies"]
    reuse = Verification.objects.get(pk=body["id"])
    assert (reuse.status, reuse.primary, reuse.epsilon_micro, reuse.reused_from_id) == ("reused", False, 0,
                                                                                           first["id"])
    assert not reuse.ledger.exists()
    event = last_event()
    assert (event.action, event.outcome, event.object_id, event.actor_id) == (
        "verification.reuse", "success", str(reuse.pk), researcher[0].pk)
    assert event.details["reused_from"] == first["id"] and event.details["epsilon"] == "0"
    assert event.details["answer"]["estimate"] == first["answer"]["estimate"]

    # A different ε is another hypothesis: charged, with fresh noise.
    other = ask(clients["researcher"], hypothesis(release, "mean", {"column": "age"}, epsilon=0.4,
                                                  where=[{"column": "tsize", "op": "<=", "value": 100}, POST]))
    assert other.status_code == 201, other.content
    assert other.json()["reused"] is False and other.json()["epsilon_charged"] == "0.4"
    assert other.json()["budget"]["spent"] == "0.9"
    assert [e.epsilon_micro for e in ledger(kind="charge")] == [500_000, 400_000]
    assert_ledger_adds_up(dataset)


def test_reuse_works_for_another_researcher_without_an_allocation(gbsg2, researcher, ravi, clients):
    dataset, release = gbsg2
    first = ask(clients["researcher"], hypothesis(release)).json()
    response = ask(ravi[1], hypothesis(release, claim={"direction": "less", "value": 40}))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reused"] is True and body["reused_from"] == first["id"] and body["epsilon_charged"] == "0"
    assert body["budget"] == {"dataset": "gbsg2", "allocation": "2", "spent": "0", "left": "2"}


def test_reuse_works_across_researchers(gbsg2, researcher, ravi, clients):
    """A second verified researcher asking an answered hypothesis gets it free (sharing answers is
    covered by the dataset's total cap). Ravi has an allocation here."""
    dataset, release = gbsg2
    own = ask(ravi[1], hypothesis(release, "count", {}, epsilon=0.1, claim={"direction": "greater", "value": 1}))
    first = ask(clients["researcher"], hypothesis(release)).json()
    before = state()
    response = ask(ravi[1], hypothesis(release, claim={"direction": "less", "value": 40}))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reused"] is True and body["reused_from"] == first["id"] and body["epsilon_charged"] == "0"
    assert body["answer"]["estimate"] == first["answer"]["estimate"]
    assert body["answer"]["verdict"] == verdict_for(first["answer"]["ci_low"], first["answer"]["ci_high"],
                                                    {"direction": "less", "value": 40})
    assert body["budget"] == {"dataset": "gbsg2", "allocation": "2", "spent": "0.1", "left": "1.9"}
    assert state()["ledger"] == before["ledger"] and state()["allocations"] == before["allocations"]
    assert Verification.objects.get(pk=body["id"]).user_id == ravi[0].pk
    assert last_event().action == "verification.reuse" and last_event().actor_id == ravi[0].pk
    # Each sees only their own rows in the history.
    mine = clients["researcher"].get(VERIFY).json()
    assert [v["id"] for v in mine["results"]] == [first["id"]]
    theirs = ravi[1].get(VERIFY).json()
    assert [v["id"] for v in theirs["results"]] == [body["id"], own.json()["id"]]


def test_reuse_from_another_release_gives_that_release_s_synthetic_estimate(gbsg2, custodian, clients):
    dataset, release = gbsg2
    second = publish_another_release(release, custodian[0])
    first = ask(clients["researcher"], hypothesis(release)).json()
    response = ask(clients["researcher"], hypothesis(second))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reused"] is True and body["release"] == second.pk and body["epsilon_charged"] == "0"
    assert body["answer"]["estimate"] == first["answer"]["estimate"]
    assert first["answer"]["synthetic_estimate"] == pytest.approx(float(release_frame(release)["age"].mean()))
    assert body["answer"]["synthetic_estimate"] == pytest.approx(float(release_frame(second)["age"].mean()))
    assert len(ledger(kind="charge")) == 1


# --------------------------------------------------------------------------------------------
# 4. A failed computation is refunded
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["answer", "custody_read"])
def test_failed_computation_is_refunded(where, gbsg2, researcher, clients, monkeypatch):
    dataset, release = gbsg2
    ask(clients["researcher"], hypothesis(release, "count", {}, epsilon=0.2))  # something spent before
    before_spent = spent_micro(researcher[0], dataset)
    policy_before = BudgetPolicy.objects.get(dataset=dataset).total_spent_micro

    def broken(*args, **kwargs):
        raise (RuntimeError("boom") if where == "answer" else CustodyError("the stored table is missing"))

    monkeypatch.setattr(verification.services, where, broken)
    response = ask(clients["researcher"], hypothesis(release, epsilon=0.5))
    error = assert_error(response, 500, "computation_failed")
    failed = Verification.objects.get(kind="mean")
    assert error["details"] == {"verification": failed.pk, "refunded": "0.5"}
    assert "refunded" in error["message"]
    assert (failed.status, failed.primary, failed.answer) == ("failed", False, None)
    assert failed.error == ("RuntimeError" if where == "answer" else "CustodyError")
    entries = list(failed.ledger.order_by("id"))
    assert [(e.kind, e.epsilon_micro) for e in entries] == [("charge", 500_000), ("refund", 500_000)]
    assert entries[0].spent_after_micro == before_spent + 500_000 and entries[1].spent_after_micro == before_spent
    assert spent_micro(researcher[0], dataset) == before_spent
    assert BudgetPolicy.objects.get(dataset=dataset).total_spent_micro == policy_before
    assert_ledger_adds_up(dataset)
    events = audit_events(object_type="verification", object_id=str(failed.pk))
    assert [(e.action, e.outcome) for e in events] == [("verification.charge", "success"),
                                                         ("verification.fail", "failed")]
    assert events[1].details["refunded"] == "0.5" and events[1].details["hypothesis"]["kind"] == "mean"
    event = last_event()  # the error response itself
    assert (event.action, event.outcome, event.details["code"]) == ("verification.create", "failed",
                                                                     "computation_failed")

    # The same hypothesis, asked again once the fault is gone, is charged and answered.
    monkeypatch.undo()
    again = ask(clients["researcher"], hypothesis(release, epsilon=0.5))
    assert again.status_code == 201, again.content
    assert again.json()["reused"] is False and again.json()["status"] == "answered"
    assert spent_micro(researcher[0], dataset) == before_spent + 500_000
    answered = Verification.objects.get(pk=again.json()["id"])
    assert answered.primary is True and answered.canonical_key == failed.canonical_key
    assert_ledger_adds_up(dataset)


# --------------------------------------------------------------------------------------------
# 5. Bad input: a 400 naming the problem, nothing charged or stored, an audit row
# --------------------------------------------------------------------------------------------

#: (case, changes to the good hypothesis, error code, a word the message must contain)
BAD_INPUT = [
    ("unknown kind", {"kind": "median"}, "unknown_kind", "median"),
    ("no kind", {"kind": None}, "unknown_kind", "kind"),
    ("unknown column", {"params": {"column": "weight"}}, "unknown_column", "weight"),
    ("identifier column", {"params": {"column": "pid"}}, "unknown_column", "pid"),
    ("unknown filter column", {"where": [{"column": "bmi", "op": ">", "value": 30}]}, "unknown_column", "bmi"),
    ("unknown category", {"kind": "proportion", "params": {"column": "horTh", "value": "maybe"}},
     "unknown_category", "maybe"),
    ("unknown category in a filter", {"where": [{"column": "tgrade", "op": "==", "value": "IV"}]},
     "unknown_category", "IV"),
    ("event value not 0/1", {"kind": "proportion", "params": {"column": "cens", "value": 2}},
     "unknown_category", "cens"),
    ("numeric column where a category is needed", {"kind": "proportion", "params": {"column": "age", "value": "50"}},
     "wrong_column_type", "age"),
    ("category where a number is needed", {"params": {"column": "horTh"}}, "wrong_column_type", "horTh"),
    ("order on a category", {"where": [{"column": "horTh", "op": "<", "value": "yes"}]}, "wrong_column_type",
     "horTh"),
    ("group on a numeric column", {"kind": "difference_in_means",
                                   "params": {"column": "age", "group": {"column": "tsize", "a": 1, "b": 2}}},
     "wrong_column_type", "tsize"),
    ("epsilon zero", {"epsilon": 0}, "bad_epsilon", "epsilon"),
    ("epsilon negative", {"epsilon": -0.5}, "bad_epsilon", "epsilon"),
    ("epsilon 'NaN'", {"epsilon": "NaN"}, "bad_epsilon", "epsilon"),
    ("epsilon 'abc'", {"epsilon": "abc"}, "bad_epsilon", "epsilon"),
    ("epsilon a string with an exponent", {"epsilon": "5e-1"}, "bad_epsilon", "epsilon"),
    ("epsilon a string with a space", {"epsilon": " 0.5"}, "bad_epsilon", "epsilon"),
    ("epsilon a signed string", {"epsilon": "+0.5"}, "bad_epsilon", "epsilon"),
    ("epsilon true", {"epsilon": True}, "bad_epsilon", "epsilon"),
    ("epsilon missing", {"epsilon": None}, "bad_epsilon", "epsilon"),
    ("epsilon a list", {"epsilon": [0.5]}, "bad_epsilon", "epsilon"),
    ("epsilon above the per-query maximum", {"epsilon": 1.5}, "epsilon_above_maximum", "maximum"),
    ("epsilon with 7 decimal places", {"epsilon": 0.1234567}, "bad_epsilon", "decimal places"),
    ("epsilon below the minimum", {"epsilon": 1e-7}, "bad_epsilon", "minimum"),
    ("filter value of the wrong type", {"where": [{"column": "age", "op": ">=", "value": "old"}]},
     "bad_filter_value", "age"),
    ("a number for a category filter", {"where": [{"column": "horTh", "op": "==", "value": 1.5}]},
     "bad_filter_value", "horTh"),
    ("integer compared with a fraction", {"where": [{"column": "age", "op": "==", "value": 50.5}]},
     "bad_filter_value", "50.5"),
    ("empty 'in'", {"where": [{"column": "tgrade", "op": "in", "value": []}]}, "bad_filter_value", "in"),
    ("unknown op", {"where": [{"column": "age", "op": "~=", "value": 50}]}, "unknown_op", "~="),
    ("empty group a == b", {"kind": "difference_in_means",
                            "params": {"column": "age", "group": {"column": "horTh", "a": "no", "b": "no"}}},
     "empty_group", "differ"),
    ("group without b", {"kind": "difference_in_means",
                         "params": {"column": "age", "group": {"column": "horTh", "a": "no"}}},
     "empty_group", "b"),
    ("unknown param", {"params": {"column": "age", "q": 0.5}}, "unknown_param", "'q'"),
    ("missing param", {"kind": "quantile", "params": {}}, "missing_param", "column"),
    ("q out of range", {"kind": "quantile", "params": {"column": "age", "q": 1.5}}, "bad_param", "q"),
    ("unknown top-level field", {"colour": "red"}, "malformed", "colour"),
    ("where not a list", {"where": {"column": "age"}}, "malformed", "where"),
    ("bad claim direction", {"claim": {"direction": "sideways", "value": 50}}, "bad_claim", "sideways"),
    ("non-positive ratio claim", {"kind": "odds_ratio", "params": KIND_CASES["odds_ratio"][0],
                                  "claim": {"direction": "greater", "value": 0}}, "bad_claim", "ratio"),
    ("release of another dataset", {"dataset": "other"}, "release_dataset_mismatch", "other"),
    ("unknown release", {"release": 999_999}, "unknown_release", "999999"),
    ("release as a string", {"release": "1"}, "invalid_release", "release"),
    ("release true", {"release": True}, "invalid_release", "release"),
]


def assert_refused_and_nothing_charged(response, before: dict, status: int, code: str, actor) -> dict:
    error = assert_error(response, status, code)
    assert state() == before  # no ledger entry, no verification row, allocations and policies as they were
    assert not Verification.objects.exists()
    assert not LedgerEntry.objects.filter(kind__in=["charge", "refund"]).exists()
    event = last_event()
    assert event.action == "verification.create" and event.object_type == "verification"
    assert event.outcome == ("denied" if status in (401, 403) else "refused")
    assert event.actor_id == (actor.pk if actor is not None else None)
    assert event.details["code"] == code and event.details["status"] == status
    return error


@pytest.mark.parametrize("case, changes, code, mention", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_400_naming_the_problem_and_charges_nothing(case, changes, code, mention, gbsg2,
                                                                   researcher, clients):
    dataset, release = gbsg2
    body = hypothesis(release)
    body.update(changes)
    body = {k: v for k, v in body.items() if not (k == "epsilon" and v is None and case == "epsilon missing")}
    before = state()
    error = assert_refused_and_nothing_charged(ask(clients["researcher"], body), before, 400, code, researcher[0])
    assert mention in error["message"], error
    assert spent_micro(researcher[0], dataset) in (None, 0)


@pytest.mark.parametrize("raw, code", [
    (b'{"release": %d, "kind": "mean", "params": {"column": "age"}, "where": [], '
     b'"claim": {"direction": "greater", "value": 50}, "epsilon": 1e309}', "bad_epsilon"),
    (b'{"release": %d, "kind": "mean", "params": {"column": "age"}, "where": [], '
     b'"claim": {"direction": "greater", "value": 50}, "epsilon": NaN}', "malformed_request"),
    (b'{"release": %d, "kind": "mean", "params": {"column": "age"}, "where": [], '
     b'"claim": {"direction": "greater", "value": 50}, "epsilon": Infinity}', "malformed_request"),
    (b'{"release": %d, "kind": "mean", ', "malformed_request"),
    (b'[%d, "mean"]', "malformed"),
    (b'"%d"', "malformed"),
], ids=["epsilon 1e309", "epsilon NaN literal", "epsilon Infinity literal", "truncated JSON", "a JSON list",
        "a JSON string"])
def test_malformed_json_is_a_400(raw, code, gbsg2, researcher, clients):
    dataset, release = gbsg2
    before = state()
    response = clients["researcher"].post(VERIFY, raw % release.pk, content_type="application/json")
    assert_refused_and_nothing_charged(response, before, 400, code, researcher[0])


def test_unpublished_release_is_refused(gbsg2, custodian, researcher, clients):
    from releases.services import release_create

    dataset, release = gbsg2
    draft = release_create(run=release.run, rows=100, seed=5, by=custodian[0], queue_report=False)
    before = state()
    error = assert_refused_and_nothing_charged(ask(clients["researcher"], hypothesis(draft)), before, 400,
                                               "unknown_release", researcher[0])
    assert str(draft.pk) in error["message"]


SURVIVAL_CASES = [(kind, KIND_CASES[kind][0]) for kind in ("hazard_ratio", "km_median", "survival_at", "logrank")]


@pytest.mark.parametrize("kind, params", SURVIVAL_CASES, ids=[k for k, _ in SURVIVAL_CASES])
def test_survival_kind_on_a_dataset_without_a_survival_pair(kind, params, custodian, researcher, clients):
    schema = copy.deepcopy(GBSG2_SCHEMA)
    del schema["survival"]
    dataset, release = publish_gbsg2(custodian[0], slug="gbsg2-no-survival", schema=schema)
    before = state()
    body = hypothesis(release, kind, params, claim={"direction": "less", "value": 1})
    error = assert_refused_and_nothing_charged(ask(clients["researcher"], body), before, 400, "no_survival",
                                               researcher[0])
    assert "survival" in error["message"] and kind in error["message"]


@pytest.mark.parametrize("role, status, code", [
    ("anonymous", 401, "not_authenticated"),
    ("unverified", 403, "permission_denied"),
    ("custodian", 403, "permission_denied"),
    ("auditor", 403, "permission_denied"),
])
def test_only_verified_researchers_may_verify(role, status, code, gbsg2, clients, request):
    dataset, release = gbsg2
    actor = None if role == "anonymous" else request.getfixturevalue(role)[0]
    before = state()
    response = ask(clients[role], hypothesis(release))
    assert_refused_and_nothing_charged(response, before, status, code, actor)
    for path in (VERIFY, f"{VERIFY}1/", "/api/v1/budget/"):
        assert_error(clients[role].get(path), status, code)


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------

def test_history_lists_and_shows_only_your_own(gbsg2, researcher, ravi, clients):
    dataset, release = gbsg2
    mine = ask(clients["researcher"], hypothesis(release)).json()
    reuse = ask(clients["researcher"], hypothesis(release, claim={"direction": "less", "value": 1})).json()
    theirs = ask(ravi[1], hypothesis(release, "count", {}, epsilon=0.3)).json()
    listing = clients["researcher"].get(VERIFY)
    assert listing.status_code == 200
    page = listing.json()
    assert page["count"] == 2 and [v["id"] for v in page["results"]] == [reuse["id"], mine["id"]]
    assert all(set(v) == VERIFICATION_FIELDS for v in page["results"])
    assert page["results"][1]["answer"] == mine["answer"]
    assert last_event().action == "verification.list" and last_event().actor_id == researcher[0].pk

    detail = clients["researcher"].get(f"{VERIFY}{mine['id']}/")
    assert detail.status_code == 200
    assert detail.json() == {k: v for k, v in mine.items() if k != "budget"}
    event = last_event()
    assert (event.action, event.object_id, event.outcome) == ("verification.read", str(mine["id"]), "success")
    assert_error(clients["researcher"].get(f"{VERIFY}{theirs['id']}/"), 404, "not_found")
    assert_error(clients["researcher"].get(f"{VERIFY}999999/"), 404, "not_found")


# --------------------------------------------------------------------------------------------
# 8. Auditors see every verification
# --------------------------------------------------------------------------------------------

def test_auditors_see_every_verification_with_spec_answer_and_charge(gbsg2, researcher, ravi, clients):
    dataset, release = gbsg2
    charged = ask(clients["researcher"], hypothesis(release, epsilon=0.25)).json()
    ask(ravi[1], hypothesis(release, "count", {}, epsilon=0.1))
    reused = ask(ravi[1], hypothesis(release, epsilon=0.25, claim={"direction": "less", "value": 1})).json()
    ask(clients["researcher"], hypothesis(release, epsilon=5))  # refused: audited too

    response = clients["auditor"].get("/api/v1/audit/events/", {"object_type": "verification", "page_size": 200})
    assert response.status_code == 200, response.content
    events = response.json()["results"]
    by_action: dict[str, list[dict]] = {}
    for event in events:
        by_action.setdefault(event["action"], []).append(event)
    [charge] = [e for e in by_action["verification.charge"] if e["object_id"] == str(charged["id"])]
    [answer] = [e for e in by_action["verification.answer"] if e["object_id"] == str(charged["id"])]
    [reuse] = by_action["verification.reuse"]
    for event in (charge, answer):
        assert event["actor_username"] == "rhea" and event["outcome"] == "success"
        assert event["details"]["hypothesis"] == charged["hypothesis"]
        assert event["details"]["epsilon"] == "0.25" and event["details"]["dataset"] == "gbsg2"
        assert event["details"]["release"] == release.pk
    assert charge["details"]["answer"] is None  # charged before computing
    assert answer["details"]["answer"] == charged["answer"]
    assert reuse["actor_username"] == "ravi" and reuse["object_id"] == str(reused["id"])
    assert reuse["details"]["reused_from"] == charged["id"] and reuse["details"]["epsilon"] == "0"
    assert reuse["details"]["hypothesis"]["claim"] == {"direction": "less", "value": 1}
    assert reuse["details"]["answer"] == reused["answer"]
    refused = [e for e in by_action["verification.create"] if e["outcome"] == "refused"]
    assert [e["details"]["code"] for e in refused] == ["epsilon_above_maximum"]
    assert {e["actor_username"] for e in by_action["verification.charge"]} == {"rhea", "ravi"}

    for role in ("researcher", "custodian"):
        assert_error(clients[role].get("/api/v1/audit/events/", {"object_type": "verification"}), 403,
                     "permission_denied")


# --------------------------------------------------------------------------------------------
# 9. The noise is there, drawn fresh from the OS each time
# --------------------------------------------------------------------------------------------

def test_fresh_noise_for_every_charged_hypothesis(gbsg2, researcher, clients, monkeypatch):
    dataset, release = gbsg2
    import secrets as secrets_module

    seeds: list[int] = []
    real = secrets_module.randbits

    def spy(k: int) -> int:
        value = real(k)
        seeds.append(value)
        return value

    monkeypatch.setattr(verification.services.secrets, "randbits", spy)
    estimates = []
    for i in range(5):  # every patient is at least 21: the same rows, five different hypotheses
        body = hypothesis(release, "mean", {"column": "age"}, epsilon=0.1,
                          where=[{"column": "age", "op": ">=", "value": i}])
        response = ask(clients["researcher"], body)
        assert response.status_code == 201, response.content
        estimates.append(response.json()["answer"]["estimate"])
    assert len(set(estimates)) == 5, estimates
    assert len(seeds) == 5 and len(set(seeds)) == 5
    assert all(s.bit_length() > 64 for s in seeds)  # 128 random bits (a 1-in-2^64 chance of failing)
    truth = float(release_frame(release)["age"].mean())  # a sanity bound only: noisy, on the real rows
    assert all(abs(e - truth) < 15 for e in estimates)
    # A reuse draws nothing.
    again = ask(clients["researcher"], hypothesis(release, "mean", {"column": "age"}, epsilon=0.1,
                                                  where=[{"column": "age", "op": ">=", "value": 0}]))
    assert again.status_code == 200 and again.json()["answer"]["estimate"] == estimates[0]
    assert len(seeds) == 5
    assert spent_micro(researcher[0], dataset) == 500_000


def test_two_fresh_mean_queries_at_small_epsilon_differ(gbsg2, researcher, clients):
    dataset, release = gbsg2
    answers = []
    for epsilon in (0.1, 0.11):
        response = ask(clients["researcher"], hypothesis(release, "mean", {"column": "age"}, epsilon=epsilon))
        assert response.status_code == 201 and response.json()["reused"] is False
        answers.append(response.json()["answer"])
    assert answers[0]["estimate"] != answers[1]["estimate"]
    assert answers[0]["synthetic_estimate"] == answers[1]["synthetic_estimate"]  # no noise on the release
    assert [e.epsilon_micro for e in ledger(kind="charge")] == [100_000, 110_000]
