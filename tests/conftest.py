"""Shared fixtures: one user per role (with a bearer token), API clients, a small dataset.

Roles used across the permission tests: anonymous, unverified researcher, verified
researcher, auditor and custodian.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import token_issue_for, user_create
from clearinghouse.models import AppendOnlyModel, AuditEvent

DATA = Path(__file__).parent / "data"

GBSG2_SCHEMA = {
    "columns": [
        {"name": "pid", "type": "identifier"},
        {"name": "horTh", "type": "categorical", "categories": ["no", "yes"]},
        {"name": "age", "type": "integer", "min": 18, "max": 100},
        {"name": "menostat", "type": "categorical", "categories": ["Pre", "Post"]},
        {"name": "tsize", "type": "integer", "min": 0, "max": 200},
        {"name": "tgrade", "type": "categorical", "categories": ["I", "II", "III"]},
        {"name": "pnodes", "type": "integer", "min": 0, "max": 60},
        {"name": "progrec", "type": "integer", "min": 0, "max": 3000},
        {"name": "estrec", "type": "integer", "min": 0, "max": 2000},
        {"name": "time", "type": "duration", "min": 0, "max": 3000},
        {"name": "cens", "type": "event"},
    ],
    "survival": {"duration": "time", "event": "cens"},
}

ROLES = ("anonymous", "unverified", "researcher", "auditor", "custodian")


def make_user(username: str, roles: list[str], *, verified: bool = True):
    user, _ = user_create(username=username, roles=roles, password="correct horse battery staple", verified=verified)
    _token, raw = token_issue_for(user=user)
    return user, raw


def client_for(raw_token: str | None) -> APIClient:
    client = APIClient()
    if raw_token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    return client


def _empty_append_only_tables() -> None:
    """Lift each append-only trigger just long enough to empty its table (test teardown only)."""
    from clearinghouse.migrations import _append_only

    for model in apps.get_models():
        if not issubclass(model, AppendOnlyModel):
            continue
        table = model._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                cursor.execute(f"DELETE FROM {table}")
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            else:
                for sql in _append_only.append_only_sql(table, "sqlite")[1]:
                    cursor.execute(sql)
                cursor.execute(f"DELETE FROM {table}")
                for sql in _append_only.append_only_sql(table, "sqlite")[0]:
                    cursor.execute(sql)


@pytest.fixture(autouse=True)
def _empty_custody_cache():
    """The custody and release caches are on in the suite (as in production); nothing cached
    outlives its test."""
    from clearinghouse.custody import custody_cache_clear
    from releases.selectors import release_rows_cache_clear

    custody_cache_clear()
    release_rows_cache_clear()
    yield
    custody_cache_clear()
    release_rows_cache_clear()


@pytest.fixture(autouse=True)
def _flushable_append_only_tables(request):
    """Transactional tests end with a flush, which the append-only triggers refuse on a non-empty table."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(
        marker and (marker.kwargs.get("transaction") or (len(marker.args) > 0 and marker.args[0]))
    )
    if not transactional:
        yield
        return
    request.getfixturevalue("_django_db_helper")  # so that this teardown runs before the flush
    yield
    _empty_append_only_tables()


@pytest.fixture
def custodian(db):
    return make_user("cora", ["custodian"])


@pytest.fixture
def researcher(db):
    return make_user("rhea", ["researcher"], verified=True)


@pytest.fixture
def unverified(db):
    return make_user("uma", ["researcher"], verified=False)


@pytest.fixture
def auditor(db):
    return make_user("otto", ["auditor"])


@pytest.fixture
def clients(custodian, researcher, unverified, auditor) -> dict[str, APIClient]:
    """An API client per role, keyed by the names in ROLES."""
    return {
        "anonymous": client_for(None),
        "unverified": client_for(unverified[1]),
        "researcher": client_for(researcher[1]),
        "auditor": client_for(auditor[1]),
        "custodian": client_for(custodian[1]),
    }


def upload_payload(slug: str = "gbsg2-small", *, csv_bytes: bytes | None = None, schema=None, **extra) -> dict:
    csv_bytes = (DATA / "gbsg2_small.csv").read_bytes() if csv_bytes is None else csv_bytes
    payload = {
        "slug": slug,
        "name": "GBSG2 (small)",
        "schema": json.dumps(GBSG2_SCHEMA if schema is None else schema) if not isinstance(schema, str) else schema,
        "file": SimpleUploadedFile("cohort.csv", csv_bytes, content_type="text/csv"),
    }
    payload.update(extra)
    return payload


@pytest.fixture
def dataset(custodian):
    from clearinghouse.services.datasets import dataset_create

    return dataset_create(slug="gbsg2-small", name="GBSG2 (small)", schema=GBSG2_SCHEMA,
                          data=(DATA / "gbsg2_small.csv").read_bytes(), by=custodian[0])


