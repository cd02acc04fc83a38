"""Input and output serializers of the auth API."""

from typing import Any

from rest_framework import serializers

from ..models import User, UserSession


class RegisterInput(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class LoginInput(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class RefreshInput(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class LogoutInput(serializers.Serializer):
    # Without it, the session of the request itself (bearer token or dashboard cookie).
    refresh = serializers.CharField(max_length=4096, required=False, allow_blank=True)


class MfaVerifyInput(serializers.Serializer):
    mfa_token = serializers.CharField(max_length=4096)
    code = serializers.CharField(max_length=32)


class CodeInput(serializers.Serializer):
    code = serializers.CharField(max_length=128)


class MfaConfirmInput(serializers.Serializer):
    code = serializers.CharField(max_length=128)
    # Required for an account with a password; one created through a provider has none.
    password = serializers.CharField(
        max_length=256, trim_whitespace=False, required=False, default=""
    )


class EmailVerifyInput(serializers.Serializer):
    token = serializers.CharField(max_length=1024)
    # The account's password; not needed when signed in as the account.
    password = serializers.CharField(
        max_length=256, trim_whitespace=False, required=False, default=""
    )


class PasswordResetInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmInput(serializers.Serializer):
    # The two last parts of the mailed link: /password/reset/<uid>/<token>
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    new_password = serializers.CharField(max_length=256, trim_whitespace=False)


class DetailOutput(serializers.Serializer):
    detail = serializers.CharField()


class ExchangeInput(serializers.Serializer):
    code = serializers.CharField(max_length=128)
    code_verifier = serializers.CharField(max_length=128, required=False, default="")


class PasswordChangeInput(serializers.Serializer):
    current_password = serializers.CharField(max_length=256, trim_whitespace=False)
    new_password = serializers.CharField(max_length=256, trim_whitespace=False)


class UserOutput(serializers.ModelSerializer):
    mfa_enabled = serializers.SerializerMethodField()
    email_verified = serializers.BooleanField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "email_verified", "mfa_enabled"]

    def get_mfa_enabled(self, user: User) -> bool:
        from ..services import user_has_mfa

        return user_has_mfa(user)


class RegisteredOutput(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email"]


class SessionOutput(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = UserSession
        fields = ["id", "device", "user_agent", "ip", "created_at", "last_seen_at", "current"]

    def get_current(self, session: UserSession) -> bool:
        current: Any = self.context.get("current_sid")
        return current is not None and str(session.pk) == str(current)
