from django.apps import AppConfig


class GeneratorsConfig(AppConfig):
    name = "generators"
    verbose_name = "Generators (training runs)"

    def ready(self) -> None:
        from generators import tasks  # noqa: F401  (register the tasks: services queue them by name)
