"""A row of the portal's permission matrix: one page, the status each role gets, its audit action.

``anonymous`` is 302 for every page but the sign-in page (to ``/login/?next=…``). A page's path uses the
placeholders of :class:`tests.test_permissions.World` (``{slug}``, ``{release}``, ``{draft}``, ``{run}``,
``{queued_run}``, ``{verification}``, ``{other_verification}``, ``{researcher_id}``, ``{pending}``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    name: str
    url_name: str  # the pattern's name in portal.urls, without the "portal:" namespace
    path: str
    anonymous: int
    unverified: int
    researcher: int
    auditor: int
    custodian: int
    audit_action: str | None  # the success row a GET writes
