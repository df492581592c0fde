"""The researcher's pages (see portal/templates/portal/researcher/).

Each page mirrors an API endpoint and calls the same selectors and services (the API view is named in each
docstring); :class:`portal.access.PortalView` checks the roles and writes the read's audit row. Nothing here
reads a real row: datasets show their public metadata and schema, releases their synthetic files and the
public part of their report, verifications their ε-DP answers.
"""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from accounts.budgets import budget_summary
from accounts.permissions import IsCustodianOrVerifiedResearcher, IsVerifiedResearcher, IsVerifiedUser
from clearinghouse import selectors as core_selectors
from clearinghouse.errors import ApplicationError
from clearinghouse.models import AuditEvent
from clearinghouse.schema import Schema
from clearinghouse.services.audit import audit_record
from portal.access import PortalView
from portal.forms.researcher import KIND_FIELDS, KIND_LABELS, PARAM_FIELDS, WHERE_ROWS, VerifyForm
from releases import selectors as release_selectors
from releases.reports import public_override, report_html, report_status
from releases.storage import DATA_FILES
from verification.core.kind import REGISTRY
from verification.models import Verification
from verification.services import verification_preview, verification_submit

__all__ = ["urlpatterns"]


#: The report's headline scores in words (their keys stay the report's own).
HEADLINE_LABELS = {
    "fidelity.overall": "Overall fidelity (0 to 1, higher is closer to the real cohort)",
    "fidelity.csf": "Column shapes (higher is better)",
    "fidelity.gsf": "Binary-column agreement (higher is better)",
    "fidelity.detection_auc": "Real-vs-synthetic detection AUC (0.5 is ideal: indistinguishable)",
    "survival.km_divergence": "Survival-curve divergence (lower is better)",
    "survival.cox_sign_agreement": "Cox hazard ratios with the same direction (higher is better)",
    "survival.c_index_synthetic": "C-index of a model trained on the synthetic rows",
    "privacy.ims": "Synthetic rows identical to a real one (share; 0 is best)",
    "privacy.leakage_coefficient": "Privacy leakage coefficient (lower is better)",
    "privacy.dcr_ratio": "Distance to training vs holdout rows (about 1 or more is safe)",
    "privacy.mia_auc": "Membership-inference AUC (0.5 is ideal: no one can tell who was trained on)",
    "utility.classification_ratio": "Classifier trained on synthetic vs on real (1 = as good)",
    "utility.c_index_ratio": "Survival model trained on synthetic vs on real (1 = as good)",
}


def _visible_releases(user):
    """As ``releases.api``: custodians see every release; researchers only published ones (others are 404)."""
    releases = release_selectors.release_list()
    return releases if user.is_custodian else releases.filter(published_at__isnull=False)


def _published():
    return release_selectors.release_list().filter(published_at__isnull=False)


def _audience(user) -> str:
    return "custodian" if user.is_custodian else "public"


def _budget_on(user, slug: str) -> dict[str, Any] | None:
    """The researcher's row of :func:`budget_summary` for one dataset (a read: it creates nothing)."""
    return next((row for row in budget_summary(user) if row["dataset"] == slug), None)


def _schema_rows(schema: dict) -> list[dict[str, Any]]:
    survival = schema.get("survival") or {}
    rows = []
    for column in schema.get("columns", []):
        kind = column["type"]
        if kind == "identifier":
            public = "dropped at import: never stored, never released"
        elif kind == "categorical":
            public = ", ".join(column.get("categories", []))
        elif kind == "event":
            public = "0 (censored) or 1 (event)"
        else:
            public = f"{column.get('min')} to {column.get('max')}"
        role = ("survival time" if column["name"] == survival.get("duration")
                else "survival event" if column["name"] == survival.get("event") else "")
        rows.append({"name": column["name"], "type": kind, "public": public, "role": role,
                     "description": column.get("description", ""), "nullable": column.get("nullable", False)})
    return rows


# --------------------------------------------------------------------------- datasets
class DatasetListView(PortalView):
    """``GET /api/v1/datasets/`` as cards."""

    permission_classes = (IsVerifiedUser,)
    audit_action = "dataset.list"
    audit_object_type = "dataset"

    def get(self, request):
        published: dict[int, int] = {}
        for release in _published():
            published[release.dataset_id] = published.get(release.dataset_id, 0) + 1
        cards = [{"dataset": d, "survival": (d.schema or {}).get("survival"), "releases": published.get(d.pk, 0)}
                 for d in core_selectors.dataset_list()]
        return render(request, "portal/researcher/datasets.html", {"cards": cards})


