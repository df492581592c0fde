"""The custodian's pages, under ``custody/`` (templates in portal/templates/portal/custodian/).

Each page mirrors an API view and calls the same service: upload (``dataset_create``), train
(``run_create``), cancel (``run_cancel``), release (``release_create``), publish (``release_publish``),
budget policy and allocations (``policy_set``, ``allocation_set``), verify a researcher
(``researcher_verify``). A write is audited by its service; a refused form is re-shown with the service's
message on its field (400) and audited here with outcome ``refused`` under the API's action name.
No page shows a real row: custodians see their datasets' metadata, schema and the report.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt

from accounts import selectors as account_selectors
from accounts.budgets import allocation_set, policy_for, policy_set
from accounts.models import Allocation, User, from_micro
from accounts.permissions import IsCustodian
from accounts.services import researcher_verify
from clearinghouse import selectors as core_selectors
from clearinghouse.api.uploads import UploadTooLarge
from clearinghouse.errors import ApplicationError
from clearinghouse.models import AuditEvent, Dataset
from clearinghouse.services.audit import audit_record
from clearinghouse.services.datasets import dataset_create
from clearinghouse.tabular import TableError, infer_schema
from generators import selectors as run_selectors
from generators.models import GeneratorRun
from generators.services import run_cancel, run_create, run_epoch_progress
from portal.access import PortalView
from portal.forms.custodian import (AllocationForm, PolicyForm, PublishForm, ReleaseForm, TrainForm, UploadForm,
                                    add_service_error, draft_text)
from releases import selectors as release_selectors
from releases.models import Release
from releases.reports import release_gate_results, report_html, report_status
from releases.services import release_create, release_publish

__all__ = ["urlpatterns"]


def refused(request: HttpRequest, action: str, exc_or_form: ApplicationError | Any, *, object_type: str = "",
            object_id: Any = "", extra: dict | None = None) -> None:
    """Audit a form the page or its service refused (the services audit only what they do)."""
    if isinstance(exc_or_form, ApplicationError):
        details = {"status": 400, "code": exc_or_form.code, "message": exc_or_form.message[:500]}
    else:
        details = {"status": 400, "code": "invalid_form", "fields": sorted(exc_or_form.errors)}
    details.update(extra or {}, method=request.method, path=request.path[:300])
    audit_record(action=action, outcome=AuditEvent.Outcome.REFUSED, actor=request.user, object_type=object_type,
                 object_id=str(object_id), details=details)


def _dataset(slug: str) -> Dataset:
    dataset = core_selectors.dataset_list().filter(slug=slug).first()
    if dataset is None:
        raise Http404(f"There is no dataset {slug!r}.")
    return dataset


def _run(run_id: int) -> GeneratorRun:
    run = run_selectors.run_list().filter(pk=run_id).first()
    if run is None:
        raise Http404(f"There is no training run {run_id}.")
    return run


def _release(release_id: int) -> Release:
    release = release_selectors.release_list().select_related("dataset", "run").filter(pk=release_id).first()
    if release is None:
        raise Http404(f"There is no release {release_id}.")
    return release


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


STATUS_WORDS = {"queued": "Waiting for a worker", "running": "Training", "succeeded": "Finished",
                "failed": "Failed", "cancelled": "Cancelled"}


def run_progress(run: GeneratorRun) -> dict[str, Any]:
    """The run's progress as the API gives it (``RunOutputSerializer.get_progress``), plus the words
    portal.js writes into the page."""
    figures = run_epoch_progress(run)
    fraction = figures["fraction"]
    losses = ", ".join(f"{name} {value:.4g}" for name, value in sorted((run.losses or {}).items()))
    eta = run.eta_seconds
    return {
        "status": run.status, "epoch": figures["epoch"], "epochs": figures["epochs"], "fraction": fraction,
        "losses": run.losses, "elapsed_seconds": round(run.elapsed_seconds, 1) if run.elapsed_seconds else None,
        "eta_seconds": round(eta, 1) if eta is not None else None, "done": run.finished,
        "fields": {"status": STATUS_WORDS.get(run.status, run.status) + (" (cancel asked)" if run.cancel_requested
                                                                          and not run.finished else ""),
                   "epoch": f"{run.epoch} of {run.epochs}" if figures["epochs"] else "— (fitted in one pass)",
                   "losses": losses or "—",
                   "eta": "—" if run.finished else _duration(eta), "elapsed": _duration(run.elapsed_seconds),
                   "percent": f"{fraction * 100:.0f} %"},
    }


def conditions_words(conditions: dict | None, *, rows: int, cohort_rows: int, schema: dict | None = None) -> str:
    """A release's kind in words: plain, augmented, conditional or rebalanced. Levels are named in the schema's
    order of categories (a stored JSON object keeps no key order on PostgreSQL)."""
    if not conditions:
        return f"augmented: {rows} rows from a cohort of {cohort_rows}" if rows > cohort_rows else "plain"
    parts = []
    for column, wanted in conditions.items():
        if isinstance(wanted, dict):
            total = sum(float(v) for v in wanted.values()) or 1.0
            order = next((list(c.get("categories", [])) for c in (schema or {}).get("columns", [])
                          if c.get("name") == column), [])
            levels = sorted(wanted, key=lambda level: (order.index(level) if level in order else len(order), level))
            shares = ", ".join(f"{level} {float(wanted[level]) / total * 100:.0f} %" for level in levels)
            parts.append(f"rebalanced: {column} as {shares}")
        elif isinstance(wanted, list):
            parts.append(f"conditional: only rows with {column} in {', '.join(str(v) for v in wanted)}")
        else:
            parts.append(f"conditional: only rows with {column} = {wanted}")
    return "; ".join(parts)


def _with_words(releases, cohort_rows: int):
    for release in releases:
        release.kind_words = conditions_words(release.conditions, rows=release.rows, cohort_rows=cohort_rows,
                                              schema=release.dataset.schema)
    return releases


# --------------------------------------------------------------------------- overview
class CustodyView(PortalView):
    """Datasets with their size, runs and releases, and how many researchers wait for verification."""

    permission_classes = (IsCustodian,)
    audit_action = "dataset.list"
    audit_object_type = "dataset"

    def get(self, request):
        datasets = core_selectors.dataset_list().annotate(
            run_count=Count("runs", distinct=True), release_count=Count("releases", distinct=True))
        pending = account_selectors.user_list(role="researcher", verified=False).filter(is_active=True).count()
        return render(request, "portal/custodian/custody.html", {"datasets": datasets, "pending": pending})


# --------------------------------------------------------------------------- upload
@method_decorator(csrf_exempt, name="dispatch")  # checked in post(), after the size limit (see there)
class UploadView(PortalView):
    """Upload a CSV with its schema, or get a draft schema inferred from it to review first.

    The draft step posts the file and shows the inferred schema; nothing is stored. The custodian edits
    it and sends the same file again with it (portal/static/portal/custodian.js fills the text area in
    place, so the chosen file stays in the form). No real bytes are kept between the steps.

    CSRF is checked in :meth:`post` rather than by the middleware: the middleware reads the body before
    the view, and an upload over ``MAX_UPLOAD_BYTES`` is refused while it streams in (``UploadTooLarge``),
    which in the middleware would be a 500. Here it is a 413 form message, storing nothing.
    """

    permission_classes = (IsCustodian,)
    audit_action = "dataset.upload.form"
    audit_object_type = "dataset"
    template_name = "portal/custodian/upload.html"

    @property
    def audit_object(self) -> tuple[str, str]:
        return "dataset", ""

    def get(self, request):
        return render(request, self.template_name, {"form": UploadForm()})

    def _show(self, request, form, *, status=200, **extra):
        return render(request, self.template_name, {"form": form, **extra}, status=status)

    def post(self, request):
        try:
            request.POST, request.FILES  # noqa: B018 - parse now, under the size limit
        except UploadTooLarge as exc:
            audit_record(action="dataset.upload", outcome=AuditEvent.Outcome.REFUSED, actor=request.user,
                         object_type="dataset", details={"status": 413, "code": "upload_too_large",
                                                         "message": str(exc.detail)})
            return self._show(request, UploadForm(), status=413, too_large=str(exc.detail))
        csrf_failure = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if csrf_failure is not None:
            return csrf_failure
        return self._post(request)

    def _post(self, request):
        form = UploadForm(request.POST, request.FILES)
        drafting = request.POST.get("step") == "draft"
        if drafting:  # only the file is needed to draft a schema
            for name in ("slug", "name"):
                form.fields[name].required = False
        if not form.is_valid():
            refused(request, "dataset.upload", form, object_type="dataset")
            return self._show(request, form, status=400)
        upload = form.cleaned_data["file"]
        schema = form.schema_document()
        if form.errors:
            refused(request, "dataset.upload", form, object_type="dataset")
            return self._show(request, form, status=400)
        if drafting or schema is None:
            data = upload.read()  # a draft is made from the whole file; nothing is stored
            try:
                draft = infer_schema(data)
            except TableError as exc:
                form.add_error("file", exc.message)
                refused(request, "dataset.upload.draft", ApplicationError(exc.message, code=exc.code),
                        object_type="dataset")
                return self._show(request, form, status=400)
            audit_record(action="dataset.upload.draft", actor=request.user, object_type="dataset",
                         details={"columns": len(draft["columns"]), "bytes": len(data)})
            initial = {name: form.data.get(name, "") for name in ("slug", "name", "description")}
            initial["schema"] = draft_text(draft)
            return self._show(request, UploadForm(initial=initial), drafted=True)
        slug = form.cleaned_data["slug"]
        try:
            dataset = dataset_create(slug=slug, name=form.cleaned_data["name"],
                                     description=form.cleaned_data["description"], schema=schema, data=upload,
                                     by=request.user)  # read in chunks by the service, never whole
        except ApplicationError as exc:
            add_service_error(form, exc, fields={"duplicate_slug": "slug", "invalid_slug": "slug",
                                                 "invalid_schema": "schema", "upload_too_large": "file"}
                              | {code: "file" for code in _TABLE_CODES})
            if exc.code == "invalid_schema":
                for problem in (exc.details or {}).get("problems", [])[1:10]:
                    form.add_error("schema", problem)
            for failure in (exc.details or {}).get("failures", [])[:10]:
                form.add_error("file", f"Row {failure['row']}, column {failure['column']}: {failure['reason']}")
            refused(request, "dataset.upload", exc, object_type="dataset",
                    extra={"slug": slug})
            return self._show(request, form, status=400)
        messages.success(request, f"{dataset.name} is in custody: {dataset.n_rows} rows, {dataset.n_columns} columns.")
        return redirect("portal:custody-dataset", slug=dataset.slug)


#: TableError codes (clearinghouse.tabular): the file's problems
_TABLE_CODES = ("invalid_csv", "wrong_encoding", "bad_header", "empty_file", "malformed_csv",
                "rows_failed_validation")


# --------------------------------------------------------------------------- a dataset
def _dataset_context(dataset: Dataset, *, train_form: TrainForm | None = None) -> dict[str, Any]:
    runs = list(run_selectors.run_list(dataset_slug=dataset.slug))
    releases = release_selectors.release_list().filter(dataset=dataset).select_related("run")
    return {"dataset": dataset, "columns": dataset.schema.get("columns", []),
            "survival": dataset.schema.get("survival"), "runs": [(run, run_progress(run)) for run in runs],
            "releases": [(release, report_status(release)) for release in _with_words(releases, dataset.n_rows)],
            "train_form": train_form or TrainForm(initial={"device": "cpu" if settings.CELERY_TASK_ALWAYS_EAGER
                                                           else "auto"})}


class DatasetView(PortalView):
    permission_classes = (IsCustodian,)
    audit_action = "dataset.read"
    audit_object_type = "dataset"

    def get(self, request, slug: str):
        return render(request, "portal/custodian/dataset.html", _dataset_context(_dataset(slug)))


class TrainView(PortalView):
    """POST: start a training run (``run_create``, as ``POST /datasets/<slug>/runs/``), then its page."""

    permission_classes = (IsCustodian,)
    http_method_names = ["post"]
    audit_action = "run.create"
    audit_object_type = "dataset"

    def post(self, request, slug: str):
        dataset = _dataset(slug)
        form = TrainForm(request.POST)
        if form.is_valid():
            try:
                run = run_create(dataset=dataset, by=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                add_service_error(form, exc, fields={"unknown_model": "model", "cuda_unavailable": "device",
                                                     "invalid_epochs": "epochs"})
                refused(request, "run.create", exc, object_type="dataset", object_id=slug)
            else:
                return redirect("portal:custody-run", run_id=run.pk)
        else:
            refused(request, "run.create", form, object_type="dataset", object_id=slug)
        return render(request, "portal/custodian/dataset.html", _dataset_context(dataset, train_form=form), status=400)


# --------------------------------------------------------------------------- a run
def _run_context(run: GeneratorRun, *, release_form: ReleaseForm | None = None) -> dict[str, Any]:
    form = release_form or ReleaseForm(schema=run.dataset.schema, cohort_rows=run.dataset.n_rows)
    return {"run": run, "progress": run_progress(run), "release_form": form, "levels": form.levels,
            "releases": _with_words(release_selectors.release_list().filter(run=run), run.dataset.n_rows)}


class RunView(PortalView):
    permission_classes = (IsCustodian,)
    audit_action = "run.read"
    audit_object_type = "run"

    def get(self, request, run_id: int):
        return render(request, "portal/custodian/run.html", _run_context(_run(run_id)))


class RunProgressView(PortalView):
    """The run's progress as JSON, for portal.js's poll (every second while the page is open).

    ``audit_action`` is empty on purpose: a poll is not a new read of anything (the page that polls wrote
    its ``run.read`` row when it opened), and a row per second per open tab would bury the log. Refusals
    are still audited (``portal.RunProgressView``)."""

    permission_classes = (IsCustodian,)
    audit_action = ""
    audit_object_type = "run"

    def get(self, request, run_id: int):
        progress = run_progress(_run(run_id))
        # Reload once when it ends, so that the page shows the release form (or the error).
        return JsonResponse({**progress, "reload": progress["done"]})


class RunCancelView(PortalView):
    permission_classes = (IsCustodian,)
    http_method_names = ["post"]
    audit_action = "run.cancel"
    audit_object_type = "run"

    def post(self, request, run_id: int):
        run = run_cancel(run=_run(run_id), by=request.user)  # 409 once finished: the house page, audited
        messages.success(request, "Cancelled." if run.status == GeneratorRun.Status.CANCELLED
                         else "Cancel asked: training stops at its next progress report.")
        return redirect("portal:custody-run", run_id=run.pk)


class ReleaseCreateView(PortalView):
    """POST: sample a release from a succeeded run (``release_create``, as ``POST /runs/<id>/releases/``)."""

    permission_classes = (IsCustodian,)
    http_method_names = ["post"]
    audit_action = "release.create"
    audit_object_type = "run"

    def post(self, request, run_id: int):
        run = _run(run_id)
        form = ReleaseForm(request.POST, schema=run.dataset.schema, cohort_rows=run.dataset.n_rows)
        if form.is_valid():
            try:
                release = release_create(run=run, rows=form.cleaned_data["rows"], seed=form.cleaned_data["seed"],
                                         conditions=form.cleaned_data["conditions"], by=request.user)
            except ApplicationError as exc:
                if exc.status_code >= 500:  # not the form's fault (a full disk): the house error page
                    raise
                kind = form.cleaned_data["kind"]
                add_service_error(form, exc, fields={"invalid_conditions": "shares" if kind == "rebalanced"
                                                     else "value"})
                refused(request, "release.create", exc, object_type="run", object_id=run.pk)
            else:
                messages.success(request, f"Release {release.pk} made; its validation report is being computed.")
                return redirect("portal:custody-release", release_id=release.pk)
        else:
            refused(request, "release.create", form, object_type="run", object_id=run.pk)
        return render(request, "portal/custodian/run.html", _run_context(run, release_form=form), status=400)


# --------------------------------------------------------------------------- a release
GATE_WORDS = {">=": "at least", "<=": "at most", ">": "above", "<": "below"}


def _gates(release: Release) -> tuple[list[dict] | None, str]:
    """Each gate's result in words, or None with the reason while the report is not ready."""
    try:
        results = release_gate_results(release)
    except ApplicationError as exc:
        return None, exc.message
    out = []
    for result in results:
        item = result.to_dict()
        item["comparison_words"] = GATE_WORDS.get(result.comparison, result.comparison)
        item["value_text"] = "not measured" if result.value is None else f"{result.value:.4g}"
        out.append(item)
    return out, ""


