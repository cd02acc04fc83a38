"""OpenAPI (drf-spectacular) descriptions of the accounts authentication classes."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class SessionJWTScheme(SimpleJWTScheme):
    """Bearer JWT access token (bound to a device session)."""

    target_class = "accounts.authentication.SessionJWTAuthentication"
    name = "jwtAuth"


class OTPSessionScheme(SessionScheme):
    """The dashboard's session cookie (after its MFA step)."""

    target_class = "accounts.authentication.OTPSessionAuthentication"
    name = "cookieAuth"
