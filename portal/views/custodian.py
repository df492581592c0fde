"""The custodian's pages (see portal/templates/portal/custodian/)."""

from __future__ import annotations

__all__ = ["urlpatterns"]

urlpatterns: list = []
