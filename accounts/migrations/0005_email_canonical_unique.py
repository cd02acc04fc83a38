"""The canonical email becomes the unique key; the lower-case constraint it replaces goes."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_email_canonical_verification_session_epoch"),
    ]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="email_canonical",
            field=models.CharField(editable=False, max_length=1024, unique=True),
        ),
        migrations.RemoveConstraint(
            model_name="user",
            name="user_email_ci_unique",
        ),
    ]
