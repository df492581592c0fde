"""Synthetic releases: sample from a trained generator, write the files, publish.

A release holds synthetic rows only. Its files appear whole or not at all: they are written
into a staging folder and renamed into place, and the folder is removed again if the database
row cannot be created. A full disk (or quota) while writing is a 507 ``storage_full``: the
staging folder is removed, no row is stored.
"""

from __future__ import annotations

import errno
import json
import logging
from dataclasses import asdict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clearinghouse.errors import ApplicationError
from clearinghouse.services.audit import audit_record
from clearinghouse.services.checks import MAX_SEED, check_whole_number
from generators.core.models import ConditionError
from generators.models import GeneratorRun
from generators.services import run_epoch_progress, run_generator
from releases.models import Release
from releases.reports import release_gate_results, report_request
from releases.storage import release_remove, release_write

__all__ = ["release_create", "release_publish"]

logger = logging.getLogger(__name__)

#: The errors of a full file system and of a used-up disk quota.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _known_limits(run: GeneratorRun, conditions: dict | None) -> list[str]:
    limits = [
        "Synthetic rows: no row is a real patient, and none may be used for a decision about a person.",
        f"The generator ({run.model}) was trained without differential privacy, so the release carries no formal "
        "privacy guarantee; its validation report measures disclosure risk against the training rows.",
        f"The generator saw {run.n_train} training rows (an 80 % split); patterns in fewer rows than that, rare "
        "categories and interactions of more than two columns may be missing or distorted.",
        "Findings must be confirmed on the real data through the verification endpoint before they are reported.",
    ]
    if conditions:
        limits.append(f"Conditional release ({json.dumps(conditions, sort_keys=True)}): the category proportions "
                      "are set by the request, not by the real cohort.")
    return limits


def _datasheet(run: GeneratorRun, *, rows: int, seed: int, conditions: dict | None, created_at,
               hyperparameters: dict) -> dict:
    """``hyperparameters``: the trained generator's own, defaults included (the run records only those given)."""
    dataset = run.dataset
    return {
        "source_dataset": {"slug": dataset.slug, "name": dataset.name, "rows": dataset.n_rows,
                           "columns": dataset.n_columns},
        "generator": {"run": run.pk, "model": run.model, "hyperparameters": hyperparameters,
                      "epochs": run_epoch_progress(run)["epochs"], "training_seed": run.seed, "device": run.device,
                      "trained_rows": run.n_train, "trained_at": run.finished_at.isoformat() if run.finished_at else None},
        "seed": seed,
        "rows": rows,
        "conditions": conditions,
        "created_at": created_at.isoformat(),
        "schema": dataset.schema,
        "known_limits": _known_limits(run, conditions),
    }


def release_create(*, run: GeneratorRun, rows: int, seed: int = 0, conditions: dict | None = None, by,
                   queue_report: bool = True) -> Release:
    """Sample ``rows`` synthetic rows (optionally conditional or rebalanced) and store them as a
    draft release with a pending validation report, queued when the release commits
    (``queue_report=False``: the caller computes it). Every check happens before anything is written."""
    check_whole_number("rows", rows, 1, settings.RELEASE_MAX_ROWS)
    check_whole_number("seed", seed, 0, MAX_SEED)
    if conditions is not None and not isinstance(conditions, dict):
        raise ApplicationError("conditions must be an object such as {\"horTh\": \"yes\"}.", code="invalid_conditions")
    if run.status != GeneratorRun.Status.SUCCEEDED:
        raise ApplicationError(f"Run {run.pk} is {run.status}; releases come only from a succeeded run.",
                               code="run_not_succeeded", status_code=409)
    generator = run_generator(run)
    try:
        # sample() plans the conditions first (unknown or untrained categories) and gives exactly
        # ``rows`` rows, or finds the asked-for rows too rare under this model.
        frame = generator.sample(rows, conditions=conditions or None, seed=seed)
    except ConditionError as exc:
        raise ApplicationError(str(exc), code="invalid_conditions") from None
    created_at = timezone.now()
    datasheet = _datasheet(run, rows=rows, seed=seed, conditions=conditions or None, created_at=created_at,
                           hyperparameters=asdict(generator.hyper))
    storage_name, facts = _written(frame, datasheet)
    try:
        with transaction.atomic():
            release = Release.objects.create(run=run, dataset=run.dataset, rows=rows, seed=seed,
                                             conditions=conditions or None, datasheet=datasheet,
                                             storage_name=storage_name, created_by=by, **facts)
            audit_record(action="release.create", actor=by, object_type="release", object_id=release.pk,
                         details={"run": run.pk, "dataset": run.dataset.slug, "rows": rows, "seed": seed,
                                  "conditions": conditions or None})
            report_request(release, enqueue=queue_report)
    except BaseException:
        release_remove(storage_name)
        raise
    return release


def _written(frame, datasheet: dict) -> tuple[str, dict]:
    """:func:`releases.storage.release_write` (which removes its staging folder on any error),
    a full disk answered as a 507 naming it."""
    try:
        return release_write(frame, datasheet)
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        logger.error("release storage full: %s", exc.strerror)
        raise ApplicationError(
            f"The release could not be written: the server's release storage is full ({exc.strerror}). Nothing "
            "was stored; ask the operators to free space, then make the release again.",
            code="storage_full", status_code=507) from None


#: A justification shorter than this is not a justification.
MIN_JUSTIFICATION = 20


def _check_override(override) -> str | None:
    if override is None:
        return None
    justification = override.get("justification") if isinstance(override, dict) else None
    if not isinstance(justification, str) or len(justification.strip()) < MIN_JUSTIFICATION:
        raise ApplicationError(
            f"override.justification must be a written reason of at least {MIN_JUSTIFICATION} characters.",
            code="invalid_override")
    return justification.strip()


def release_publish(*, release: Release, by, override: dict | None = None) -> Release:
    """Publish a release whose report passes every gate of its dataset, or, when some fail, with
    a custodian's written justification (``override``), which is audited and kept on the release."""
    justification = _check_override(override)
    with transaction.atomic():
        release = Release.objects.select_for_update().select_related("dataset").get(pk=release.pk)
        if release.published:
            raise ApplicationError(f"Release {release.pk} is already published.", code="already_published",
                                   status_code=409)
        results = release_gate_results(release)  # 409 while the report is not finished
        failed = [r.to_dict() for r in results if not r.passed]
        if failed and justification is None:
            names = ", ".join(f"{r['gate']} ({r['reason']})" for r in failed)
            raise ApplicationError(
                f"Release {release.pk} fails {len(failed)} publication gate(s): {names}. Publish with "
                "{\"override\": {\"justification\": \"...\"}} to accept the risk on the record.",
                code="gates_failed", status_code=409, details={"failed": failed})
        if justification is not None and not failed:
            raise ApplicationError(f"Release {release.pk} passes every gate; an override is not needed.",
                                   code="override_not_needed")
        release.published_at, release.published_by = timezone.now(), by
        if failed:
            release.gate_override = {"justification": justification, "failed": failed, "by": by.get_username(),
                                     "at": release.published_at.isoformat()}
        release.save(update_fields=["published_at", "published_by", "gate_override"])
        audit_record(action="release.publish", actor=by, object_type="release", object_id=release.pk,
                     details={"dataset": release.dataset.slug, "rows": release.rows,
                              "gates": [r.to_dict() for r in results], "override": release.gate_override})
    return release
