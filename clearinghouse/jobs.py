"""Queue a background job by its registered Celery task name.

Services never import a tasks module (tasks import services, so the reverse would be an import
circle); they name the task instead. Each app's ``AppConfig.ready`` imports its tasks module, so
every task is registered in every process. Without a broker (``CELERY_TASK_ALWAYS_EAGER``) the
job runs in-process, as ``apply_async`` does there.
"""

from __future__ import annotations

from clearinghouse.celery import app

__all__ = ["enqueue"]


def enqueue(name: str, *args: int, queue: str | None = None) -> None:
    """Send the task ``name`` with ``args`` (ids only), on ``queue`` or the task's default."""
    options = {"queue": queue} if queue else {}
    # The project's own app, not ``celery.current_app`` (thread-local, and whichever Celery() was made last).
    app.tasks[name].apply_async(args=list(args), **options)
