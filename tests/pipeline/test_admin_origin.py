"""The admin lists where a run came from: the base run of a follow-up, a fork's source."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from pipeline.models import Run, Step

pytestmark = pytest.mark.django_db


def test_the_run_list_shows_each_runs_base_run_and_fork_source(
    admin_client: Client, project: Any
) -> None:
    base = Run.objects.create(project=project, prompt="base", status=Run.Status.COMPLETED)
    follow_up = Run.objects.create(project=project, prompt="follow-up", base_run=base)
    Run.objects.create(project=project, prompt="fork", forked_from=follow_up, fork_point="coding")

    html = admin_client.get(reverse("admin:pipeline_run_changelist")).content.decode()

    base_url = reverse("admin:pipeline_run_change", args=[base.pk])
    source_url = reverse("admin:pipeline_run_change", args=[follow_up.pk])
    assert f'follow-up of <a href="{base_url}">run {base.pk}</a>' in html
    assert f'fork of <a href="{source_url}">run {follow_up.pk}</a> from coding' in html


def test_a_runs_page_shows_its_origin(admin_client: Client, project: Any) -> None:
    base = Run.objects.create(project=project, prompt="base", status=Run.Status.COMPLETED)
    follow_up = Run.objects.create(project=project, prompt="follow-up", base_run=base)

    html = admin_client.get(
        reverse("admin:pipeline_run_change", args=[follow_up.pk])
    ).content.decode()

    assert f'follow-up of <a href="{reverse("admin:pipeline_run_change", args=[base.pk])}"' in html


def test_steps_can_be_filtered_to_the_reused_ones(admin_client: Client, project: Any) -> None:
    run = Run.objects.create(project=project, prompt="fork")
    reused = Step.objects.create(run=run, role="architect", key="design:1:architect", reused=True)
    Step.objects.create(run=run, role="coder", key="task:a:coder:1")

    response = admin_client.get(reverse("admin:pipeline_step_changelist"), {"reused__exact": "1"})

    assert [step.pk for step in response.context["cl"].result_list] == [reused.pk]