def _report_progress(release: Release) -> dict[str, Any]:
    status = report_status(release) or {"status": "missing", "stage": "", "parts_done": 0, "parts_total": 1,
                                        "error": ""}
    total = status["parts_total"] or 1
    done = status["status"] in ("succeeded", "failed", "missing")
    return {"status": status["status"], "fraction": round(status["parts_done"] / total, 4), "done": done,
            "reload": done, "fields": {"status": status["status"], "stage": status["stage"] or "—",
                                       "parts": f"{status['parts_done']} of {total}"}}


def _release_context(release: Release, *, publish_form: PublishForm | None = None) -> dict[str, Any]:
    gates, not_ready = _gates(release)
    _with_words([release], release.dataset.n_rows)
    return {"release": release, "dataset": release.dataset, "report": report_status(release),
            "report_progress": _report_progress(release), "gates": gates, "not_ready": not_ready,
            "failed": [g for g in gates or [] if not g["passed"]], "publish_form": publish_form or PublishForm(),
            "datasheet_text": json.dumps(release.datasheet, indent=2, ensure_ascii=False, default=str)}


class ReleaseView(PortalView):
    permission_classes = (IsCustodian,)
    audit_action = "release.read"
    audit_object_type = "release"

    def get(self, request, release_id: int):
        return render(request, "portal/custodian/release.html", _release_context(_release(release_id)))


