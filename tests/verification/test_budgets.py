"""Privacy budgets through the API: charging to exhaustion, the dataset's total cap, the daily
limit, GET /budget/, the append-only ledger, and the custodian's policy and allocation endpoints.
Each test checks the ledger, allocation and policy rows and the audit rows, not just statuses."""

from __future__ import annotations


import pytest
from django.db import DatabaseError, connection, transaction

import verification.services
from accounts.models import Allocation, BudgetPolicy, LedgerEntry
from clearinghouse.models import AppendOnlyError
from tests.conftest import last_event
from tests.verification.conftest import (
    BUDGET,
    ask,
    assert_error,
    assert_ledger_adds_up,
    audit_events,
    hypothesis,
    ledger,
    publish_gbsg2,
    spent_micro,
    state,
)
from verification.models import Verification

POLICY_FIELDS = {"dataset", "total_cap", "total_spent", "default_allocation", "max_epsilon_per_query",
                 "min_subgroup", "daily_limit"}
DEFAULT_POLICY = {"dataset": "gbsg2", "total_cap": "20", "total_spent": "0", "default_allocation": "2",
                  "max_epsilon_per_query": "1", "min_subgroup": 20, "daily_limit": None}


def policy_url(slug: str = "gbsg2") -> str:
    return f"/api/v1/datasets/{slug}/budget-policy/"


def allocation_url(user_id: int, slug: str = "gbsg2") -> str:
    return f"/api/v1/datasets/{slug}/allocations/{user_id}/"


def distinct(release, i: int, epsilon) -> dict:
    """The i-th of many different hypotheses (never reused): mean age above a varying tumour size."""
    return hypothesis(release, "mean", {"column": "age"}, epsilon=epsilon,
                      where=[{"column": "tsize", "op": ">=", "value": i}])


def budget_row(client, slug: str = "gbsg2") -> dict:
    response = client.get(BUDGET)
    assert response.status_code == 200, response.content
    [row] = [r for r in response.json()["budgets"] if r["dataset"] == slug]
    return row


def assert_nothing_charged_and_denied(response, before: dict, code: str, status: int, actor) -> dict:
    error = assert_error(response, status, code)
    assert state() == before  # ledger, verification rows, allocations and the policy as they were
    event = last_event()
    assert (event.action, event.object_type, event.actor_id) == ("verification.create", "verification", actor.pk)
    assert event.outcome == ("denied" if status == 403 else "refused")
    assert event.details["code"] == code and event.details["status"] == status
    return error


# --------------------------------------------------------------------------------------------
# 3. Charging until the allocation is spent
# --------------------------------------------------------------------------------------------

def test_charges_until_the_allocation_is_exhausted_then_403(gbsg2, researcher, clients):
    dataset, release = gbsg2
    user, client = researcher[0], clients["researcher"]
    lefts = []
    for i in range(2):
        response = ask(client, distinct(release, i, 0.7))
        assert response.status_code == 201, response.content
        lefts.append(response.json()["budget"]["left"])
    assert lefts == ["1.3", "0.6"]
    assert spent_micro(user, dataset) == 1_400_000

    before = state()
    error = assert_nothing_charged_and_denied(ask(client, distinct(release, 2, 0.7)), before, "budget_exhausted",
                                              403, user)
    assert error["details"] == {"requested": "0.7", "left": "0.6", "limited_by": "allocation"}
    assert "0.6" in error["message"] and "nothing was charged" in error["message"]
    assert Verification.objects.count() == 2

    # Exactly what is left still goes through, to the last millionth.
    response = ask(client, distinct(release, 3, 0.6))
    assert response.status_code == 201, response.content
    assert response.json()["budget"] == {"dataset": "gbsg2", "allocation": "2", "spent": "2", "left": "0"}
    before = state()
    error = assert_nothing_charged_and_denied(ask(client, distinct(release, 4, 0.001)), before,
                                              "budget_exhausted", 403, user)  # the smallest ε a query may ask
    assert error["details"] == {"requested": "0.001", "left": "0", "limited_by": "allocation"}

    allocation = Allocation.objects.get(user=user, dataset=dataset)
    assert (allocation.epsilon_micro, allocation.spent_micro) == (2_000_000, 2_000_000)
    charges = ledger(user, dataset, "charge")
    assert [c.epsilon_micro for c in charges] == [700_000, 700_000, 600_000]
    assert [c.spent_after_micro for c in charges] == [700_000, 1_400_000, 2_000_000]
    assert all(c.allocation_after_micro == 2_000_000 for c in charges)
    assert BudgetPolicy.objects.get(dataset=dataset).total_spent_micro == 2_000_000
    assert_ledger_adds_up(dataset)
    # An identical (answered) hypothesis is still free once the budget is gone.
    reused = ask(client, distinct(release, 0, 0.7))
    assert reused.status_code == 200 and reused.json()["reused"] is True
    assert budget_row(client) == {"dataset": "gbsg2", "allocation": "2", "spent": "2", "left": "0",
                                  "dataset_left": "18", "max_epsilon_per_query": "1"}


