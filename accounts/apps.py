from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from . import cookie_sessions, revocation, schema, signals  # noqa: F401  (receivers, OpenAPI)
