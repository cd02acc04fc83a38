from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Building blocks every app may use; installed for its management commands
    (``rotate_secrets``). It has no models."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "common"
