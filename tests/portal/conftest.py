"""Portal fixtures: signed-in session clients per role, and a real Chromium driven by Playwright.

The browser (``chromium_browser``, one per test process, in tests/conftest.py) is Debian's ``chromium``;
Playwright's own browser download is never used. Without it the browser tests skip, naming the package to
install. A failing browser test saves a screenshot of its page under ``var/screenshots/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import make_user

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
PASSWORD = "correct horse battery staple"  # tests.conftest.make_user's password


def session_client(user) -> Client:
    """A Django test client signed in as ``user`` (no password round trip)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def browser_page(chromium_browser, live_server, request):
    """A fresh browser context and page on the live server; a screenshot is kept if the test fails."""
    context = chromium_browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # data-confirm forms ask before they post
    yield page
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the real form, and wait for the home page."""
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/home/")


@pytest.fixture
def live_users(transactional_db):
    """One user per role for browser tests (the live server needs committed rows)."""
    return {
        "custodian": make_user("cora", ["custodian"])[0],
        "researcher": make_user("rhea", ["researcher"], verified=True)[0],
        "unverified": make_user("uma", ["researcher"], verified=False)[0],
        "auditor": make_user("otto", ["auditor"])[0],
    }