class DatasetDetailView(PortalView):
    """``GET /api/v1/datasets/{slug}/`` with its published releases."""

    permission_classes = (IsVerifiedUser,)
    audit_action = "dataset.read"
    audit_object_type = "dataset"

    def get(self, request, slug: str):
        dataset = get_object_or_404(core_selectors.dataset_list(), slug=slug)
        user = request.user
        return render(request, "portal/researcher/dataset.html", {
            "dataset": dataset, "columns": _schema_rows(dataset.schema or {}),
            "survival": (dataset.schema or {}).get("survival"), "releases": _published().filter(dataset=dataset),
            "can_open_releases": user.is_custodian or user.is_verified_researcher})


# --------------------------------------------------------------------------- releases
class ReleaseDetailView(PortalView):
    """``GET /api/v1/releases/{id}/``: the datasheet, the report's status, the downloads."""

    permission_classes = (IsCustodianOrVerifiedResearcher,)
    audit_action = "release.read"
    audit_object_type = "release"

    def get(self, request, release_id: int):
        release = get_object_or_404(_visible_releases(request.user), pk=release_id)
        audience = _audience(request.user)
        override = release.gate_override if audience == "custodian" else public_override(release.gate_override)
        report = report_status(release, audience=audience)
        scores = [{"key": key, "label": HEADLINE_LABELS.get(key, key), "value": value}
                  for key, value in ((report or {}).get("headline") or {}).items()]
        return render(request, "portal/researcher/release.html", {
            "release": release, "datasheet": release.datasheet or {},
            "report": report, "scores": scores,
            "override": override, "files": [{"kind": kind, "name": name, "bytes": getattr(release, f"{kind}_bytes"),
                                             "sha256": getattr(release, f"{kind}_sha256")}
                                            for kind, name in DATA_FILES.items()],
            "can_verify": request.user.is_verified_researcher and release.published})


class ReleaseReportView(PortalView):
    """``GET /api/v1/releases/{id}/report/?format=html``: the stored page, served as it is."""

    permission_classes = (IsCustodianOrVerifiedResearcher,)
    audit_action = "report.read"
    audit_object_type = "release"

    def audit_read_details(self) -> dict:
        return {"audience": _audience(self.request.user), "format": "html"}

    def get(self, request, release_id: int):
        release = get_object_or_404(_visible_releases(request.user).select_related("dataset"), pk=release_id)
        return HttpResponse(report_html(release, audience=_audience(request.user)),
                            content_type="text/html; charset=utf-8")


class ReleaseDownloadView(PortalView):
    """``GET /api/v1/releases/{id}/data.csv|data.parquet``: the synthetic rows, streamed from disk."""

    permission_classes = (IsCustodianOrVerifiedResearcher,)
    audit_action = "release.download"
    audit_object_type = "release"
    kind = "csv"

    def audit_read_details(self) -> dict:
        return {"format": self.kind}

    def get(self, request, release_id: int):
        release = get_object_or_404(_visible_releases(request.user), pk=release_id)
        return release_selectors.release_download(release, self.kind)