class ReleaseProgressView(PortalView):
    """The report's progress as JSON for portal.js; no audit row per poll (see :class:`RunProgressView`)."""

    permission_classes = (IsCustodian,)
    audit_action = ""
    audit_object_type = "release"

    def get(self, request, release_id: int):
        return JsonResponse(_report_progress(_release(release_id)))


class ReleasePublishView(PortalView):
    """POST: publish (``release_publish``); a failing gate needs a written reason (the override)."""

    permission_classes = (IsCustodian,)
    http_method_names = ["post"]
    audit_action = "release.publish"
    audit_object_type = "release"

    def post(self, request, release_id: int):
        release = _release(release_id)
        form = PublishForm(request.POST)
        if form.is_valid():
            try:
                release = release_publish(release=release, by=request.user, override=form.override())
            except ApplicationError as exc:
                if exc.code == "gates_failed":
                    failed = ", ".join(f["gate"] for f in (exc.details or {}).get("failed", []))
                    form.add_error("justification", f"The release fails {failed}: publish it only with a written "
                                                    "reason why that is acceptable.")
                else:
                    add_service_error(form, exc, fields={"invalid_override": "justification",
                                                         "override_not_needed": "justification"})
                refused(request, "release.publish", exc, object_type="release", object_id=release.pk)
            else:
                messages.success(request, f"Release {release.pk} is published" +
                                 (" with your written override." if release.gate_override else "."))
                return redirect("portal:custody-release", release_id=release.pk)
        else:
            refused(request, "release.publish", form, object_type="release", object_id=release.pk)
        return render(request, "portal/custodian/release.html", _release_context(release, publish_form=form),
                      status=400)


