"""The auditor's pages (see portal/templates/portal/auditor/)."""

from __future__ import annotations

__all__ = ["urlpatterns"]

urlpatterns: list = []
