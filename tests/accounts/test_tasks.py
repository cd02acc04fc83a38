"""Housekeeping: long-dead sessions, spent OAuth codes and stale revoked sids go away."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import OAuthExchangeCode, UserSession
from accounts.services import oauth_exchange_code_create, session_start
from accounts.tasks import accounts_expire

pytestmark = pytest.mark.django_db


def test_sessions_revoked_long_ago_are_deleted_and_live_ones_kept(user):
    old, _ = session_start(user=user, ip=None, user_agent="")
    live, _ = session_start(user=user, ip=None, user_agent="")
    UserSession.objects.filter(pk=old.pk).update(revoked_at=timezone.now() - timedelta(days=31))
    accounts_expire()
    assert list(UserSession.objects.values_list("pk", flat=True)) == [live.pk]


def test_expired_oauth_codes_are_deleted(user):
    oauth_exchange_code_create(user=user, code_challenge="c" * 43)
    OAuthExchangeCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    accounts_expire()
    assert not OAuthExchangeCode.objects.exists()


def test_the_task_is_in_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "accounts.tasks.accounts_expire" in tasks