def last_event() -> AuditEvent:
    return AuditEvent.objects.order_by("-seq").first()


#: Metric values that pass every default gate (see generators.core.evaluation.gates).
PASSING = {"fidelity.overall": 0.9, "privacy.ims": 0.0, "privacy.leakage_coefficient": 0.01,
           "privacy.dcr_ratio": 1.0, "privacy.mia_auc": 0.52}


def refusals(action: str, outcome: str | None = None) -> list[AuditEvent]:
    """Every refusal of ``action`` the log holds, in order, a repeat counted into an
    ``api.refusals_repeated`` event standing for as many refusals as it counts (its details are
    those of the first of its window). Counts of open windows are written first, as for an auditor."""
    from clearinghouse.services.refusals import REPEATED_ACTION, audit_refusals_flush

    audit_refusals_flush(open_windows=True)
    found: list[AuditEvent] = []
    for event in AuditEvent.objects.filter(action__in=[action, REPEATED_ACTION]).order_by("seq"):
        if outcome is not None and event.outcome != outcome:
            continue
        if event.action == action and event.outcome != AuditEvent.Outcome.SUCCESS:
            found.append(event)
        elif event.action == REPEATED_ACTION and event.details["of_action"] == action:
            found += [event] * event.details["repeats"]
    return found


def finish_report(release, **values):
    """Mark ``release``'s report finished with hand-set gate metrics (``PASSING`` unless overridden;
    ``None`` makes a metric not measured). For tests about permissions and publication; the report's
    own computation is tested in tests/generators/evaluation and tests/clearinghouse/test_reports.py."""
    from django.utils import timezone

    from releases.models import ReleaseReport
    from generators.core.evaluation.report import Metric, Report

    values = {**PASSING, **values}
    sections: dict[str, list] = {"fidelity": [], "survival": [], "privacy": [], "utility": []}
    for key, value in values.items():
        applicable = value is not None
        sections[key.split(".")[0]].append(Metric(
            key=key, label=key, value=value, low=0.0, high=1.0, better="higher", applicable=applicable,
            reason="" if applicable else "set so by the test", real_details={"marker": 4242.4242}))
    report = Report(sections=sections, meta={"rows": {"synthetic": release.rows}})
    ReleaseReport.objects.filter(release=release).update(
        status=ReleaseReport.Status.SUCCEEDED, content=report.to_dict("custodian"), public=report.to_dict("public"),
        html="<!doctype html><title>custodian</title>", public_html="<!doctype html><title>public</title>",
        parts_done=6, parts_total=6, finished_at=timezone.now())
    return release


@pytest.fixture
def seeded_noise(monkeypatch):
    """Verifications draw their noise from seeded sources (1, 2, …), so that a test on a six-patient world
    sees fixed answers: there a mean's noisy count is below the minimum about one time in six, and the answer
    is withheld. Production never seeds (tests/verification/core/test_exact_noise.py checks it)."""
    import itertools

    from verification.core.noise import NoiseSource

    seeds = itertools.count(1)
    monkeypatch.setattr(NoiseSource, "secure", classmethod(lambda cls: cls.seeded(next(seeds))))


def chromium_path() -> str | None:
    candidate = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return candidate if candidate and os.access(candidate, os.X_OK) else None


@pytest.fixture(scope="session")
def chromium_browser():
    """One headless Debian Chromium per test process (Playwright's sync API allows one per thread), for
    the portal's journeys and any test that renders a page; skips, naming the package, without it."""
    path = chromium_path()
    if path is None:
        pytest.skip("browser tests need Chromium: apt-get install -y chromium (Debian's package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        pytest.skip("browser tests need the playwright package: pip install -e '.[dev]'")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make beside it are
    # still synchronous (the live server answers in its own thread).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


#: Modules whose tests touch neither the database nor the cache (the Django-free cores, the import graph,
#: the demo, which runs in its own SQLite directory): the PostgreSQL + Redis pass of `make test` leaves them
#: out, since the SQLite pass ran them and another backend cannot change what they do. A test there that
#: asks for a database fixture still runs in both passes.
BACKEND_FREE = (
    "tests/verification/core/",
    "tests/generators/evaluation/",
    "tests/generators/test_transformer.py",
    "tests/bench/",
    "tests/test_demo.py",
    "tests/test_import_graph.py",
    "tests/test_screenshots.py",
)
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback",
                     "live_server"}


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        return
    root = Path(str(config.rootpath))
    kept, left_out = [], []
    for item in items:
        path = Path(str(item.path)).relative_to(root).as_posix()
        backend_free = path.startswith(BACKEND_FREE) and not item.get_closest_marker("django_db")
        backend_free = backend_free and not DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        (left_out if backend_free else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