# --------------------------------------------------------------------------- verify a finding
class VerifyView(PortalView):
    """``POST /api/v1/verifications/preview/`` ("Preview (free)") and ``POST /api/v1/verifications/``
    ("Verify (charges ε)") from a form built from the release's schema. The services check, charge and
    audit; a refusal re-shows the form with the service's message at its field, and is audited here as the
    API's view audits it (nothing is stored or charged)."""

    permission_classes = (IsVerifiedResearcher,)
    audit_object_type = "release"
    template_name = "portal/researcher/verify.html"

    @property
    def audit_action(self) -> str:
        if self.request.method != "POST":
            return "verification.form"
        return "verification.preview" if self.request.POST.get("action") == "preview" else "verification.create"

    def _context(self, release, form, **extra) -> dict[str, Any]:
        return {"release": release, "form": form, "budget": _budget_on(self.request.user, release.dataset.slug),
                "kind_fields": KIND_FIELDS, "param_fields": PARAM_FIELDS, "kind_labels": KIND_LABELS,
                "where_rows": [[form[f"where_{part}_{i}"] for part in ("column", "op", "value")]
                               for i in range(WHERE_ROWS)], **extra}

    def _release(self, release_id: int):
        return get_object_or_404(_published().select_related("dataset"), pk=release_id)

    def get(self, request, release_id: int):
        release = self._release(release_id)
        initial = {"kind": "mean", "claim_direction": "greater", "epsilon": "0.5"}
        form = VerifyForm(initial=initial, schema=Schema.from_dict(release.dataset.schema))
        return render(request, self.template_name, self._context(release, form))

    def post(self, request, release_id: int):
        release = self._release(release_id)
        form = VerifyForm(request.POST, schema=Schema.from_dict(release.dataset.schema))
        form.is_valid()  # every field is optional text: the services do the checking
        raw = form.hypothesis(release.pk)
        previewing = request.POST.get("action") == "preview"
        try:
            if previewing:
                figures = verification_preview(user=request.user, raw=raw)
                return render(request, self.template_name,
                              self._context(release, form, preview=_preview_view(figures, raw)))
            verification = verification_submit(user=request.user, raw=raw)
        except ApplicationError as exc:
            if exc.status_code >= 500:
                raise
            field = form.add_service_error(exc.code, exc.message)
            audit_record(action=self.audit_action, outcome=AuditEvent.Outcome.REFUSED, actor=request.user,
                         object_type="verification", object_id="",
                         details={"status": exc.status_code, "code": exc.code, "message": exc.message[:500],
                                  "method": "POST", "path": request.path[:300], "field": field or "",
                                  "kind": str(raw.get("kind", ""))[:40], "release": release.pk,
                                  "epsilon": str(raw.get("epsilon", ""))[:40]})
            left = (exc.details or {}).get("left") if isinstance(exc.details, dict) else None
            return render(request, self.template_name,
                          self._context(release, form, refused={"code": exc.code, "left": left}),
                          status=exc.status_code)
        return redirect("portal:verification", verification_id=verification.pk)


