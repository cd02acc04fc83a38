"""``django.contrib.admin``'s app config with the MFA-aware site (its own module: an apps
module with two configs would confuse Django's default-config detection)."""

from django.contrib.admin.apps import AdminConfig


class MFAAdminConfig(AdminConfig):
    """``django.contrib.admin`` with ``accounts.admin_site.MFAAdminSite`` as ``admin.site``."""

    default_site = "accounts.admin_site.MFAAdminSite"
