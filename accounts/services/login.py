"""Sign-in with a password, and with the one-time code an OAuth sign-in hands the API client."""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone

from common.errors import ApplicationError
from common.logging import get_logger

from ..errors import AuthenticationError
from ..models import OAuthExchangeCode, User
from ..tokens import TokenPair
from .lockout import login_failed, login_guard, login_lockout_clear
from .mfa import mfa_token_issue, user_has_mfa
from .sessions import session_start

logger = get_logger(__name__)


@dataclass(frozen=True)
class LoginResult:
    """Either a token pair (``pair``) or, with MFA on, an ``mfa_token`` to verify."""

    user: User
    pair: TokenPair | None = None
    mfa_token: str | None = None


def auth_login(*, email: str, password: str, ip: str | None, user_agent: str) -> LoginResult:
    """Check email and password; a session and tokens, or an MFA challenge."""
    login_guard(email=email)
    user = authenticate(email=email.strip(), password=password)
    if user is None:
        login_failed(email=email)
        logger.info("accounts.login.failed")
        raise AuthenticationError("Invalid email or password.", code="invalid_credentials")
    if user_has_mfa(user):
        # The failure count stays until the second factor passes too.
        return LoginResult(user=user, mfa_token=mfa_token_issue(user=user))
    login_lockout_clear(user=user)
    _, pair = session_start(user=user, ip=ip, user_agent=user_agent)
    return LoginResult(user=user, pair=pair)


# --- OAuth one-time exchange codes ----------------------------------------------------------


def _code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def pkce_s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def oauth_exchange_code_create(*, user: User, code_challenge: str) -> str:
    """A one-time code (60 s by default) the API client trades for tokens with the PKCE
    verifier of ``code_challenge`` (S256, required)."""
    if not code_challenge:
        raise ApplicationError(
            "A client redirect needs a PKCE code_challenge.", code="code_challenge_required"
        )
    code = secrets.token_urlsafe(32)
    now = timezone.now()
    OAuthExchangeCode.objects.create(
        user=user,
        digest=_code_digest(code),
        code_challenge=code_challenge,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.ACCOUNTS_OAUTH_EXCHANGE_CODE_SECONDS),
    )
    return code


def oauth_exchange_code_redeem(
    *, code: str, ip: str | None, user_agent: str, code_verifier: str = ""
) -> LoginResult:
    """Spend a one-time code: tokens, or an MFA challenge when the user has MFA on.

    The code is spent by the first attempt, right or wrong verifier alike; a code without a
    challenge (none is issued any more) is refused.
    """
    digest = _code_digest(str(code or ""))
    now = timezone.now()
    with transaction.atomic():
        spent = OAuthExchangeCode.objects.filter(
            digest=digest, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        row = OAuthExchangeCode.objects.select_related("user").filter(digest=digest).first()
    if not spent or row is None or not row.user.is_active:
        raise AuthenticationError("The code is invalid or expired.", code="invalid_code")
    if not row.code_challenge or not hmac.compare_digest(
        pkce_s256(code_verifier), row.code_challenge
    ):
        raise AuthenticationError("The code verifier does not match.", code="invalid_code")
    user = row.user
    if user_has_mfa(user):
        return LoginResult(user=user, mfa_token=mfa_token_issue(user=user))
    _, pair = session_start(user=user, ip=ip, user_agent=user_agent)
    return LoginResult(user=user, pair=pair)
