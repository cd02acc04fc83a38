"""The migration to canonical emails and email verification, run over existing rows."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("accounts", "0003_oauth_code_challenge")


def _migrate(target: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    executor.loader.build_graph()
    return executor


def _to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def before_migration(transactional_db):
    """Old user rows (accounts at 0003); migrates to the latest state afterwards in any case."""
    executor = _migrate([BEFORE])
    try:
        yield executor.loader.project_state(BEFORE).apps
    finally:
        _to_latest()


def test_existing_users_get_canonical_emails_and_only_provider_accounts_start_verified(
    before_migration,
):
    from social_django.models import UserSocialAuth

    from accounts.models import User

    OldUser = before_migration.get_model("accounts", "User")  # noqa: N806
    OldUser.objects.create(username="p", email="Mixed@Example.com", password="x")
    by_provider = OldUser.objects.create(username="o", email="oauth@example.com", password="!")
    UserSocialAuth.objects.create(user_id=by_provider.pk, provider="google", uid="g-1")

    _to_latest()

    rows = dict(User.objects.values_list("username", "email_canonical"))
    assert rows == {"p": "mixed@example.com", "o": "oauth@example.com"}
    assert User.objects.get(username="p").email_verified is False
    assert User.objects.get(username="o").email_verified is True


def test_two_users_whose_emails_fold_to_one_form_stop_the_migration_with_their_ids(
    before_migration,
):
    OldUser = before_migration.get_model("accounts", "User")  # noqa: N806
    first = OldUser.objects.create(username="a", email="strasse@example.de", password="x")
    second = OldUser.objects.create(username="b", email="straße@example.de", password="x")
    with pytest.raises(RuntimeError, match=f"users {first.pk} and {second.pk}"):
        _to_latest()
    OldUser.objects.filter(pk=second.pk).delete()
