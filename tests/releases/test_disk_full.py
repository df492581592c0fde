"""A full disk while a release is written (issue 14, "Faults"): no half-written file and no
staging folder is left under RELEASES_DIR, no release row or report is stored, and the custodian
gets a 507 ``storage_full`` naming the problem, audited. Runs on SQLite and PostgreSQL.

The fault is ``OSError(ENOSPC)`` raised part way through the writing: after part of the CSV or
of the Parquet file reached the disk, or when the written files are fsynced (where a file
system that allocates late reports it).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings

from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_chain_verify
from releases.models import Release, ReleaseReport
from tests.conftest import last_event

pytestmark = pytest.mark.django_db

FULL = "No space left on device"


def on_disk() -> list[str]:
    """Everything under RELEASES_DIR, staging folders (hidden) included."""
    root = Path(settings.RELEASES_DIR)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, FULL)


def fill_csv(monkeypatch, written: list) -> None:
    """The CSV's first half reaches the disk, then the disk is full."""
    real = pd.DataFrame.to_csv

    def to_csv(self, path, *args, **kwargs):
        text = real(self, None, *args, **kwargs)
        Path(path).write_text(text[: len(text) // 2], encoding="utf-8")
        written.append(Path(path))
        raise disk_full()

    monkeypatch.setattr(pd.DataFrame, "to_csv", to_csv)


def fill_parquet(monkeypatch, written: list) -> None:
    """The CSV is whole; the Parquet file gets its first bytes, then the disk is full."""
    def to_parquet(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1" + b"\0" * 4096)
        written.append(Path(path))
        raise disk_full()

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)


def fill_at_fsync(monkeypatch, written: list) -> None:
    """Every file is written; the second fsync reports the full disk."""
    real = os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            written.append(Path(os.readlink(f"/proc/self/fd/{fd}")) if os.path.exists("/proc/self/fd") else None)
            raise disk_full()
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


FAULTS = [pytest.param(fill_csv, id="csv-half-written"), pytest.param(fill_parquet, id="parquet-half-written"),
          pytest.param(fill_at_fsync, id="fsync")]


@pytest.mark.parametrize("fill", FAULTS)
def test_a_full_disk_leaves_no_file_and_no_row_and_answers_507(clients, run, custodian, monkeypatch, fill):
    before, events = on_disk(), AuditEvent.objects.count()
    written: list = []
    fill(monkeypatch, written)

    response = clients["custodian"].post(f"/api/v1/runs/{run.pk}/releases/", {"rows": 20, "seed": 3}, format="json")
    monkeypatch.undo()

    assert written, "the fault was not injected"
    assert response.status_code == 507, response.content
    error = response.json()["error"]
    assert error["code"] == "storage_full" and error["details"] is None, error
    assert FULL in error["message"] and "Nothing was stored" in error["message"], error
    # Not a byte left behind: no staging folder, no partial file, no release folder.
    assert on_disk() == before
    assert not any(path is not None and path.exists() for path in written)
    assert not Release.objects.exists() and not ReleaseReport.objects.exists()
    assert not AuditEvent.objects.filter(action="release.create", outcome="success").exists()
    # The refusal is audited (the one new audit row), with its code.
    assert AuditEvent.objects.count() == events + 1
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "release.create", "failed", custodian[0].pk, "run", str(run.pk))
    assert (event.details["status"], event.details["code"]) == (507, "storage_full")
    assert audit_chain_verify().valid

    # Space freed, the same request makes the release.
    again = clients["custodian"].post(f"/api/v1/runs/{run.pk}/releases/", {"rows": 20, "seed": 3}, format="json")
    assert again.status_code == 201, again.content
    release = Release.objects.get()
    assert sorted(on_disk()) == sorted([*before, release.storage_name,
                                        *(f"{release.storage_name}/{n}" for n in
                                          ("data.csv", "data.parquet", "datasheet.json"))])


def test_another_write_error_is_not_called_a_full_disk(run, custodian, monkeypatch):
    from releases.services import release_create

    before = on_disk()

    def to_parquet(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1")
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    with pytest.raises(PermissionError):
        release_create(run=run, rows=10, seed=0, by=custodian[0])
    assert on_disk() == before
    assert not Release.objects.exists()


def test_the_portal_shows_a_full_disk_on_the_house_error_page_audited(run, custodian, monkeypatch):
    from tests.portal.conftest import session_client

    before = on_disk()
    written: list = []
    fill_parquet(monkeypatch, written)

    response = session_client(custodian[0]).post(f"/custody/runs/{run.pk}/release/",
                                                 {"kind": "plain", "rows": 6, "seed": 0})
    monkeypatch.undo()

    assert written and response.status_code == 507
    page = response.content.decode()
    assert "Storage full" in page and FULL in page and "Traceback" not in page
    assert on_disk() == before and not Release.objects.exists()
    event = last_event()
    assert (event.action, event.outcome, event.object_id) == ("release.create", "failed", str(run.pk))
    assert (event.details["status"], event.details["code"]) == (507, "storage_full")