class ReleaseReportView(PortalView):
    """The full validation report (the custodian's page, a complete HTML document), as the API's
    ``?format=html``. 409 while it is computed: the house page."""

    permission_classes = (IsCustodian,)
    audit_action = "report.read"
    audit_object_type = "release"

    def audit_read_details(self) -> dict:
        return {"audience": "custodian", "format": "html"}

    def get(self, request, release_id: int):
        return HttpResponse(report_html(_release(release_id), audience="custodian"),
                            content_type="text/html; charset=utf-8")


# --------------------------------------------------------------------------- budgets
def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _budget_context(dataset: Dataset, *, policy_form=None, allocation_form=None) -> dict[str, Any]:
    from accounts.budgets import _policy_dict

    policy = policy_for(dataset)
    current = _policy_dict(policy)
    researchers = list(account_selectors.user_list(role="researcher").filter(is_active=True))
    held = {a.user_id: a for a in Allocation.objects.filter(dataset=dataset)}
    dataset_left = from_micro(policy.total_cap_micro - policy.total_spent_micro)
    rows = []
    for user in researchers:
        allocation = held.get(user.pk)
        given = allocation.epsilon if allocation else from_micro(policy.default_allocation_micro)
        spent = allocation.spent if allocation else Decimal(0)
        rows.append({"user": user, "allocation": _text(given), "spent": _text(spent),
                     "left": _text(min(given - spent, dataset_left)),
                     "default": allocation is None})
    return {"dataset": dataset, "policy": current, "rows": rows,
            "policy_form": policy_form or PolicyForm(initial=current),
            "allocation_form": allocation_form or AllocationForm(researchers=researchers)}


