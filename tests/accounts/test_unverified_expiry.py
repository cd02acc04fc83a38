"""Accounts nobody verified expire after ACCOUNTS_UNVERIFIED_DAYS (a beat task deletes them),
so an address registered by someone who does not own it is free again."""

import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import User
from accounts.tasks import unverified_accounts_expire
from projects.models import Project
from projects.workspace import workspace_for_project
from tests.factories import ProjectFactory, UserFactory
from tests.net import ROOT

pytestmark = pytest.mark.django_db


def joined_days_ago(days: float, **fields: Any) -> User:
    user = UserFactory(**fields)
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=days))
    return user


def test_an_unverified_account_past_the_limit_is_deleted_and_its_address_is_free(register):
    days = settings.ACCOUNTS_UNVERIFIED_DAYS
    squatter = joined_days_ago(days + 0.1, email="victim@example.com")

    deleted = unverified_accounts_expire()
    again = register("victim@example.com", username="the-owner")

    assert (deleted, User.objects.filter(pk=squatter.pk).exists()) == (1, False)
    assert again.status_code == 201


def test_verified_young_and_staff_accounts_are_kept() -> None:
    days = settings.ACCOUNTS_UNVERIFIED_DAYS
    kept = [
        joined_days_ago(days + 1, email_verified_at=timezone.now()),
        joined_days_ago(days - 1),
        joined_days_ago(days + 1, is_staff=True),
        joined_days_ago(days + 1, is_superuser=True),
    ]

    deleted = unverified_accounts_expire()

    assert (deleted, User.objects.filter(pk__in=[u.pk for u in kept]).count()) == (0, 4)


def test_the_projects_and_workspaces_of_an_expired_account_go_with_it(
    tmp_path: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    user = joined_days_ago(settings.ACCOUNTS_UNVERIFIED_DAYS + 1)
    project = ProjectFactory(owner=user)
    workspace = workspace_for_project(project_id=project.pk)

    with django_capture_on_commit_callbacks(execute=True):
        unverified_accounts_expire()

    assert (Project.objects.filter(pk=project.pk).exists(), workspace.exists()) == (False, False)


def test_the_expiry_runs_from_the_beat_schedule() -> None:
    entries = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]

    assert "accounts.tasks.unverified_accounts_expire" in entries


def test_a_bad_setting_is_refused_at_start_up() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "ACCOUNTS_UNVERIFIED_DAYS": "0",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "ACCOUNTS_UNVERIFIED_DAYS must be a positive integer" in result.stderr
