"""What one fresh verification costs the database: a ceiling on its queries (issue 15: the HTTP
round trip of a count was dominated by its SQL once the custody cache removed the decryption),
and the charge's guard against another user's or dataset's rows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.budgets import allocation_for, budget_charge, policy_for
from tests.verification.conftest import ask, hypothesis

pytestmark = pytest.mark.django_db

#: Token, release with its policy, the primary lookup, the allocation (read, then locked), the verification's
#: insert, two conditional charge updates, the allocation read back for the ledger, the ledger entry,
#: two audit rows (chain head + insert each), the answer's update, the budget in the response
#: (allocation, policy), and the savepoints around them: 25 on SQLite (32 before the reads were
#: shared); PostgreSQL adds the audit chain's advisory lock before each of the two audit rows.
MAX_QUERIES = {"sqlite": 25, "postgresql": 27}


def test_a_fresh_count_takes_at_most_its_queries(gbsg2, clients, django_assert_max_num_queries):
    dataset, release = gbsg2
    warm = ask(clients["researcher"], hypothesis(release, "count", {}, epsilon=0.1))  # allocation created here
    assert warm.status_code == 201, warm.content
    body = hypothesis(release, "count", {}, epsilon=0.1, where=[{"column": "age", "op": ">=", "value": 30}])
    from django.db import connection

    with django_assert_max_num_queries(MAX_QUERIES[connection.vendor]):
        response = ask(clients["researcher"], body)
    assert response.status_code == 201, response.content
    payload = response.json()
    assert payload["status"] == "answered" and payload["answer"]["kind"] == "count"
    assert payload["budget"]["spent"] == "0.2"


def test_the_charge_refuses_rows_of_another_user_or_dataset(gbsg2, researcher, custodian):
    dataset, release = gbsg2
    mine = allocation_for(researcher[0], dataset)
    with pytest.raises(ValueError):
        budget_charge(user=custodian[0], dataset=dataset, epsilon=Decimal("0.1"), verification=None,
                      allocation=mine, policy=policy_for(dataset))
    mine.refresh_from_db()
    assert mine.spent_micro == 0