class BudgetView(PortalView):
    """A dataset's verification policy and each researcher's allocation: GET shows both forms; a POST with
    ``action=policy`` calls ``policy_set``, with ``action=allocation`` calls ``allocation_set``."""

    permission_classes = (IsCustodian,)
    audit_action = "budget.policy.read"
    audit_object_type = "dataset"
    template_name = "portal/custodian/budget.html"

    def get(self, request, slug: str):
        return render(request, self.template_name, _budget_context(_dataset(slug)))

    def post(self, request, slug: str):
        dataset = _dataset(slug)
        action = request.POST.get("action")
        if action == "policy":
            form = PolicyForm(request.POST)
            if form.is_valid():
                try:
                    policy_set(dataset=dataset, changes=form.changes(), by=request.user)
                except ApplicationError as exc:
                    add_service_error(form, exc)
                    refused(request, "budget.policy.set", exc, object_type="dataset", object_id=slug)
                else:
                    messages.success(request, "The budget policy is saved.")
                    return redirect("portal:custody-budget", slug=slug)
            else:
                refused(request, "budget.policy.set", form, object_type="dataset", object_id=slug)
            return render(request, self.template_name, _budget_context(dataset, policy_form=form), status=400)
        if action == "allocation":
            researchers = account_selectors.user_list(role="researcher").filter(is_active=True)
            form = AllocationForm(request.POST, researchers=researchers)
            if form.is_valid():
                user = User.objects.get(pk=form.cleaned_data["researcher"])
                try:
                    allocation_set(user=user, dataset=dataset, epsilon=form.cleaned_data["epsilon"], by=request.user)
                except ApplicationError as exc:
                    add_service_error(form, exc, fields={"allocation_below_spent": "epsilon",
                                                         "not_a_researcher": "researcher"})
                    refused(request, "budget.allocation.set", exc, object_type="dataset", object_id=slug)
                else:
                    messages.success(request, f"{user.username} now has ε {form.cleaned_data['epsilon']} "
                                              f"on {dataset.name}.")
                    return redirect("portal:custody-budget", slug=slug)
            else:
                refused(request, "budget.allocation.set", form, object_type="dataset", object_id=slug)
            return render(request, self.template_name, _budget_context(dataset, allocation_form=form), status=400)
        raise ApplicationError("Send action=policy or action=allocation.", code="invalid_action")


