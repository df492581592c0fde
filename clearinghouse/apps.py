from django.apps import AppConfig


class ClearinghouseConfig(AppConfig):
    name = "clearinghouse"
    verbose_name = "Clearing-house (custody and audit)"

    def ready(self) -> None:
        from clearinghouse import celery, checks  # noqa: F401  (load the Celery app; register checks)
        from clearinghouse.api import schema  # noqa: F401  (OpenAPI extensions)
        from clearinghouse import tasks  # noqa: F401  (register the tasks: beat queues them by name)
