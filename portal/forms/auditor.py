"""The auditor's forms: the audit log's filters (the same fields and checks as the API's
:class:`clearinghouse.api.audit.AuditFilterSerializer`, and the channel the event came through)."""

from __future__ import annotations

from typing import Any

from django import forms

from clearinghouse.models import AuditEvent

__all__ = ["AuditFilterForm"]


class AuditFilterForm(forms.Form):
    """Filters of the audit log and its CSV export; every field is optional."""

    user = forms.CharField(required=False, max_length=150, label="Actor (username)")
    action = forms.CharField(required=False, max_length=64, label="Action",
                             help_text="Exact, or a prefix ending in <code>*</code> (<code>release.*</code>).")
    outcome = forms.ChoiceField(required=False, label="Outcome",
                                choices=[("", "Any"), *AuditEvent.Outcome.choices])
    channel = forms.ChoiceField(required=False, label="Channel", choices=[
        ("", "Any"), ("portal", "portal (these pages)"), ("api", "api"), ("admin", "admin"),
        ("command", "command (manage.py)"), ("task", "task (background jobs)")])
    object_type = forms.CharField(required=False, max_length=64, label="Object type")
    object_id = forms.CharField(required=False, max_length=128, label="Object id")
    since = forms.DateTimeField(required=False, label="From (UTC)",
                                help_text="A date (2026-01-31) or a date and time (2026-01-31 14:00).",
                                widget=forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD"}))
    until = forms.DateTimeField(required=False, label="Until (UTC, not included)",
                                widget=forms.DateTimeInput(attrs={"placeholder": "YYYY-MM-DD"}))

    error_messages_ = {"invalid_outcome": "Choose one of: " + ", ".join(AuditEvent.Outcome.values) + "."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["outcome"].error_messages["invalid_choice"] = self.error_messages_["invalid_outcome"]
        self.fields["channel"].error_messages["invalid_choice"] = "Choose one of: portal, api, admin, command, task."
        for name in ("since", "until"):
            self.fields[name].error_messages["invalid"] = "Enter a date as YYYY-MM-DD, or YYYY-MM-DD HH:MM."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            self.add_error("until", "Must be after 'From'.")
        return data

    def selector_filters(self) -> dict[str, Any]:
        """Keyword arguments of :func:`clearinghouse.selectors.audit_event_list` (as the API passes them)."""
        data = dict(self.cleaned_data)
        data["username"] = data.pop("user", None)
        return {key: value for key, value in data.items() if value not in (None, "")}

    @property
    def active(self) -> bool:
        return self.is_bound and any(self.data.get(name) for name in self.fields)