# --------------------------------------------------------------------------- researchers
class ResearchersView(PortalView):
    """Researchers who registered and wait for a custodian's verification (as ``GET /users/?role=researcher
    &verified=false``)."""

    permission_classes = (IsCustodian,)
    audit_action = "accounts.list"

    def get(self, request):
        pending = account_selectors.user_list(role="researcher", verified=False)
        verified = account_selectors.user_list(role="researcher", verified=True)
        return render(request, "portal/custodian/researchers.html", {"pending": pending, "verified": verified})


class ResearcherVerifyView(PortalView):
    permission_classes = (IsCustodian,)
    http_method_names = ["post"]
    audit_action = "accounts.verify"
    audit_object_type = "user"

    def post(self, request, user_id: int):
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            raise Http404(f"There is no account {user_id}.")
        user = researcher_verify(user=user, by=request.user)  # 409 when not a pending researcher: audited
        messages.success(request, f"{user.username} is verified and can now browse releases and verify findings.")
        return redirect("portal:custody-researchers")


urlpatterns = [
    path("custody/", CustodyView.as_view(), name="custody"),
    path("custody/upload/", UploadView.as_view(), name="custody-upload"),
    path("custody/datasets/<str:slug>/", DatasetView.as_view(), name="custody-dataset"),
    path("custody/datasets/<str:slug>/train/", TrainView.as_view(), name="custody-train"),
    path("custody/datasets/<str:slug>/budget/", BudgetView.as_view(), name="custody-budget"),
    path("custody/runs/<int:run_id>/", RunView.as_view(), name="custody-run"),
    path("custody/runs/<int:run_id>/progress.json", RunProgressView.as_view(), name="custody-run-progress"),
    path("custody/runs/<int:run_id>/cancel/", RunCancelView.as_view(), name="custody-run-cancel"),
    path("custody/runs/<int:run_id>/release/", ReleaseCreateView.as_view(), name="custody-release-create"),
    path("custody/releases/<int:release_id>/", ReleaseView.as_view(), name="custody-release"),
    path("custody/releases/<int:release_id>/progress.json", ReleaseProgressView.as_view(),
         name="custody-release-progress"),
    path("custody/releases/<int:release_id>/publish/", ReleasePublishView.as_view(), name="custody-release-publish"),
    path("custody/releases/<int:release_id>/report/", ReleaseReportView.as_view(), name="custody-release-report"),
    path("custody/researchers/", ResearchersView.as_view(), name="custody-researchers"),
    path("custody/researchers/<int:user_id>/verify/", ResearcherVerifyView.as_view(), name="custody-researcher-verify"),
]
