from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts, roles and tokens"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401  (audit admin-site logins)
