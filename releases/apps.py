from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases (synthetic cohorts, reports, sweeps)"

    def ready(self) -> None:
        from releases import tasks  # noqa: F401  (register the tasks: services queue them by name)
