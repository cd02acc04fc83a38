"""Deliveries in the admin: listed with their state and pull request, read-only."""

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from pipeline.models import RunDelivery
from tests.pipeline.delivery.helpers import make_completed_run

pytestmark = pytest.mark.django_db


def test_the_admin_lists_deliveries_and_changes_none(admin_client: Any, project: Any) -> None:
    run = make_completed_run(project, {"app.py": "v2\n"})
    delivery = RunDelivery.objects.create(
        run=run, branch="aiflow/run-1", state="failed", error="No.", requested_at=timezone.now()
    )

    listed = admin_client.get(reverse("admin:pipeline_rundelivery_changelist"))
    change = admin_client.post(
        reverse("admin:pipeline_rundelivery_change", args=[delivery.pk]),
        {"branch": "main", "state": "delivered"},
    )

    assert listed.status_code == 200
    assert [row.pk for row in listed.context["cl"].result_list] == [delivery.pk]
    assert change.status_code == 403
    assert RunDelivery.objects.get(pk=delivery.pk).state == "failed"
    assert admin_client.get(reverse("admin:pipeline_rundelivery_add")).status_code == 403
