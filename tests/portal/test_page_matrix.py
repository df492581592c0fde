"""Every portal page, for every role: the status, the house page on a refusal, and the audit row.

Like the API's matrix (tests/test_permissions.py), each cell opens one page as one role (a session
signed in by ``force_login``) and checks:

* 200: the page rendered, and exactly one ``success`` audit event with the page's action and the caller;
* 302 for the anonymous caller: to the sign-in page with ``next``, and one ``denied`` event;
* 403/404: the house error page (HTML, no JSON, no trace), and one ``denied``/``refused`` event naming
  the caller.
"""

from __future__ import annotations

import pytest
from django.urls import get_resolver, URLPattern, URLResolver

from clearinghouse.models import AuditEvent
from tests.conftest import ROLES
from tests.portal import pages_auditor, pages_custodian, pages_researcher
from tests.portal.conftest import session_client
from tests.portal.pages import Page
from tests.test_permissions import World, events_after, head_seq, world  # noqa: F401 - the fixture

P = Page
COMMON = [
    #  name                 url name           path          anon unver resea audit custo  audit action
    P("home",               "home",            "/home/",      302, 200,  200,  200,  200, "portal.home"),
    P("change password",    "password-change", "/password/",  302, 200,  200,  200,  200, "auth.password_change.read"),
]
#: addresses that are not pages a role opens: the redirect at /, the sign-in form, the sign-out POST
NOT_PAGES = {"root", "login", "logout"}

MATRIX = COMMON + pages_researcher.PAGES + pages_custodian.PAGES + pages_auditor.PAGES
CASES = [pytest.param(page, role, getattr(page, role), id=f"{page.name} as {role} -> {getattr(page, role)}")
         for page in MATRIX for role in ROLES if getattr(page, role) is not None]


def _portal_names() -> set[str]:
    resolver = next(p for p in get_resolver().url_patterns
                    if isinstance(p, URLResolver) and p.namespace == "portal")
    return {p.name for p in resolver.url_patterns if isinstance(p, URLPattern)}


def test_every_portal_page_is_in_the_matrix():
    assert _portal_names() - NOT_PAGES == {page.url_name for page in MATRIX}


@pytest.mark.parametrize("page, role, expected", CASES)
def test_page_permissions(world, page: Page, role: str, expected: int):
    path = world.path(page, role)
    user = world.user(role)
    seq = head_seq()
    client = session_client(user)
    response = client.get(path) if page.method == "GET" else client.post(path, {})
    assert response.status_code == expected, (path, response.content[:500])
    events = [e for e in events_after(seq) if e.channel == "portal"]
    if expected == 200:
        assert page.method == "GET", "a POST row lists only refusals; the role's own tests check its effects"
        assert response["Content-Type"].startswith("text/html")
        assert [(e.action, e.outcome, e.actor_id) for e in events] == [
            (page.audit_action, AuditEvent.Outcome.SUCCESS, user.pk)]
    elif expected == 302:
        assert response["Location"].startswith("/login/?next=")
        assert [(e.outcome, e.actor_id) for e in events] == [(AuditEvent.Outcome.DENIED, None)]
    else:
        assert response["Content-Type"].startswith("text/html")
        assert b"Traceback" not in response.content
        assert f'<p class="status-code">{expected}</p>'.encode() in response.content
        outcome = AuditEvent.Outcome.DENIED if expected in (401, 403) else AuditEvent.Outcome.REFUSED
        assert [(e.outcome, e.actor_id) for e in events] == [(outcome, user.pk if user else None)]
