"""GET /projects' body written by PostgreSQL (common.json_lists): the very bytes DRF renders."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from projects.api.serializers import ProjectOutputSerializer
from projects.models import Project
from projects.selectors import project_list_for_user, project_list_json_for_user
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

# Every character JSON or DRF escapes, the other control characters (but NUL, which
# PostgreSQL's text cannot hold), and text past ASCII.
AWKWARD = 'quote " backslash \\ slash / \b\f\n\r\t \x01 \x1f \x7f é 漢字 🚀 \u2028 \u2029'


def drf_body(user):
    """What DRF's own path sends: the model serializer's data through its JSON renderer."""
    data = ProjectOutputSerializer(project_list_for_user(user=user), many=True).data
    return JSONRenderer().render(data)


def test_the_body_is_byte_for_byte_what_drf_renders(api_client, user):
    ProjectFactory(owner=user, name=AWKWARD, description=AWKWARD[::-1])
    ProjectFactory(owner=user, name="plain", description="")
    on_the_second = ProjectFactory(owner=user)
    Project.objects.filter(pk=on_the_second.pk).update(  # isoformat() leaves ".000000" out
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
    )

    response = api_client.get("/projects")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == drf_body(user)
    assert project_list_json_for_user(user=user).encode() == drf_body(user)


def test_no_projects_is_an_empty_list(api_client, user):
    response = api_client.get("/projects")

    assert response.content == b"[]"


def test_another_time_zone_in_force_is_served_by_drf_in_that_zone(api_client, user):
    ProjectFactory(owner=user)

    with timezone.override("Asia/Tokyo"):
        assert project_list_json_for_user(user=user) is None
        response = api_client.get("/projects")
        expected = drf_body(user)

    assert b"+09:00" in response.content
    assert response.content == expected


def test_ids_asked_for_as_strings_are_served_by_drf_as_strings(api_client, user, settings):
    project = ProjectFactory(owner=user)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "COERCE_BIGINT_TO_STRING": True}

    response = api_client.get("/projects")

    assert project_list_json_for_user(user=user) is None
    assert response.json()[0]["id"] == str(project.id)
    assert response.content == drf_body(user)