def test_the_dataset_total_cap_limits_every_researcher(gbsg2, custodian, researcher, ravi, clients):
    dataset, release = gbsg2
    response = clients["custodian"].put(policy_url(), {"total_cap": "1"}, format="json")
    assert response.status_code == 200, response.content
    assert ask(clients["researcher"], distinct(release, 0, 0.6)).status_code == 201

    def spending() -> dict:  # ravi's first request creates his (default, unspent) allocation: left out
        now = state()
        now["ledger"] = [row for row in now["ledger"] if row[1] != "allocation"]
        now["allocations"] = [row for row in now["allocations"] if row[0] != ravi[0].pk]
        return now

    before = spending()
    response = ask(ravi[1], distinct(release, 1, 0.5))
    error = assert_error(response, 403, "budget_exhausted")
    assert error["details"] == {"requested": "0.5", "left": "0.4", "limited_by": "dataset"}
    assert "dataset" in error["message"]
    assert spending() == before
    assert spent_micro(ravi[0], dataset) == 0
    assert [e.kind for e in ledger(ravi[0], dataset)] == ["allocation"]
    assert last_event().outcome == "denied" and last_event().details["code"] == "budget_exhausted"
    assert budget_row(ravi[1])["left"] == "0.4"

    response = ask(ravi[1], distinct(release, 1, 0.4))
    assert response.status_code == 201, response.content
    assert response.json()["budget"] == {"dataset": "gbsg2", "allocation": "2", "spent": "0.4", "left": "0"}
    assert BudgetPolicy.objects.get(dataset=dataset).total_spent_micro == 1_000_000
    assert budget_row(clients["researcher"])["left"] == "0"
    error = assert_error(ask(clients["researcher"], distinct(release, 2, 0.1)), 403, "budget_exhausted")
    assert error["details"]["limited_by"] == "dataset" and error["details"]["left"] == "0"
    assert_ledger_adds_up(dataset)


def test_get_budget_shows_allocation_spent_and_left_per_dataset(gbsg2, custodian, researcher, clients):
    dataset, release = gbsg2
    publish_gbsg2(custodian[0], slug="gbsg2-b", policy=False)  # no policy yet: the settings' defaults
    response = clients["researcher"].get(BUDGET)
    assert response.status_code == 200
    fresh = {"allocation": "2", "spent": "0", "left": "2", "dataset_left": "20", "max_epsilon_per_query": "1"}
    assert response.json() == {"budgets": [{"dataset": "gbsg2", **fresh}, {"dataset": "gbsg2-b", **fresh}]}
    event = last_event()
    assert (event.action, event.outcome, event.actor_id) == ("budget.read", "success", researcher[0].pk)

    ask(clients["researcher"], hypothesis(release, epsilon=0.25))
    clients["custodian"].put(allocation_url(researcher[0].pk, "gbsg2-b"), {"epsilon": "3.5"}, format="json")
    budgets = clients["researcher"].get(BUDGET).json()["budgets"]
    assert budgets == [
        {"dataset": "gbsg2", "allocation": "2", "spent": "0.25", "left": "1.75", "dataset_left": "19.75",
         "max_epsilon_per_query": "1"},
        {"dataset": "gbsg2-b", "allocation": "3.5", "spent": "0", "left": "3.5", "dataset_left": "20",
         "max_epsilon_per_query": "1"},
    ]
    for role, status in (("anonymous", 401), ("unverified", 403), ("custodian", 403), ("auditor", 403)):
        assert clients[role].get(BUDGET).status_code == status


# --------------------------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------------------------

