"""The Celery app. Every ``CELERY_*`` setting lives in Django settings.

Workers: ``celery -A clearinghouse worker -Q default`` (CPU) and
``celery -A clearinghouse worker -Q gpu`` (CUDA); ``celery -A clearinghouse beat``.
Without ``CELERY_BROKER_URL`` tasks run eagerly, in-process, when their transaction commits.
``make serve`` (``manage.py serve``) runs the web server and one worker (queues default and gpu,
with beat) on the embedded broker ``filesystem://`` under ``DATA_DIR/broker/``.
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clearinghouse.settings")

app = Celery("clearinghouse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()



@signals.task_prerun.connect
def _bind_context(task_id=None, task=None, **kwargs):
    """Audit rows written by a task carry the task id as their request id."""
    from clearinghouse import context

    task.request.clearinghouse_context = context.use(
        context.RequestContext(request_id=(task_id or "task").replace("-", ""), client_ip=None, channel="task")
    )


@signals.task_postrun.connect
def _unbind_context(task=None, **kwargs):
    from clearinghouse import context

    token = getattr(task.request, "clearinghouse_context", None)
    if token is not None:
        context.reset(token)
