"""The move of Release, ReleaseReport and Sweep into the releases app moves no row: a database
at the state before the move, with a release, its report, a sweep and a verification of it,
migrates forward and every row reads back through the new app with its links intact."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests.conftest import GBSG2_SCHEMA

BEFORE = [("clearinghouse", "0005_release_report"), ("generators", "0002_sweep"), ("verification", "0001_initial"),
          ("releases", None)]

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def test_it_keeps_releases_reports_and_sweeps_when_the_models_move(django_user_model):
    old = _migrate(BEFORE)
    assert "clearinghouse_release" in connection.introspection.table_names()
    User = old.get_model("accounts", "User")
    Dataset, Release = old.get_model("clearinghouse", "Dataset"), old.get_model("clearinghouse", "Release")
    ReleaseReport = old.get_model("clearinghouse", "ReleaseReport")
    GeneratorRun, Sweep = old.get_model("generators", "GeneratorRun"), old.get_model("generators", "Sweep")
    Verification = old.get_model("verification", "Verification")
    now = timezone.now()
    cora = User.objects.create(username="cora-migration", is_custodian=True)
    dataset = Dataset.objects.create(slug="gbsg2-migration", name="GBSG2", schema=GBSG2_SCHEMA, n_rows=686, n_columns=10, stored_bytes=1,
                                     source_sha256="0" * 64, storage_name="x.parquet.enc", created_by=cora)
    run = GeneratorRun.objects.create(dataset=dataset, model="copula", epochs=1, seed=0, queue="default",
                                      status="succeeded", created_by=cora)
    release = Release.objects.create(run=run, dataset=dataset, rows=686, seed=1, datasheet={"rows": 686},
                                     storage_name="abc123", csv_bytes=10, csv_sha256="c" * 64, parquet_bytes=20,
                                     parquet_sha256="p" * 64, created_by=cora, published_at=now, published_by=cora)
    ReleaseReport.objects.create(release=release, status="succeeded", content={"headline": {"fidelity.overall": 0.9}},
                                 public={"headline": {}}, requested_at=now)
    Sweep.objects.create(dataset=dataset, model_names=["copula"], seeds=[0], samples=1, epochs=1, rows=686,
                         status="succeeded", proposed_release=release, created_by=cora)
    verification_fields = {f.name for f in Verification._meta.get_fields()}
    assert "release" in verification_fields

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from releases.models import Release as NewRelease, ReleaseReport as NewReport, Sweep as NewSweep

    moved = NewRelease.objects.get(pk=release.pk)
    assert (moved.rows, moved.seed, moved.storage_name, moved.parquet_sha256) == (686, 1, "abc123", "p" * 64)
    assert moved.dataset.slug == "gbsg2-migration" and moved.run_id == run.pk and moved.published
    assert NewReport.objects.get(release=moved).content == {"headline": {"fidelity.overall": 0.9}}
    assert moved.report.status == "succeeded"
    sweep = NewSweep.objects.get(dataset__slug="gbsg2-migration")
    assert sweep.proposed_release == moved and sweep.model_names == ["copula"]
    assert {t for t in connection.introspection.table_names() if "release" in t or "sweep" in t} >= {
        "clearinghouse_release", "clearinghouse_releasereport", "generators_sweep"}
