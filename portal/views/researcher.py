"""The researcher's pages (see portal/templates/portal/researcher/)."""

from __future__ import annotations

__all__ = ["urlpatterns"]

urlpatterns: list = []
