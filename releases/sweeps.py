"""Model selection sweeps: create (checked, queued on commit) and execute (the task body).

A sweep trains each model with each seed (one run each), samples ``samples`` releases per run,
computes every release's validation report in the same worker, and ranks the releases that pass
the dataset's gates by the composite of ``generators.core.evaluation.ranking``. The best is
proposed; it stays a draft until a custodian publishes it.

The sweep is the documented way to choose a model: ``models`` defaults to every model
(:data:`DEFAULT_MODELS`), and the proposed release's datasheet gains a ``selection`` section that
says it was chosen automatically, by which sweep, among which models, seeds and samples, with each
candidate's composite score, quality (``fidelity.overall``), rank and failed gates.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clearinghouse.errors import ApplicationError
from clearinghouse.jobs import enqueue
from clearinghouse.models import AuditEvent, Dataset
from clearinghouse.services.audit import audit_record
from clearinghouse.services.checks import MAX_SEED, check_whole_number
from generators.core.evaluation import Report, check_gates
from generators.core.evaluation.ranking import Candidate, composite_score, rank
from generators.core.models import MODELS
from generators.models import GeneratorRun
from generators.services import run_create, run_execute, trains_by_epochs
from releases.models import Release, ReleaseReport, Sweep
from releases.reports import report_compute
from releases.services import release_create
from releases.storage import datasheet_rewrite

__all__ = ["DEFAULT_MODELS", "MAX_SAMPLES", "MAX_SEEDS", "MAX_TRAININGS", "sweep_create", "sweep_execute"]

logger = logging.getLogger(__name__)

MAX_SEEDS = 10
MAX_SAMPLES = 5
#: models × seeds: a sweep trains this many runs at most.
MAX_TRAININGS = 20
#: A sweep without ``models`` compares every model (copula, ctgan, flow): the automatic model choice.
DEFAULT_MODELS = tuple(sorted(MODELS))
Status = Sweep.Status


def _check_list(name: str, value: Any, *, most: int) -> list:
    if not isinstance(value, list) or not value:
        raise ApplicationError(f"{name} must be a non-empty list.", code=f"invalid_{name}")
    if len(value) > most:
        raise ApplicationError(f"{name}: at most {most} entries, not {len(value)}.", code=f"invalid_{name}")
    if len(set(map(repr, value))) != len(value):
        raise ApplicationError(f"{name} lists an entry twice.", code=f"invalid_{name}")
    return value


def sweep_create(*, dataset: Dataset, models: Any = None, seeds: Any, samples: Any = 3, epochs: Any = None,
                 rows: Any = None, by, enqueue: bool = True) -> Sweep:
    """Check everything first; nothing is stored or queued when a check fails. ``models`` (None:
    :data:`DEFAULT_MODELS`, every model). ``epochs`` is needed only when one of the models trains by
    epochs (the copula does not)."""
    models = list(DEFAULT_MODELS) if models is None else models
    models = _check_list("models", models, most=len(MODELS))
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ApplicationError(f"Unknown model(s) {unknown!r}; available: {', '.join(sorted(MODELS))}.",
                               code="unknown_model")
    seeds = _check_list("seeds", seeds, most=MAX_SEEDS)
    for seed in seeds:
        check_whole_number("seeds", seed, 0, MAX_SEED)
    check_whole_number("samples", samples, 1, MAX_SAMPLES)
    if epochs is None and any(trains_by_epochs(m) for m in models):
        raise ApplicationError(f"epochs is required for {', '.join(m for m in models if trains_by_epochs(m))} "
                               f"(1 to {settings.GENERATOR_MAX_EPOCHS}).", code="invalid_epochs")
    if epochs is not None:
        check_whole_number("epochs", epochs, 1, settings.GENERATOR_MAX_EPOCHS)
    rows = dataset.n_rows if rows is None else rows
    check_whole_number("rows", rows, 1, settings.RELEASE_MAX_ROWS)
    if len(models) * len(seeds) > MAX_TRAININGS:
        raise ApplicationError(f"A sweep trains at most {MAX_TRAININGS} runs (models × seeds), not "
                               f"{len(models) * len(seeds)}.", code="sweep_too_large")
    with transaction.atomic():
        sweep = Sweep.objects.create(dataset=dataset, model_names=models, seeds=seeds, samples=samples,
                                     epochs=1 if epochs is None else epochs,  # the copula's one pass
                                     rows=rows, created_by=by,
                                     steps_total=len(models) * len(seeds) * (1 + samples))
        audit_record(action="sweep.create", actor=by, object_type="sweep", object_id=sweep.pk,
                     details={"dataset": dataset.slug, "models": models, "seeds": seeds, "samples": samples,
                              "epochs": epochs, "rows": rows})
        if enqueue:
            transaction.on_commit(lambda: _enqueue(sweep.pk))
    return sweep


def _enqueue(sweep_id: int) -> None:
    enqueue("generators.run_sweep", sweep_id)


def _step(sweep: Sweep, stage: str, *, advance: int = 0) -> None:
    sweep.steps_done += advance
    sweep.stage = stage
    Sweep.objects.filter(pk=sweep.pk).update(steps_done=sweep.steps_done, stage=stage)


def _candidate(release, run: GeneratorRun, sample: int, report: ReleaseReport) -> Candidate:
    facts: dict[str, Any] = {"release": release.pk, "run": run.pk, "model": run.model, "seed": run.seed,
                             "sample": sample, "report": report.status}
    if report.status != ReleaseReport.Status.SUCCEEDED:
        facts["error"] = report.error
        return Candidate(release.pk, False, None, None, facts)
    result = Report.from_dict(report.content)
    gates = check_gates(result, release.dataset.gates)
    composite, parts = composite_score(result)
    facts.update(composite=composite, components=parts, failed_gates=[g.to_dict() for g in gates if not g.passed],
                 headline=report.content.get("headline", {}))
    return Candidate(release.pk, all(g.passed for g in gates), composite, result.value("privacy.mia_auc"), facts)


def sweep_execute(sweep_id: int, *, relay: Callable[[Sweep], None] | None = None) -> Sweep | None:
    """The task body: never raises for a sweep that fails; the failure is recorded on it.
    ``relay(sweep)`` is called after each step (the ``sweep`` command's bar)."""
    claimed = Sweep.objects.filter(pk=sweep_id, status=Status.QUEUED).update(status=Status.RUNNING,
                                                                            started_at=timezone.now())
    if not claimed:
        return None
    sweep = Sweep.objects.select_related("dataset", "created_by").get(pk=sweep_id)
    candidates: list[Candidate] = []
    try:
        for model in sweep.model_names:
            for seed in sweep.seeds:
                _step(sweep, f"training {model} seed {seed}")
                run = run_create(dataset=sweep.dataset, model=model, epochs=sweep.epochs, seed=seed, device="auto",
                                 by=sweep.created_by, enqueue=False)
                run = run_execute(run.pk, worker=f"sweep {sweep.pk}") or run
                run.refresh_from_db()
                _step(sweep, f"trained {model} seed {seed}: {run.status}", advance=1)
                if relay:
                    relay(sweep)
                if run.status != GeneratorRun.Status.SUCCEEDED:
                    candidates.append(Candidate(-run.pk, False, None, None, {
                        "run": run.pk, "model": model, "seed": seed, "error": run.error}))
                    _step(sweep, sweep.stage, advance=sweep.samples)
                    continue
                for sample in range(sweep.samples):
                    release = release_create(run=run, rows=sweep.rows, seed=sample, by=sweep.created_by,
                                             queue_report=False)
                    report = report_compute(release.report.pk) or ReleaseReport.objects.get(release=release)
                    candidates.append(_candidate(release, run, sample, report))
                    _step(sweep, f"reported {model} seed {seed} sample {sample}", advance=1)
                    if relay:
                        relay(sweep)
    except ApplicationError as exc:
        return _finish(sweep, Status.FAILED, candidates, error=exc.message)
    except Exception as exc:
        logger.exception("sweep %s failed", sweep.pk)
        return _finish(sweep, Status.FAILED, candidates, error=f"internal error ({type(exc).__name__}); see the worker log")
    return _finish(sweep, Status.SUCCEEDED, candidates)


def _finish(sweep: Sweep, status: str, candidates: list[Candidate], *, error: str = "") -> Sweep:
    ranked = rank(candidates)
    order = {c.release: i + 1 for i, c in enumerate(ranked)}
    table = [{**c.facts, "passed": c.passed, "rank": order.get(c.release)} for c in candidates]
    table.sort(key=lambda row: (row["rank"] is None, row["rank"] or 0))
    best = ranked[0].release if ranked and status == Status.SUCCEEDED else None
    if status == Status.SUCCEEDED and best is None:
        error = "no release passed every gate; nothing is proposed"
    if best is not None:
        _record_selection(sweep, best, table)
    with transaction.atomic():
        Sweep.objects.filter(pk=sweep.pk).update(status=status, candidates=table, proposed_release_id=best,
                                                 error=error, finished_at=timezone.now(), stage="")
        audit_record(action="sweep.finish", actor=sweep.created_by, object_type="sweep", object_id=sweep.pk,
                     outcome=AuditEvent.Outcome.SUCCESS if status == Status.SUCCEEDED else AuditEvent.Outcome.FAILED,
                     details={"dataset": sweep.dataset.slug, "proposed_release": best, "candidates": len(table),
                              "passed": sum(1 for c in candidates if c.passed), "error": error})
    sweep.refresh_from_db()
    return sweep


def _selection(sweep: Sweep, best: int, table: list[dict[str, Any]]) -> dict[str, Any]:
    """The proposed release's datasheet section on how it was chosen: public facts only (the models,
    seeds, and each candidate's headline scores and failed gates' names, as its public report shows)."""
    candidates = []
    for row in table:
        entry = {"release": row.get("release"), "model": row["model"], "seed": row["seed"],
                 "sample": row.get("sample"), "composite": row.get("composite"),
                 "quality": (row.get("headline") or {}).get("fidelity.overall"), "passed": row["passed"],
                 "rank": row["rank"], "failed_gates": [g["gate"] for g in row.get("failed_gates", [])]}
        if "release" not in row:
            entry["error"] = "training failed"
        elif row.get("report") != ReleaseReport.Status.SUCCEEDED:
            entry["error"] = "validation report failed"
        candidates.append(entry)
    chosen = next(c for c in candidates if c["release"] == best)
    passed = sum(1 for c in candidates if c["passed"])

    def line(c: dict[str, Any]) -> str:
        what = f"{c['model']} seed {c['seed']}" + (f" sample {c['sample']}" if c["sample"] is not None else "")
        if "error" in c:
            return f"{what}: {c['error']}"
        scores = f"composite {c['composite']:.3f}" if c["composite"] is not None else "no composite"
        if c["quality"] is not None:
            scores += f", quality {c['quality']:.3f}"
        verdict = f"rank {c['rank']}" if c["rank"] else "fails " + (", ".join(c["failed_gates"]) or "its report")
        return f"{what}: {scores}, {verdict}"

    summary = (f"Chosen automatically by sweep {sweep.pk}: {', '.join(sweep.model_names)} × seed(s) "
               f"{', '.join(map(str, sweep.seeds))}; {sweep.samples} release(s) per run; {len(candidates)} "
               f"candidate(s), {passed} passing every publication gate; the proposed release ({chosen['model']} "
               f"seed {chosen['seed']} sample {chosen['sample']}) has the highest composite score among those "
               "that pass (generators.core.evaluation.ranking; ties: the lower membership-inference AUC). "
               "Candidates: " + "; ".join(line(c) for c in candidates) + ".")
    return {"automatic": True, "sweep": sweep.pk, "models": list(sweep.model_names), "seeds": list(sweep.seeds),
            "samples": sweep.samples, "epochs": sweep.epochs if any(trains_by_epochs(m) for m in sweep.model_names)
            else None, "chosen": {"release": best, "model": chosen["model"], "seed": chosen["seed"],
                                  "sample": chosen["sample"], "composite": chosen["composite"],
                                  "quality": chosen["quality"]},
            "ranking": "the highest composite score among the releases that pass every gate",
            "candidates": candidates, "summary": summary}


def _record_selection(sweep: Sweep, best: int, table: list[dict[str, Any]]) -> None:
    """Add the ``selection`` section to the proposed release's datasheet, in the database and in its
    ``datasheet.json`` (the data files and their digests are unchanged)."""
    release = Release.objects.get(pk=best)
    datasheet = {**release.datasheet, "selection": _selection(sweep, best, table)}
    datasheet["known_limits"] = [*release.datasheet.get("known_limits", []),
                                 f"The model ({datasheet['selection']['chosen']['model']}) was chosen automatically "
                                 f"by sweep {sweep.pk} among {', '.join(sweep.model_names)}; see selection."]
    datasheet_rewrite(release, datasheet)
    Release.objects.filter(pk=best).update(datasheet=datasheet)
