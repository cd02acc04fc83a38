"""Canonical emails, email verification, the session epoch, the MFA mark on sessions.

The canonical email of every existing user is filled in here (two users whose emails fold to
one form stop the migration with their ids: an operator decides which account keeps the
address). Accounts that signed in through a provider have a provider-verified email and
start verified; every other account starts unverified.
"""

import unicodedata

from django.db import migrations, models


def _canonical(value):
    # A frozen copy of accounts.models.canonical_email (migrations must not import app code).
    folded = unicodedata.normalize("NFKC", (value or "").strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


def fill(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    UserSocialAuth = apps.get_model("social_django", "UserSocialAuth")
    seen = {}
    for user in User.objects.only("id", "email").order_by("id"):
        canonical = _canonical(user.email)
        if canonical in seen:
            raise RuntimeError(
                f"users {seen[canonical]} and {user.id} have emails that compare equal "
                f"({canonical!r}); change one of them before migrating"
            )
        seen[canonical] = user.id
        User.objects.filter(pk=user.pk).update(email_canonical=canonical)
    linked = UserSocialAuth.objects.values("user_id")
    User.objects.filter(pk__in=linked).update(email_verified_at=models.F("date_joined"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_oauth_code_challenge"),
        ("social_django", "0022_nonce_timestamp_index"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="user",
            options={"verbose_name": "user", "verbose_name_plural": "users"},
        ),
        migrations.AddField(
            model_name="user",
            name="email_canonical",
            field=models.CharField(editable=False, max_length=1024, null=True),
        ),
        migrations.AddField(
            model_name="user",
            name="email_verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="user",
            name="session_epoch",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="usersession",
            name="mfa_verified_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
