"""The releases tests share the custody tests' clean cache (throttle counters live there) and the
generator tests' one-thread setting, a trained copula run of the six-row dataset and a draft of it."""

import pytest

from generators.models import GeneratorRun
from generators.services import run_create
from releases.models import Release
from tests.clearinghouse.conftest import _empty_cache  # noqa: F401  (autouse fixture)
from tests.generators.conftest import _one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture
def run(dataset, custodian, django_capture_on_commit_callbacks) -> GeneratorRun:
    """A succeeded copula run of the six-row ``dataset``, trained when its creation committed (eager)."""
    with django_capture_on_commit_callbacks(execute=True):
        made = run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian[0])
    made.refresh_from_db()
    assert made.status == GeneratorRun.Status.SUCCEEDED, made.error
    return made


def draft(clients, run, *, seed: int = 1) -> Release:
    """A draft of 8 rows made through the API; its report is pending (the test's transaction never commits)."""
    response = clients["custodian"].post(f"/api/v1/runs/{run.pk}/releases/", {"rows": 8, "seed": seed}, format="json")
    assert response.status_code == 201, response.content
    return Release.objects.get(pk=response.json()["id"])


@pytest.fixture
def release(clients, run) -> Release:
    return draft(clients, run)