def _preview_view(figures: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    ratio = REGISTRY[figures["kind"]].ratio if figures.get("kind") in REGISTRY else False
    width_log = figures.get("expected_ci_width_log")
    factor = math.exp(width_log) if ratio and _finite(width_log) and width_log < 700 else None
    return {**figures, "ratio": ratio, "ci_factor": factor, "p_decisive_pct": _pct(figures.get("p_decisive")),
            "p_withheld_pct": _pct(figures.get("p_withheld")),
            "p_uninformative_pct": _pct(figures.get("p_uninformative")),
            "searched": [{**s, "pct": _pct(s.get("p_decisive"))} for s in figures.get("searched") or []]}


def _pct(value) -> str:
    return "—" if value is None else f"{100 * float(value):.0f} %"


# --------------------------------------------------------------------------- verifications and budget
class VerificationListView(PortalView):
    """``GET /api/v1/verifications/``: the researcher's own history."""

    permission_classes = (IsVerifiedResearcher,)
    audit_action = "verification.list"
    audit_object_type = "verification"

    def get(self, request):
        mine = Verification.objects.filter(user=request.user).select_related("dataset")
        rows = [{"verification": v, "statement": describe(v.kind, v.hypothesis), "claim": claim_words(v),
                 "epsilon": format(v.epsilon.normalize(), "f"), "verdict": verdict_label(v.answer)} for v in mine]
        return render(request, "portal/researcher/verifications.html", {"rows": rows})


class VerificationDetailView(PortalView):
    """``GET /api/v1/verifications/{id}/``: the ε-DP answer, its CI against the claim, the verdict in words."""

    permission_classes = (IsVerifiedResearcher,)
    audit_action = "verification.read"
    audit_object_type = "verification"

    def get(self, request, verification_id: int):
        verification = get_object_or_404(Verification.objects.filter(user=request.user).select_related("dataset"),
                                         pk=verification_id)
        answer = verification.answer or {}
        claim = (verification.hypothesis or {}).get("claim") or {}
        ratio = REGISTRY[verification.kind].ratio if verification.kind in REGISTRY else False
        return render(request, "portal/researcher/verification.html", {
            "verification": verification, "answer": answer, "claim": claim, "ratio": ratio,
            "statement": describe(verification.kind, verification.hypothesis),
            "verdict_sentence": verdict_sentence(verification), "verdict": verdict_label(answer),
            "epsilon": format(verification.epsilon.normalize(), "f"), "claim_text": claim_words(verification),
            "budget": _budget_on(request.user, verification.dataset.slug),
            "plot": forest_svg(answer.get("estimate"), answer.get("ci_low"), answer.get("ci_high"),
                               claim.get("value"), answer.get("synthetic_estimate"), log=ratio)})


class BudgetView(PortalView):
    """``GET /api/v1/budget/``: ε allocated, spent and left per dataset."""

    permission_classes = (IsVerifiedResearcher,)
    audit_action = "budget.read"
    audit_object_type = "budget"

    def get(self, request):
        return render(request, "portal/researcher/budget.html", {"budgets": budget_summary(request.user)})


# --------------------------------------------------------------------------- plain words
def _level_words(level: dict | None) -> str:
    if not level:
        return ""
    return level["column"] if level.get("value") is None else f"{level['column']} = {level['value']}"


def describe(kind: str, hypothesis: dict | None) -> str:
    """The statistic a hypothesis estimates, in words ("the mean of age among tgrade = III")."""
    h = hypothesis or {}
    p = h.get("params") or {}
    group = p.get("group") or {}
    pair = f"{group.get('column')} = {group.get('a')} vs {group.get('b')}" if "a" in group else ""
    sub = f" in the subgroup {_level_words(group)}" if group and "a" not in group else ""
    adjusted = f", adjusted for {', '.join(p['adjust_for'])}" if p.get("adjust_for") else ""
    words = {
        "count": lambda: "the number of patients",
        "proportion": lambda: f"the proportion with {p.get('column')} = {p.get('value')}",
        "mean": lambda: f"the mean of {p.get('column')}",
        "quantile": lambda: ("the median" if p.get("q", 0.5) == 0.5 else f"the {p.get('q')}-quantile")
                            + f" of {p.get('column')}",
        "difference_in_means": lambda: f"the difference in mean {p.get('column')} ({pair})",
        "difference_in_proportions": lambda: f"the difference in the proportion with {p.get('column')} = "
                                             f"{p.get('value')} ({pair})",
        "correlation": lambda: f"the correlation of {p.get('x')} and {p.get('y')}",
        "odds_ratio": lambda: f"the odds ratio of {_level_words(p.get('a'))} and {_level_words(p.get('b'))}",
        "logistic_odds_ratio": lambda: f"the odds ratio of {_level_words(p.get('outcome'))} for "
                                       f"{_level_words(p.get('exposure'))}{adjusted}",
        "hazard_ratio": lambda: f"the hazard ratio for {_level_words(p.get('exposure'))}{adjusted}",
        "km_median": lambda: f"the median survival time{sub}",
        "survival_at": lambda: f"the probability of surviving past {p.get('time')}{sub}",
        "logrank": lambda: f"the hazard ratio (log-rank) of {pair}",
    }
    text = words[kind]() if kind in words else kind
    filters = h.get("where") or []
    if filters:
        text += " among patients with " + " and ".join(
            f"{f['column']} {f['op']} {', '.join(map(str, f['value'])) if isinstance(f['value'], list) else f['value']}"
            for f in filters)
    return text


DIRECTION_WORDS = {"greater": "is greater than", "less": "is less than", "not_equal": "differs from"}


def claim_words(verification: Verification) -> str:
    claim = (verification.hypothesis or {}).get("claim") or {}
    return f"{DIRECTION_WORDS.get(claim.get('direction'), claim.get('direction'))} {claim.get('value')}"


def verdict_label(answer: dict | None) -> str:
    """One word for the history: withheld, uninformative, or the verdict."""
    answer = answer or {}
    if not answer:
        return "no answer"
    if answer.get("withheld"):
        return "withheld"
    if answer.get("informative") is False:
        return "uninformative"
    return answer.get("verdict") or "no answer"


def verdict_sentence(verification: Verification) -> str:
    answer = verification.answer or {}
    claim = (verification.hypothesis or {}).get("claim") or {}
    statement = describe(verification.kind, verification.hypothesis)
    claimed = f"{statement} {DIRECTION_WORDS.get(claim.get('direction'), '')} {claim.get('value')}"
    if verification.status == Verification.Status.FAILED:
        return "The computation failed and its ε was refunded; there is no answer."
    if not answer:
        return "This verification has no answer yet."
    if answer.get("withheld"):
        return ("No answer: the subgroup is too small to answer safely " + (f"({answer.get('reason')}) " if
                answer.get("reason") else "") + "— the ε was still charged. This is not a finding.")
    if answer.get("informative") is False:
        return (f"The answer is not informative ({answer.get('reason') or 'the noise swamps the estimate'}), so it "
                f"neither supports nor contradicts the claim that {claimed}. Do not report it as a finding.")
    verdict = answer.get("verdict")
    if verdict == "supported":
        return f"The real data support the claim that {claimed}."
    if verdict == "contradicted":
        return f"The real data contradict the claim that {claimed}."
    return (f"The real data neither support nor contradict the claim that {claimed}: the 95 % interval "
            f"includes {claim.get('value')}.")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def forest_svg(estimate, low, high, claim, synthetic=None, *, log: bool = False, width: int = 560) -> str:
    """A one-row forest plot: the CI and estimate (black), the synthetic estimate (hollow), the claim (dashed).
    Ratios on a log scale. Returns SVG text (no script; numbers only)."""
    values = [v for v in (estimate, low, high, claim, synthetic) if _finite(v) and (not log or v > 0)]
    if not values:
        return ""
    scale = (lambda v: math.log(v)) if log else (lambda v: float(v))
    lo, hi = min(map(scale, values)), max(map(scale, values))
    span = (hi - lo) or (abs(hi) or 1.0)
    lo, hi = lo - 0.12 * span, hi + 0.12 * span
    left, right, mid = 20, width - 20, 46

    def x(v) -> float:
        return left + (scale(v) - lo) / (hi - lo) * (right - left)

    def label(v) -> str:
        return f"{v:.3g}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="forest" viewBox="0 0 {width} 110" width="{width}" '
             f'height="110" role="img" aria-label="Confidence interval against the claimed value">',
             f'<line x1="{left}" y1="86" x2="{right}" y2="86" stroke="#888"/>']
    for tick in _ticks(lo, hi, log):
        parts.append(f'<line x1="{x(tick):.1f}" y1="86" x2="{x(tick):.1f}" y2="91" stroke="#888"/>'
                     f'<text x="{x(tick):.1f}" y="104" font-size="11" text-anchor="middle">{label(tick)}</text>')
    if _finite(claim) and (not log or claim > 0):
        parts.append(f'<line x1="{x(claim):.1f}" y1="10" x2="{x(claim):.1f}" y2="86" stroke="#b00" '
                     f'stroke-dasharray="4 3"/><text x="{x(claim):.1f}" y="9" font-size="11" fill="#b00" '
                     f'text-anchor="middle">claim {label(claim)}</text>')
    bounded = [v for v in (low, high) if _finite(v) and (not log or v > 0)]
    if len(bounded) == 2:
        parts.append(f'<line class="ci" x1="{x(low):.1f}" y1="{mid}" x2="{x(high):.1f}" y2="{mid}" stroke="#111" '
                     f'stroke-width="3"/><text x="{x(low):.1f}" y="{mid - 10}" font-size="11" text-anchor="middle">'
                     f'{label(low)}</text><text x="{x(high):.1f}" y="{mid - 10}" font-size="11" '
                     f'text-anchor="middle">{label(high)}</text>')
    if _finite(estimate) and (not log or estimate > 0):
        parts.append(f'<rect class="estimate" x="{x(estimate) - 5:.1f}" y="{mid - 5}" width="10" height="10" '
                     f'fill="#111"><title>DP estimate {label(estimate)}</title></rect>')
    if _finite(synthetic) and (not log or synthetic > 0):
        parts.append(f'<circle class="synthetic" cx="{x(synthetic):.1f}" cy="{mid + 18}" r="5" fill="none" '
                     f'stroke="#2a6"><title>synthetic estimate {label(synthetic)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        candidates = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
        return [t for t in candidates if lo <= math.log(t) <= hi] or [math.exp((lo + hi) / 2)]
    step = 10 ** math.floor(math.log10((hi - lo) / 4 or 1))
    for factor in (1, 2, 5, 10):
        if (hi - lo) / (step * factor) <= 6:
            step *= factor
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


urlpatterns = [
    path("datasets/", DatasetListView.as_view(), name="datasets"),
    path("datasets/<str:slug>/", DatasetDetailView.as_view(), name="dataset"),
    path("releases/<int:release_id>/", ReleaseDetailView.as_view(), name="release"),
    path("releases/<int:release_id>/report/", ReleaseReportView.as_view(), name="release-report"),
    path("releases/<int:release_id>/data.csv", ReleaseDownloadView.as_view(kind="csv"), name="release-data-csv"),
    path("releases/<int:release_id>/data.parquet", ReleaseDownloadView.as_view(kind="parquet"),
         name="release-data-parquet"),
    path("releases/<int:release_id>/verify/", VerifyView.as_view(), name="verify"),
    path("verifications/", VerificationListView.as_view(), name="verifications"),
    path("verifications/<int:verification_id>/", VerificationDetailView.as_view(), name="verification"),
    path("budget/", BudgetView.as_view(), name="budget"),
]
