"""The auditor's pages: the audit log with its filters, one event, the chain check, the exports (CSV, JSON Lines).

They mirror :mod:`clearinghouse.api.audit`: the same filters (:class:`portal.forms.auditor.AuditFilterForm`
checks what ``AuditFilterSerializer`` checks), the same selector (:func:`clearinghouse.selectors.audit_event_list`),
the same chain check (:func:`clearinghouse.services.audit.audit_chain_verify`) and the same export columns
(``EXPORT_FIELDS``), under the API's audit action names. The log is shown newest first, 50 events a page.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path

from accounts.permissions import IsAuditor
from clearinghouse import selectors
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_chain_verify
from clearinghouse.services.refusals import audit_refusals_flush
from portal.access import PortalView, audit_page_refusal
from portal.forms.auditor import AuditFilterForm

__all__ = ["urlpatterns"]

PAGE_SIZE = 50


def _refuse_filters(request, view, form: AuditFilterForm):
    """The log page again with the filters as typed and a message under each bad one: 400, audited."""
    first = next(iter(form.errors.values()))[0]
    audit_page_refusal(request, view, status_code=400, code="invalid", message=first)
    return render(request, "portal/auditor/log.html", {"form": form, "page": None, "export_query": ""},
                  status=400)


def _filter_query(form: AuditFilterForm) -> str:
    """The filters as a query string (for the export link and the page links), without ``page``."""
    return urlencode({name: form.data[name] for name in form.fields if form.data.get(name)})


class AuditLogView(PortalView):
    permission_classes = (IsAuditor,)
    audit_action = "audit.events.list"
    audit_object_type = "audit_event"

    def get(self, request):
        form = AuditFilterForm(request.GET)
        if not form.is_valid():
            return _refuse_filters(request, self, form)
        audit_refusals_flush(open_windows=True)  # counted repeats are in the log before it is read
        events = selectors.audit_event_list(**form.selector_filters()).order_by("-seq")
        page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
        return render(request, "portal/auditor/log.html",
                      {"form": form, "page": page, "export_query": _filter_query(form)})


class AuditEventView(PortalView):
    permission_classes = (IsAuditor,)
    audit_action = "audit.events.read"
    audit_object_type = "audit_event"

    def get(self, request, seq: int):
        event = AuditEvent.objects.filter(seq=seq).first()
        if event is None:
            raise Http404(f"There is no audit event #{seq}.")
        previous = AuditEvent.objects.filter(seq__lt=seq).order_by("-seq").values_list("seq", flat=True).first()
        following = AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("seq", flat=True).first()
        return render(request, "portal/auditor/event.html", {
            "event": event, "previous": previous, "following": following,
            "details": json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False),
        })


class AuditChainView(PortalView):
    """The chain check. Opening the page reads nothing; ``?run=1`` (the button) walks the chain.

    The check changes nothing, so it is a GET (as ``GET /api/v1/audit/verify/``), audited as
    ``audit.verify`` with its result; the bare page is ``audit.chain.read``.
    """

    permission_classes = (IsAuditor,)
    audit_object_type = "audit_chain"
    report = None

    @property
    def audit_action(self) -> str:
        return "audit.verify" if self.request.GET.get("run") else "audit.chain.read"

    def audit_read_details(self) -> dict:
        report = self.report
        if report is None:
            return {}
        return {"valid": report.valid, "events_checked": report.events_checked,
                "first_broken_seq": report.first_broken_seq}

    def get(self, request):
        if request.GET.get("run"):
            audit_refusals_flush(open_windows=True)
            self.report = audit_chain_verify()
        return render(request, "portal/auditor/chain.html", {"report": self.report})


class AuditExportView(PortalView):
    """The filtered log as CSV, oldest first, with the API export's columns and its formula escaping
    (:func:`clearinghouse.selectors.csv_safe`)."""

    permission_classes = (IsAuditor,)
    audit_action = "audit.events.export"
    audit_object_type = "audit_event"

    def get(self, request):
        form = AuditFilterForm(request.GET)
        if not form.is_valid():
            return _refuse_filters(request, self, form)
        audit_refusals_flush(open_windows=True)  # counted repeats are in the log before it is read
        events = selectors.audit_event_list(**form.selector_filters())
        response = StreamingHttpResponse(selectors.audit_events_csv(events.iterator(chunk_size=2000)), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
        return response


class AuditExportJsonlView(PortalView):
    """The filtered log as JSON Lines, oldest first, with the exact stored values (the API's ``export.jsonl``)."""

    permission_classes = (IsAuditor,)
    audit_action = "audit.events.export"
    audit_object_type = "audit_event"

    def audit_read_details(self) -> dict:
        return {**super().audit_read_details(), "format": "jsonl"}

    def get(self, request):
        form = AuditFilterForm(request.GET)
        if not form.is_valid():
            return _refuse_filters(request, self, form)
        audit_refusals_flush(open_windows=True)  # counted repeats are in the log before it is read
        events = selectors.audit_event_list(**form.selector_filters())
        response = StreamingHttpResponse(selectors.audit_events_jsonl(events.iterator(chunk_size=2000)),
                                         content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-events.jsonl"'
        return response


urlpatterns = [
    path("audit/", AuditLogView.as_view(), name="audit-log"),
    path("audit/events/<int:seq>/", AuditEventView.as_view(), name="audit-event"),
    path("audit/chain/", AuditChainView.as_view(), name="audit-chain"),
    path("audit/export.csv", AuditExportView.as_view(), name="audit-export"),
    path("audit/export.jsonl", AuditExportJsonlView.as_view(), name="audit-export-jsonl"),
]
