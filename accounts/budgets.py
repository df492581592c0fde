"""Privacy budgets: each dataset's policy, each researcher's allocation, charges and refunds.

ε is kept in exact millionths (see ``accounts.models``). A charge is two conditional UPDATEs
inside one transaction: the researcher's allocation (``spent + ε <= epsilon``) and the dataset's
total (``total_spent + ε <= total_cap``). Each
UPDATE re-checks its condition on the row it locks, so concurrent charges on PostgreSQL queue on
the row and none can overspend; a refused second UPDATE rolls the first back. Every change is a
ledger entry (append-only) and an audit row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import EPSILON_PLACES, Allocation, BudgetPolicy, LedgerEntry, from_micro, to_micro
from clearinghouse.errors import ApplicationError
from clearinghouse.models import Dataset
from clearinghouse.services.audit import audit_record

__all__ = [
    "QUANTUM", "BudgetRefused", "allocation_for", "allocation_set", "budget_charge", "budget_refund",
    "budget_summary", "epsilon_decimal", "policy_for", "policy_set",
]

QUANTUM = Decimal(1).scaleb(-EPSILON_PLACES)  # 0.000001
MAX_EPSILON_SETTING = Decimal(1000)


def epsilon_decimal(value: Any, name: str = "epsilon") -> Decimal:
    """A positive ε with at most six decimal places, as an exact Decimal (400 otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ApplicationError(f"{name} must be a number.", code=f"invalid_{name}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ApplicationError(f"{name} must be a number, not {value!r}.", code=f"invalid_{name}") from None
    if not number.is_finite() or number < 0:
        raise ApplicationError(f"{name} must be a finite number ≥ 0.", code=f"invalid_{name}")
    if number != number.quantize(QUANTUM):
        raise ApplicationError(f"{name} may have at most {EPSILON_PLACES} decimal places.", code=f"invalid_{name}")
    if number > MAX_EPSILON_SETTING:
        raise ApplicationError(f"{name} must be at most {MAX_EPSILON_SETTING}.", code=f"invalid_{name}")
    return number.quantize(QUANTUM)


def _setting(value: float) -> int:
    """A settings default (a float) in millionths."""
    return to_micro(Decimal(str(value)).quantize(QUANTUM))


# --------------------------------------------------------------------------- policy
def policy_for(dataset: Dataset) -> BudgetPolicy:
    """The dataset's policy, created from the settings' defaults the first time it is needed."""
    policy = BudgetPolicy.objects.filter(dataset=dataset).first()
    if policy is not None:
        return policy
    try:
        with transaction.atomic():
            return BudgetPolicy.objects.create(
                dataset=dataset, total_cap_micro=_setting(settings.VERIFICATION_DATASET_CAP),
                default_allocation_micro=_setting(settings.VERIFICATION_DEFAULT_ALLOCATION),
                max_epsilon_micro=_setting(settings.VERIFICATION_MAX_EPSILON),
                min_subgroup=settings.VERIFICATION_MIN_SUBGROUP)
    except IntegrityError:  # created meanwhile by a concurrent request
        return BudgetPolicy.objects.get(dataset=dataset)


POLICY_FIELDS = ("total_cap", "default_allocation", "max_epsilon_per_query", "min_subgroup", "daily_limit")


def _policy_dict(policy: BudgetPolicy) -> dict[str, Any]:
    return {"total_cap": _text(policy.total_cap_micro), "total_spent": _text(policy.total_spent_micro),
            "default_allocation": _text(policy.default_allocation_micro),
            "max_epsilon_per_query": _text(policy.max_epsilon_micro), "min_subgroup": policy.min_subgroup,
            "daily_limit": policy.daily_limit}


def policy_set(*, dataset: Dataset, changes: dict[str, Any], by) -> BudgetPolicy:
    unknown = sorted(set(changes) - set(POLICY_FIELDS))
    if unknown or not changes:
        raise ApplicationError(f"Set one or more of {', '.join(POLICY_FIELDS)}" +
                               (f"; unknown: {', '.join(unknown)}." if unknown else "."), code="invalid_policy")
    values: dict[str, Any] = {}
    for name in ("total_cap", "default_allocation", "max_epsilon_per_query"):
        if name in changes:
            values[name] = epsilon_decimal(changes[name], name)
    if values.get("max_epsilon_per_query") == 0:
        raise ApplicationError("max_epsilon_per_query must be above 0.", code="invalid_max_epsilon_per_query")
    for name, least in (("min_subgroup", 1), ("daily_limit", 1)):
        if name in changes:
            value = changes[name]
            if value is None and name == "daily_limit":
                values[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 10**9:
                raise ApplicationError(f"{name} must be a whole number ≥ {least}"
                                       + (" or null" if name == "daily_limit" else "") + ".", code=f"invalid_{name}")
            values[name] = value
    columns = {"total_cap": "total_cap_micro", "default_allocation": "default_allocation_micro",
               "max_epsilon_per_query": "max_epsilon_micro"}
    with transaction.atomic():
        policy = BudgetPolicy.objects.select_for_update().get(pk=policy_for(dataset).pk)
        before = _policy_dict(policy)
        if "total_cap" in values and values["total_cap"] < policy.total_spent:
            raise ApplicationError(f"total_cap {values['total_cap']} is below the ε already spent on this dataset "
                                   f"({policy.total_spent}).", code="invalid_total_cap", status_code=409)
        for name, value in values.items():
            if name in columns:
                setattr(policy, columns[name], to_micro(value))
            else:
                setattr(policy, name, value)
        policy.save()
        audit_record(action="budget.policy.set", actor=by, object_type="dataset", object_id=dataset.slug,
                     details={"before": before, "after": _policy_dict(policy)})
    return policy


# --------------------------------------------------------------------------- allocations
def allocation_for(user, dataset: Dataset) -> Allocation:
    """The researcher's allocation on the dataset; the policy's default the first time (with its ledger entry)."""
    allocation = Allocation.objects.filter(user=user, dataset=dataset).first()
    if allocation is not None:
        return allocation
    policy = policy_for(dataset)
    try:
        with transaction.atomic():
            allocation = Allocation.objects.create(user=user, dataset=dataset,
                                                   epsilon_micro=policy.default_allocation_micro)
            LedgerEntry.objects.create(user=user, dataset=dataset, kind=LedgerEntry.Kind.ALLOCATION,
                                       epsilon_micro=allocation.epsilon_micro, spent_after_micro=0,
                                       allocation_after_micro=allocation.epsilon_micro)
            return allocation
    except IntegrityError:
        return Allocation.objects.get(user=user, dataset=dataset)


def allocation_set(*, user, dataset: Dataset, epsilon: Any, by) -> Allocation:
    """A custodian sets a verified researcher's allocation on a dataset (not below what is spent)."""
    if not user.is_researcher:
        raise ApplicationError(f"User {user.pk} is not a researcher.", code="not_a_researcher", status_code=409)
    value = epsilon_decimal(epsilon)
    allocation_for(user, dataset)
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update().get(user=user, dataset=dataset)
        if value < allocation.spent:
            raise ApplicationError(f"The allocation cannot go below the ε already spent ({allocation.spent}).",
                                   code="allocation_below_spent", status_code=409)
        before = allocation.epsilon_micro
        allocation.epsilon_micro = to_micro(value)
        allocation.save(update_fields=["epsilon_micro", "updated_at"])
        LedgerEntry.objects.create(user=user, dataset=dataset, kind=LedgerEntry.Kind.ALLOCATION,
                                   epsilon_micro=allocation.epsilon_micro, spent_after_micro=allocation.spent_micro,
                                   allocation_after_micro=allocation.epsilon_micro, by=by)
        audit_record(action="budget.allocation.set", actor=by, object_type="allocation", object_id=allocation.pk,
                     details={"dataset": dataset.slug, "researcher": user.username, "before": _text(before),
                              "after": _text(allocation.epsilon_micro)})
    return allocation


# --------------------------------------------------------------------------- charge and refund
@dataclass
class BudgetRefused(Exception):
    """The charge would overspend the researcher's allocation or the dataset's total."""

    which: str  # "allocation" or "dataset"
    left: Decimal
    requested: Decimal


def budget_charge(*, user, dataset: Dataset, epsilon: Decimal, verification, allocation: Allocation | None = None,
                  policy: BudgetPolicy | None = None) -> Allocation:
    """Charge ε. Call inside the transaction that records the verification: on refusal the caller's
    transaction rolls everything back (raise :class:`BudgetRefused`).

    ``allocation`` and ``policy`` are the caller's rows for this user and dataset when it has them
    (saving two reads); only their primary keys are used, since both updates are conditional on
    the values in the database, not on the copies in memory."""
    allocation = allocation if allocation is not None else allocation_for(user, dataset)
    policy = policy if policy is not None else policy_for(dataset)
    if allocation.user_id != user.pk or allocation.dataset_id != dataset.pk or policy.dataset_id != dataset.pk:
        raise ValueError("budget_charge: the allocation and policy must be this user's on this dataset")
    micro = to_micro(epsilon)
    charged = Allocation.objects.filter(pk=allocation.pk, spent_micro__lte=F("epsilon_micro") - micro).update(
        spent_micro=F("spent_micro") + micro, updated_at=timezone.now())
    if not charged:
        allocation.refresh_from_db()
        raise BudgetRefused("allocation", allocation.epsilon - allocation.spent, epsilon)
    within_cap = BudgetPolicy.objects.filter(pk=policy.pk, total_spent_micro__lte=F("total_cap_micro") - micro).update(
        total_spent_micro=F("total_spent_micro") + micro)
    if not within_cap:
        policy.refresh_from_db()
        raise BudgetRefused("dataset", policy.total_cap - policy.total_spent, epsilon)
    allocation.refresh_from_db()
    LedgerEntry.objects.create(user=user, dataset=dataset, kind=LedgerEntry.Kind.CHARGE, epsilon_micro=micro,
                               spent_after_micro=allocation.spent_micro,
                               allocation_after_micro=allocation.epsilon_micro, verification=verification)
    return allocation


def budget_refund(*, verification) -> Allocation:
    """Give back a failed verification's ε (its own ledger entry). Call inside a transaction."""
    micro = verification.epsilon_micro
    Allocation.objects.filter(user=verification.user, dataset=verification.dataset).update(
        spent_micro=F("spent_micro") - micro, updated_at=timezone.now())
    BudgetPolicy.objects.filter(dataset=verification.dataset).update(total_spent_micro=F("total_spent_micro") - micro)
    allocation = Allocation.objects.get(user=verification.user, dataset=verification.dataset)
    LedgerEntry.objects.create(user=verification.user, dataset=verification.dataset, kind=LedgerEntry.Kind.REFUND,
                               epsilon_micro=micro, spent_after_micro=allocation.spent_micro,
                               allocation_after_micro=allocation.epsilon_micro, verification=verification)
    return allocation


# --------------------------------------------------------------------------- reading
def budget_summary(user) -> list[dict[str, Any]]:
    """The researcher's ε per dataset: allocation, spent, left (and what the dataset has left)."""
    allocations = {a.dataset_id: a for a in Allocation.objects.filter(user=user)}
    policies = {p.dataset_id: p for p in BudgetPolicy.objects.all()}
    out = []
    for dataset in Dataset.objects.order_by("slug"):
        policy = policies.get(dataset.pk)
        allocation = allocations.get(dataset.pk)
        total_cap = policy.total_cap_micro if policy else _setting(settings.VERIFICATION_DATASET_CAP)
        total_spent = policy.total_spent_micro if policy else 0
        given = allocation.epsilon_micro if allocation else (
            policy.default_allocation_micro if policy else _setting(settings.VERIFICATION_DEFAULT_ALLOCATION))
        spent = allocation.spent_micro if allocation else 0
        max_query = policy.max_epsilon_micro if policy else _setting(settings.VERIFICATION_MAX_EPSILON)
        out.append({"dataset": dataset.slug, "allocation": _text(given), "spent": _text(spent),
                    "left": _text(min(given - spent, total_cap - total_spent)),
                    "dataset_left": _text(total_cap - total_spent), "max_epsilon_per_query": _text(max_query)})
    return out


def _text(micro: int) -> str:
    """Millionths as a plain decimal string ("0.5", "2")."""
    return format(from_micro(micro).normalize(), "f")