def test_ledger_adds_up_over_allocations_charges_and_refunds(gbsg2, researcher, ravi, clients, monkeypatch):
    dataset, release = gbsg2
    user = researcher[0]
    assert ask(clients["researcher"], distinct(release, 0, 0.3)).status_code == 201
    assert clients["custodian"].put(allocation_url(user.pk), {"epsilon": "4.25"}, format="json").status_code == 200
    assert ask(clients["researcher"], distinct(release, 1, 1)).status_code == 201
    assert ask(ravi[1], distinct(release, 2, 0.123456)).status_code == 201
    real_answer = verification.services.answer
    monkeypatch.setattr(verification.services, "answer", lambda *a, **k: 1 / 0)
    assert ask(clients["researcher"], distinct(release, 3, 0.5)).status_code == 500
    monkeypatch.setattr(verification.services, "answer", real_answer)
    assert ask(clients["researcher"], distinct(release, 3, 0.5)).status_code == 201

    entries = [(e.kind, e.epsilon_micro, e.spent_after_micro, e.allocation_after_micro)
               for e in ledger(user, dataset)]
    assert entries == [
        ("allocation", 2_000_000, 0, 2_000_000),  # the default, at the first charge
        ("charge", 300_000, 300_000, 2_000_000),
        ("allocation", 4_250_000, 300_000, 4_250_000),
        ("charge", 1_000_000, 1_300_000, 4_250_000),
        ("charge", 500_000, 1_800_000, 4_250_000),
        ("refund", 500_000, 1_300_000, 4_250_000),
        ("charge", 500_000, 1_800_000, 4_250_000),
    ]
    charges = sum(e.epsilon_micro for e in ledger(user, dataset, "charge"))
    refunds = sum(e.epsilon_micro for e in ledger(user, dataset, "refund"))
    assert charges - refunds == Allocation.objects.get(user=user, dataset=dataset).spent_micro == 1_800_000
    assert BudgetPolicy.objects.get(dataset=dataset).total_spent_micro == 1_800_000 + 123_456
    assert_ledger_adds_up(dataset)
    assert budget_row(clients["researcher"])["spent"] == "1.8"
    assert budget_row(ravi[1])["spent"] == "0.123456"


