"""A real task round trip through the broker (Redis), when one is configured.

The rest of the suite runs tasks eagerly; this test shows the queue wiring works:
the task is published to Redis, consumed by a worker thread, and its effect (an
audit row written by the task) is visible in the database.
"""

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from clearinghouse.celery import app
from clearinghouse.models import AuditEvent
from clearinghouse.tasks import audit_chain_verify_task

pytestmark = pytest.mark.skipif(not settings.CELERY_BROKER_URL, reason="no CELERY_BROKER_URL: jobs run in-process")


@pytest.mark.django_db(transaction=True)
def test_a_task_goes_through_the_broker_and_a_worker():
    app.conf.task_always_eager = False
    try:
        app.control.purge()
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=30):
            result = audit_chain_verify_task.apply_async()
            event = None
            for _ in range(100):  # up to ~20 s
                event = AuditEvent.objects.filter(action="audit.chain.check").first()
                if event is not None:
                    break
                import time

                time.sleep(0.2)
    finally:
        app.conf.task_always_eager = True
    assert event is not None, "the worker did not run the task"
    assert event.channel == "task"
    assert event.request_id == result.id.replace("-", "")
    assert event.outcome == "success" and event.details["valid"] is True
