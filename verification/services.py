"""Verification requests: check, reuse or charge, compute on the real rows, store, audit.

Order of work for ``POST /api/v1/verifications/``:

1. check the request and the hypothesis against the dataset's schema and policy (400, nothing
   charged);
2. an identical canonical hypothesis already answered on the dataset is answered from the
   stored answer at no charge (``reused``), so averaging fresh noise away is impossible;
3. otherwise one transaction records the verification as the hypothesis's only computing
   answer (a partial unique index) and charges ε (conditional UPDATEs; 403 when over budget);
4. the answer is computed with fresh noise from the operating system's randomness; a failure is
   refunded with its own ledger entry;
5. the answer is stored and audited (spec, answer, ε) for the auditors.

The database connection lost after the charge committed (step 5's write fails) is answered 503
``database_unavailable``, never with the answer: the request marks the verification failed and
refunds it once more on a fresh connection, and when that fails too the verification stays
computing until :func:`verifications_reap_stale` refunds it. No ε stays charged without an
answer or a refund entry.

``POST /api/v1/verifications/preview/`` (:func:`verification_preview`) checks the hypothesis the
same way (step 1, the same 400s) and then simulates its answer on the published synthetic release
only (:mod:`verification.core.preview`): no real row is read, nothing is charged or stored but its
audit row.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from accounts.budgets import BudgetRefused, allocation_for, budget_charge, budget_refund, epsilon_decimal, policy_for
from accounts.models import Allocation, BudgetPolicy, to_micro
from clearinghouse.errors import ApplicationError
from clearinghouse.custody import CustodyError, custody_read
from clearinghouse.models import AuditEvent
from clearinghouse.plain import json_safe
from clearinghouse.schema import Schema
from clearinghouse.services.audit import audit_record
from releases.models import Release
from releases.selectors import release_synthetic_rows
from verification.core import KINDS, Hypothesis, HypothesisError, answer, parse_hypothesis, verdict_for
from verification.core.hypothesis import epsilon_text
from verification.core.kinds import EXACT, rows_for
from verification.core.noise import NoiseSource
from verification.core.preview import preview
from verification.models import Verification

__all__ = ["budget_left", "verification_preview", "verification_submit", "verifications_reap_stale"]

logger = logging.getLogger(__name__)
Status = Verification.Status

#: The error a reaped verification records.
STALE_ERROR = "the computation did not finish (its process stopped); refunded"

#: What a lost database connection raises (a terminated backend, a restarted server, a cut network).
DATABASE_LOST = (OperationalError, InterfaceError)


def _release(raw: dict) -> Release:
    release_id = raw.get("release")
    if isinstance(release_id, bool) or not isinstance(release_id, int):
        raise ApplicationError("release must be the id (a whole number) of the published release the hypothesis "
                               "came from.", code="invalid_release")
    release = (Release.objects.select_related("dataset", "dataset__budget_policy")
               .filter(pk=release_id, published_at__isnull=False).first())
    if release is None:
        raise ApplicationError(f"There is no published release {release_id}.", code="unknown_release")
    dataset = raw.get("dataset")
    if dataset is not None and dataset != release.dataset.slug:
        raise ApplicationError(f"Release {release_id} is a release of {release.dataset.slug!r}, not of {dataset!r}.",
                               code="release_dataset_mismatch")
    return release


def _hypothesis(raw: dict, release: Release, policy: BudgetPolicy) -> tuple[Hypothesis, Schema]:
    schema = Schema.from_dict(release.dataset.schema)
    spec = {key: value for key, value in raw.items() if key != "dataset"}
    try:
        hypothesis = parse_hypothesis(spec, schema, max_epsilon=float(policy.max_epsilon_per_query))
    except HypothesisError as exc:
        raise ApplicationError(exc.message, code=exc.code) from None
    try:
        epsilon_decimal(hypothesis.epsilon_text)  # at most six decimal places: charged exactly
    except ApplicationError as exc:
        raise ApplicationError(exc.message, code="bad_epsilon") from None
    if hypothesis.kind not in KINDS:
        raise ApplicationError(f"kind {hypothesis.kind!r} is not available yet on this server.",
                               code="kind_not_available")
    return hypothesis, schema


def _checked(raw: Any) -> tuple[Release, BudgetPolicy, Hypothesis, Schema]:
    """Step 1 of a verification (and all of a preview's checks): the body, its release and its
    hypothesis against the dataset's schema and policy; an ApplicationError (400) otherwise."""
    if not isinstance(raw, dict):
        raise ApplicationError("The body must be a JSON object: a hypothesis.", code="malformed")
    release = _release(raw)
    # read with the release (one query); created from the settings' defaults the first time
    policy = getattr(release.dataset, "budget_policy", None) or policy_for(release.dataset)
    hypothesis, schema = _hypothesis(raw, release, policy)
    return release, policy, hypothesis, schema


def answer_payload(result) -> dict[str, Any]:
    """The answer as stored, audited and returned: JSON-safe, its ε figures as exact decimal strings."""
    payload = result.to_dict()
    payload["epsilon"] = epsilon_text(payload["epsilon"])
    payload["epsilon_split"] = {part: epsilon_text(eps) for part, eps in (payload["epsilon_split"] or {}).items()}
    return payload


def _key(hypothesis: Hypothesis) -> str:
    return hashlib.sha256(hypothesis.canonical().encode("utf-8")).hexdigest()


def budget_left(user, dataset) -> dict[str, str]:
    allocation = allocation_for(user, dataset)
    policy = policy_for(dataset)
    left = min(allocation.epsilon - allocation.spent, policy.total_cap - policy.total_spent)
    return {"dataset": dataset.slug, "allocation": _plain(allocation.epsilon), "spent": _plain(allocation.spent),
            "left": _plain(left)}


def _left_as_is(user, dataset, policy: BudgetPolicy) -> Decimal:
    """What :func:`budget_left` calls ``left``, without creating the researcher's allocation (and
    its ledger entry) when they have none yet: then it is the policy's default allocation."""
    allocation = Allocation.objects.filter(user=user, dataset=dataset).first()
    mine = policy.default_allocation if allocation is None else allocation.epsilon - allocation.spent
    return max(min(mine, policy.total_cap - policy.total_spent), Decimal(0))


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _audit_details(verification: Verification, **extra: Any) -> dict[str, Any]:
    return {"dataset": verification.dataset.slug, "release": verification.release_id,
            "hypothesis": verification.hypothesis, "epsilon": _plain(verification.epsilon),
            "answer": verification.answer, **extra}


# --------------------------------------------------------------------------- reuse
def _reuse(existing: Verification, *, user, release: Release, hypothesis: Hypothesis, schema: Schema) -> Verification:
    """The stored answer, with the verdict for this claim and the estimate on this release."""
    stored = dict(existing.answer or {})
    if not stored.get("withheld"):
        stored["verdict"] = verdict_for(stored.get("ci_low"), stored.get("ci_high"), hypothesis.claim)
    if release.pk != existing.release_id:
        try:
            estimate = EXACT[hypothesis.kind](rows_for(release_synthetic_rows(release, schema), schema, hypothesis),
                                              schema, hypothesis)
            stored["synthetic_estimate"] = None if estimate is None or not np.isfinite(estimate) else float(estimate)
        except Exception:  # the synthetic side is a courtesy; the DP answer stands without it
            logger.exception("synthetic estimate for release %s failed", release.pk)
            stored["synthetic_estimate"] = None
    with transaction.atomic():
        reuse = Verification.objects.create(
            user=user, dataset=release.dataset, release=release, kind=hypothesis.kind, hypothesis=hypothesis.to_dict(),
            canonical_key=existing.canonical_key, epsilon_micro=0, status=Status.REUSED, answer=stored,
            reused_from=existing, answered_at=timezone.now())
        audit_record(action="verification.reuse", actor=user, object_type="verification", object_id=reuse.pk,
                     details=_audit_details(reuse, reused_from=existing.pk))
    return reuse


def _existing(dataset, key: str) -> Verification | None:
    return Verification.objects.filter(dataset=dataset, canonical_key=key, primary=True).first()


def _existing_unless_stale(dataset, key: str) -> Verification | None:
    """The hypothesis's one primary verification, after reaping it if it was left computing past
    ``VERIFICATION_STALE_AFTER_SECONDS`` (its process died): then the hypothesis can be asked again.

    The same rule as :func:`verifications_reap_stale` for this key, in the one query that finds
    the primary (a computing verification is always the primary: the partial unique index)."""
    existing = _existing(dataset, key)
    cutoff = timezone.now() - timedelta(seconds=settings.VERIFICATION_STALE_AFTER_SECONDS)
    if existing is None or existing.status != Status.COMPUTING or existing.created_at >= cutoff:
        return existing
    if _fail_and_refund(existing, error=STALE_ERROR):
        return None
    return _existing(dataset, key)  # finished (or reaped) by another process meanwhile


def _answered_or_busy(existing: Verification, **kwargs) -> Verification:
    if existing.status == Status.ANSWERED:
        return _reuse(existing, **kwargs)
    raise ApplicationError("An identical hypothesis is being answered right now; ask again in a moment to get "
                           "its answer at no charge.", code="verification_in_progress", status_code=409,
                           headers={"Retry-After": "2"})


# --------------------------------------------------------------------------- submit
def verification_submit(*, user, raw: Any) -> Verification:
    """Answer one hypothesis (see the module docstring). Returns the stored verification."""
    release, policy, hypothesis, schema = _checked(raw)
    dataset = release.dataset
    key = _key(hypothesis)
    context = {"user": user, "release": release, "hypothesis": hypothesis, "schema": schema}
    existing = _existing_unless_stale(dataset, key)
    if existing is not None:
        return _answered_or_busy(existing, **context)
    epsilon = Decimal(hypothesis.epsilon_text)
    allocation = allocation_for(user, dataset)
    try:
        with transaction.atomic():
            # The researcher's allocation row is locked first: their concurrent requests queue here,
            # so the daily count below and the charge see every earlier request of theirs.
            allocation = Allocation.objects.select_for_update().get(pk=allocation.pk)
            _check_daily_limit(user, dataset, policy)
            verification = Verification.objects.create(
                user=user, dataset=dataset, release=release, kind=hypothesis.kind, hypothesis=hypothesis.to_dict(),
                canonical_key=key, epsilon_micro=to_micro(epsilon), status=Status.COMPUTING, primary=True)
            try:
                budget_charge(user=user, dataset=dataset, epsilon=epsilon, verification=verification,
                              allocation=allocation, policy=policy)
            except BudgetRefused as refused:
                whose = "your allocation" if refused.which == "allocation" else "the dataset's total budget"
                raise ApplicationError(
                    f"This hypothesis asks for ε = {_plain(epsilon)} but {whose} has {_plain(refused.left)} left; "
                    "nothing was charged.", code="budget_exhausted", status_code=403,
                    details={"requested": _plain(epsilon),
                             "left": _plain(min(refused.left, Decimal(budget_left(user, dataset)["left"]))),
                             "limited_by": refused.which}) from None
            audit_record(action="verification.charge", actor=user, object_type="verification",
                         object_id=verification.pk, details=_audit_details(verification))
    except IntegrityError:
        # A concurrent identical hypothesis won the race to be the one answer: this one is not charged.
        existing = _existing(dataset, key)
        if existing is None:
            raise
        return _answered_or_busy(existing, **context)
    return _compute(verification, hypothesis=hypothesis, schema=schema, policy=policy)


def _check_daily_limit(user, dataset, policy: BudgetPolicy) -> None:
    if policy.daily_limit is None:
        return
    since = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    used = Verification.objects.filter(user=user, dataset=dataset, created_at__gte=since,
                                       epsilon_micro__gt=0).exclude(status=Status.FAILED).count()
    if used >= policy.daily_limit:
        tomorrow = since + timedelta(days=1)
        raise ApplicationError(f"You have asked {used} charged hypotheses on {dataset.slug} today, the daily "
                               f"limit; it resets at {tomorrow.isoformat()}.", code="daily_limit_reached",
                               status_code=429,
                               headers={"Retry-After": str(int((tomorrow - timezone.now()).total_seconds()) + 1)})


def _fail_and_refund(verification: Verification, *, error: str, details: dict[str, Any] | None = None) -> bool:
    """Mark a computing verification failed and give its ε back (once: the status update is conditional).

    A lost database connection is retried once on a fresh one (Django reconnects on the next
    query once the broken connection is closed); outside a transaction only, since closing the
    connection inside one would lose the caller's work. The second failure is raised: the
    verification is then still computing, and the reaper refunds it."""
    try:
        return _fail_and_refund_once(verification, error=error, details=details)
    except DATABASE_LOST:
        if connection.in_atomic_block:
            raise
        logger.warning("verification %s: the database connection was lost during its refund; retrying once",
                       verification.pk)
        connection.close()
        return _fail_and_refund_once(verification, error=error, details=details)


def _fail_and_refund_once(verification: Verification, *, error: str, details: dict[str, Any] | None) -> bool:
    with transaction.atomic():
        updated = Verification.objects.filter(pk=verification.pk, status=Status.COMPUTING).update(
            status=Status.FAILED, primary=False, error=error, answered_at=timezone.now())
        if not updated:
            return False
        verification.refresh_from_db()
        budget_refund(verification=verification)
        audit_record(action="verification.fail", actor=verification.user, object_type="verification",
                     object_id=verification.pk, outcome=AuditEvent.Outcome.FAILED,
                     details=_audit_details(verification, refunded=_plain(verification.epsilon), error=error,
                                            **(details or {})))
    return True


def verifications_reap_stale(*, dataset=None, key: str | None = None, now=None) -> list[int]:
    """Verifications left computing past ``VERIFICATION_STALE_AFTER_SECONDS`` (their process died)
    are failed and refunded, so the identical hypothesis can be asked again."""
    now = now or timezone.now()
    stale = Verification.objects.filter(status=Status.COMPUTING,
                                        created_at__lt=now - timedelta(seconds=settings.VERIFICATION_STALE_AFTER_SECONDS))
    if dataset is not None:
        stale = stale.filter(dataset=dataset)
    if key is not None:
        stale = stale.filter(canonical_key=key)
    return [v.pk for v in stale.select_related("dataset", "user")
            if _fail_and_refund(v, error=STALE_ERROR)]


def _compute(verification: Verification, *, hypothesis: Hypothesis, schema: Schema,
             policy: BudgetPolicy) -> Verification:
    try:
        frame = custody_read(verification.dataset.storage_name)
        synthetic = release_synthetic_rows(verification.release, schema)
        rng = NoiseSource.secure()  # the OS's CSPRNG for every noise value; never a fixed seed
        result = answer(frame, schema, hypothesis, rng=rng, min_subgroup=policy.min_subgroup, synthetic=synthetic)
        payload = answer_payload(result)
    except Exception as exc:  # noqa: BLE001 - any failure is refunded; the log has the traceback
        if not isinstance(exc, (CustodyError, FileNotFoundError)):
            logger.exception("verification %s failed", verification.pk)
        _fail_and_refund(verification, error=type(exc).__name__)
        raise ApplicationError(f"The computation failed ({type(exc).__name__}); the ε of this hypothesis was "
                               "refunded. Please report it if it happens again.", code="computation_failed",
                               status_code=500, details={"verification": verification.pk,
                                                         "refunded": _plain(verification.epsilon)}) from None
    try:
        with transaction.atomic():
            now = timezone.now()
            answered = Verification.objects.filter(pk=verification.pk, status=Status.COMPUTING).update(
                status=Status.ANSWERED, answer=payload, answered_at=now)
            if answered:  # exactly what the row now holds: no need to read it back
                verification.status, verification.answer, verification.answered_at = Status.ANSWERED, payload, now
            else:  # reaped as stale meanwhile and refunded: this answer is not released
                verification.refresh_from_db()
                raise ApplicationError("The computation took too long and was refunded; ask again.",
                                       code="computation_failed", status_code=500,
                                       details={"verification": verification.pk,
                                                "refunded": _plain(verification.epsilon)})
            audit_record(action="verification.answer", actor=verification.user, object_type="verification",
                         object_id=verification.pk, details=_audit_details(verification))
    except DATABASE_LOST as exc:
        return _database_lost(verification, exc)
    return verification


def _database_lost(verification: Verification, exc: Exception) -> Verification:
    """The connection was lost while the answer was being stored: refund now (on a fresh
    connection) or leave it to the reaper; either way a 503 without the answer. Were the answer
    committed after all (only its acknowledgement lost), it stands and is returned."""
    logger.error("verification %s: the database connection was lost before its answer was stored (%s)",
                 verification.pk, type(exc).__name__)
    try:
        _fail_and_refund(verification, error=type(exc).__name__)
        verification.refresh_from_db()
    except DATABASE_LOST:
        logger.error("verification %s: the database is still unreachable; the reaper will refund it",
                     verification.pk)
        refunded = None
    else:
        if verification.status == Status.ANSWERED:
            return verification
        refunded = _plain(verification.epsilon) if verification.status == Status.FAILED else None
    if refunded is not None:
        message = (f"The database connection was lost before the answer was stored; the ε of this hypothesis "
                   f"({refunded}) was refunded. Ask again in a moment.")
    else:
        within = settings.VERIFICATION_STALE_AFTER_SECONDS + 60
        message = ("The database connection was lost before the answer was stored; the ε of this hypothesis will "
                   f"be refunded automatically within {within} seconds of the database answering again. Ask again "
                   "after that.")
    raise ApplicationError(message, code="database_unavailable", status_code=503,
                           details={"verification": verification.pk, "refunded": refunded},
                           headers={"Retry-After": "5"})


# --------------------------------------------------------------------------- preview
def verification_preview(*, user, raw: Any, seed: int | None = None) -> dict[str, Any]:
    """A free preview of a hypothesis: checked exactly as :func:`verification_submit` checks it
    (the same 400s, before anything else), then simulated on the published synthetic release only
    (public: no ε; no real row is read). Nothing is charged or stored but one audit row
    (``verification.preview``, with the hypothesis and the figures).

    A preview asking for more ε than is left still answers; its suggestion stays within what is
    left and the per-query maximum. ``seed`` is for tests; otherwise the operating system's
    randomness seeds each preview.
    """
    release, policy, hypothesis, schema = _checked(raw)
    dataset = release.dataset
    left = _left_as_is(user, dataset, policy)
    max_epsilon = min(left, policy.max_epsilon_per_query)
    try:
        frame = release_synthetic_rows(release, schema)
        rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
        result = preview(frame, schema, hypothesis, rng=rng, min_subgroup=policy.min_subgroup,
                         max_epsilon=float(max_epsilon))
    except Exception as exc:  # noqa: BLE001 - the release is public; the log has the traceback
        logger.exception("preview on release %s failed", release.pk)
        raise ApplicationError(f"The preview failed ({type(exc).__name__}); nothing was charged. Please report it "
                               "if it happens again.", code="preview_failed", status_code=500) from None
    figures = json_safe(result.to_dict())
    body = {"dataset": dataset.slug, "release": release.pk, "kind": hypothesis.kind,
            "hypothesis": hypothesis.to_dict(), **figures, "max_epsilon": float(max_epsilon),
            "budget_left": _plain(left)}
    with transaction.atomic():
        audit_record(action="verification.preview", actor=user, object_type="release", object_id=release.pk,
                     details={"dataset": dataset.slug, "release": release.pk, "hypothesis": hypothesis.to_dict(),
                              "epsilon": hypothesis.epsilon_text, "charged": "0",
                              "preview": {k: v for k, v in body.items()
                                          if k not in ("dataset", "release", "kind", "hypothesis", "note")}})
    return body