def test_ledger_rows_cannot_be_changed_or_removed(gbsg2, researcher, clients):
    dataset, release = gbsg2
    assert ask(clients["researcher"], hypothesis(release)).status_code == 201
    entry = ledger(kind="charge")[0]
    rows = list(LedgerEntry.objects.order_by("id").values())

    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.filter(pk=entry.pk).update(epsilon_micro=1)
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(AppendOnlyError):
        LedgerEntry.objects.bulk_update([entry], ["epsilon_micro"])
    entry.epsilon_micro = 1
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    table = LedgerEntry._meta.db_table
    for sql in (f"UPDATE {table} SET epsilon_micro = 1 WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [entry.pk])
    assert list(LedgerEntry.objects.order_by("id").values()) == rows


# --------------------------------------------------------------------------------------------
# 6. The daily limit
# --------------------------------------------------------------------------------------------

def test_daily_limit_counts_charged_hypotheses_only(gbsg2, custodian, researcher, ravi, clients, monkeypatch):
    dataset, release = gbsg2
    client = clients["researcher"]
    response = clients["custodian"].put(policy_url(), {"daily_limit": 2}, format="json")
    assert response.status_code == 200 and response.json()["daily_limit"] == 2

    real_answer = verification.services.answer
    monkeypatch.setattr(verification.services, "answer", lambda *a, **k: 1 / 0)
    assert ask(client, distinct(release, 0, 0.1)).status_code == 500  # failed and refunded: not counted
    monkeypatch.setattr(verification.services, "answer", real_answer)
    assert ask(client, distinct(release, 1, 0.1)).status_code == 201
    assert ask(ravi[1], distinct(release, 5, 0.1)).status_code == 201  # someone else's: not counted
    assert ask(client, distinct(release, 5, 0.1, )).status_code == 200  # reused: not counted
    assert ask(client, distinct(release, 2, 0.1)).status_code == 201

    before = state()
    response = ask(client, distinct(release, 3, 0.1))
    error = assert_nothing_charged_and_denied(response, before, "daily_limit_reached", 429, researcher[0])
    assert "2" in error["message"] and "gbsg2" in error["message"]
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 24 * 3600 + 1
    # Reused answers are still given, free, once the limit is reached.
    reused = ask(client, distinct(release, 1, 0.1))
    assert reused.status_code == 200 and reused.json()["reused"] is True
    assert ask(ravi[1], distinct(release, 3, 0.1)).status_code == 201  # the limit is per researcher
    assert len(ledger(researcher[0], dataset, "charge")) == 3 and len(ledger(researcher[0], dataset, "refund")) == 1
    assert_ledger_adds_up(dataset)

    # Lifting the limit (null) lets the researcher go on.
    assert clients["custodian"].put(policy_url(), {"daily_limit": None}, format="json").json()["daily_limit"] is None
    assert ask(client, distinct(release, 3, 0.1)).status_code == 200  # ravi answered it meanwhile: reused
    assert ask(client, distinct(release, 4, 0.1)).status_code == 201


# --------------------------------------------------------------------------------------------
# 7. The custodian's endpoints: allocations and the policy
# --------------------------------------------------------------------------------------------

def test_custodian_sets_an_allocation(gbsg2, custodian, researcher, clients):
    dataset, release = gbsg2
    user = researcher[0]
    response = clients["custodian"].put(allocation_url(user.pk), {"epsilon": "3.5"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"dataset": "gbsg2", "user": user.pk, "username": "rhea", "allocation": "3.5",
                               "spent": "0"}
    allocation = Allocation.objects.get(user=user, dataset=dataset)
    assert (allocation.epsilon_micro, allocation.spent_micro) == (3_500_000, 0)
    entries = ledger(user, dataset, "allocation")
    assert [(e.epsilon_micro, e.by_id) for e in entries] == [(2_000_000, None), (3_500_000, custodian[0].pk)]
    assert entries[-1].allocation_after_micro == 3_500_000 and entries[-1].spent_after_micro == 0
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "budget.allocation.set", "success", custodian[0].pk, "allocation", str(allocation.pk))
    assert set(event.details) == {"dataset", "researcher", "before", "after"}
    assert (event.details["dataset"], event.details["researcher"]) == ("gbsg2", "rhea")
    assert (event.details["before"], event.details["after"]) == ("2", "3.5")
    assert budget_row(clients["researcher"])["allocation"] == "3.5"

    # Spend some, then the allocation may go down to what is spent, and not below.
    assert ask(clients["researcher"], hypothesis(release, epsilon=1)).status_code == 201
    assert ask(clients["researcher"], distinct(release, 1, 0.5)).status_code == 201
    ledger_before = state()["ledger"]
    error = assert_error(clients["custodian"].put(allocation_url(user.pk), {"epsilon": 1.499999}, format="json"),
                         409, "allocation_below_spent")
    assert "1.5" in error["message"]
    assert state()["ledger"] == ledger_before
    assert Allocation.objects.get(pk=allocation.pk).epsilon_micro == 3_500_000
    assert (last_event().action, last_event().outcome) == ("budget.allocation.set", "refused")
    response = clients["custodian"].put(allocation_url(user.pk), {"epsilon": 1.5}, format="json")
    assert response.status_code == 200 and response.json()["allocation"] == "1.5"
    assert response.json()["spent"] == "1.5"
    error = assert_error(ask(clients["researcher"], distinct(release, 2, 0.1)), 403, "budget_exhausted")
    assert error["details"]["left"] == "0"
    assert_ledger_adds_up(dataset)


@pytest.mark.parametrize("body, status, code", [
    ({"epsilon": -1}, 400, "invalid_epsilon"),
    ({"epsilon": "abc"}, 400, "invalid_epsilon"),
    ({"epsilon": "NaN"}, 400, "invalid_epsilon"),
    ({"epsilon": "Infinity"}, 400, "invalid_epsilon"),
    ({"epsilon": True}, 400, "invalid_epsilon"),
    ({"epsilon": None}, 400, "invalid_epsilon"),
    ({"epsilon": "0.1234567"}, 400, "invalid_epsilon"),
    ({"epsilon": 1001}, 400, "invalid_epsilon"),
    ({"epsilon": 1, "extra": 2}, 400, "invalid_epsilon"),
    ({}, 400, "invalid_epsilon"),
    ([1], 400, "invalid_epsilon"),
])
def test_bad_allocation_values_are_refused(body, status, code, gbsg2, researcher, clients):
    before = state()
    assert_error(clients["custodian"].put(allocation_url(researcher[0].pk), body, format="json"), status, code)
    assert state() == before
    assert (last_event().action, last_event().outcome) == ("budget.allocation.set", "refused")


def test_allocations_only_for_researchers_and_only_by_custodians(gbsg2, researcher, auditor, custodian, clients):
    before = state()
    error = assert_error(clients["custodian"].put(allocation_url(auditor[0].pk), {"epsilon": 1}, format="json"),
                         409, "not_a_researcher")
    assert str(auditor[0].pk) in error["message"]
    assert_error(clients["custodian"].put(allocation_url(999_999), {"epsilon": 1}, format="json"), 404, "not_found")
    assert_error(clients["custodian"].put(allocation_url(researcher[0].pk, "nope"), {"epsilon": 1}, format="json"),
                 404, "not_found")
    for role, status in (("anonymous", 401), ("unverified", 403), ("researcher", 403), ("auditor", 403)):
        response = clients[role].put(allocation_url(researcher[0].pk), {"epsilon": 100}, format="json")
        assert response.status_code == status
        assert last_event().outcome == "denied" and last_event().action == "budget.allocation.set"
        assert_error(clients[role].get(policy_url()), status, response.json()["error"]["code"])
        assert_error(clients[role].put(policy_url(), {"total_cap": 1000}, format="json"), status,
                     response.json()["error"]["code"])
    assert state() == before


def test_custodian_reads_and_sets_the_policy(gbsg2, custodian, researcher, ravi, clients):
    dataset, release = gbsg2
    response = clients["custodian"].get(policy_url())
    assert response.status_code == 200 and response.json() == DEFAULT_POLICY
    assert (last_event().action, last_event().object_id) == ("budget.policy.read", "gbsg2")

    changes = {"total_cap": "5", "default_allocation": 0.75, "max_epsilon_per_query": "0.5", "min_subgroup": 30,
               "daily_limit": 10}
    response = clients["custodian"].put(policy_url(), changes, format="json")
    assert response.status_code == 200, response.content
    after = {"dataset": "gbsg2", "total_cap": "5", "total_spent": "0", "default_allocation": "0.75",
             "max_epsilon_per_query": "0.5", "min_subgroup": 30, "daily_limit": 10}
    assert response.json() == after
    policy = BudgetPolicy.objects.get(dataset=dataset)
    assert (policy.total_cap_micro, policy.default_allocation_micro, policy.max_epsilon_micro, policy.min_subgroup,
            policy.daily_limit) == (5_000_000, 750_000, 500_000, 30, 10)
    [event] = audit_events(action="budget.policy.set")
    assert (event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "success", custodian[0].pk, "dataset", "gbsg2")
    assert event.details == {"before": {k: v for k, v in DEFAULT_POLICY.items() if k != "dataset"},
                             "after": {k: v for k, v in after.items() if k != "dataset"}}

    # The new policy applies: a new researcher's default allocation, the per-query maximum.
    error = assert_error(ask(ravi[1], hypothesis(release, epsilon=0.6)), 400, "epsilon_above_maximum")
    assert "0.5" in error["message"]
    response = ask(ravi[1], hypothesis(release, epsilon=0.5))
    assert response.status_code == 201
    assert response.json()["budget"] == {"dataset": "gbsg2", "allocation": "0.75", "spent": "0.5", "left": "0.25"}
    assert ledger(ravi[0], dataset, "allocation")[0].epsilon_micro == 750_000

    # The total cap cannot go below what is spent; unknown fields and bad values are refused.
    before = state()
    error = assert_error(clients["custodian"].put(policy_url(), {"total_cap": "0.4"}, format="json"), 409,
                         "invalid_total_cap")
    assert "0.5" in error["message"]
    assert (last_event().action, last_event().outcome) == ("budget.policy.set", "refused")
    for body, code in (({"total_cap": 1, "colour": "red"}, "invalid_policy"), ({}, "invalid_policy"),
                       ([1], "invalid_policy"), ({"total_cap": -1}, "invalid_total_cap"),
                       ({"total_cap": "abc"}, "invalid_total_cap"),
                       ({"max_epsilon_per_query": 0}, "invalid_max_epsilon_per_query"),
                       ({"default_allocation": "0.0000001"}, "invalid_default_allocation"),
                       ({"min_subgroup": 0}, "invalid_min_subgroup"), ({"min_subgroup": 2.5}, "invalid_min_subgroup"),
                       ({"daily_limit": 0}, "invalid_daily_limit"), ({"daily_limit": "5"}, "invalid_daily_limit"),
                       ({"daily_limit": True}, "invalid_daily_limit")):
        error = assert_error(clients["custodian"].put(policy_url(), body, format="json"), 400, code)
        if "colour" in body:
            assert "colour" in error["message"]
        assert (last_event().action, last_event().outcome) == ("budget.policy.set", "refused")
    assert state() == before
    assert len(audit_events(action="budget.policy.set", outcome="success")) == 1
    response = clients["custodian"].put(policy_url(), {"total_cap": "0.5"}, format="json")  # exactly what is spent
    assert response.status_code == 200 and response.json()["total_cap"] == "0.5"
    assert_error(ask(clients["researcher"], hypothesis(release, epsilon=0.1, where=[{"column": "age", "op": ">",
                                                                                      "value": 30}])),
                 403, "budget_exhausted")
    assert_error(clients["custodian"].get(policy_url("nope")), 404, "not_found")
