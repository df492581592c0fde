"""A row of the portal's permission matrix: one page, the status each role gets, its audit action.

``anonymous`` is 302 for every page but the sign-in page (to ``/login/?next=…``). A page's path uses the
placeholders of :class:`tests.test_permissions.World` (``{slug}``, ``{release}``, ``{draft}``, ``{run}``,
``{queued_run}``, ``{verification}``, ``{other_verification}``, ``{researcher_id}``, ``{pending}``).

A form action that only takes a POST (sign a run off, publish, cancel) is a row with ``method="POST"``: the
matrix posts an empty form and checks the refusals (302 to sign in, 403 pages); a cell of ``None`` is a role
that may post, whose effects the role's own tests check with a real form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    name: str
    url_name: str  # the pattern's name in portal.urls, without the "portal:" namespace
    path: str
    anonymous: int
    unverified: int | None
    researcher: int | None
    auditor: int | None
    custodian: int | None
    audit_action: str | None  # the success row a GET writes (for a POST: the action its refusals are audited under)
    method: str = "GET"
