from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..selectors import (
    PROJECT_ROW_FIELDS,
    project_get_for_user,
    project_list_json_for_user,
    project_rows_for_user,
)
from ..services import project_create, project_delete, project_update
from .serializers import ProjectInputSerializer, ProjectOutputSerializer, ProjectPatchSerializer


class ProjectListCreateApi(APIView):
    """The user's projects: list them, or create one."""

    @extend_schema(responses=ProjectOutputSerializer(many=True))
    def get(self, request: Request) -> HttpResponse:
        body = project_list_json_for_user(user=request.user)
        if body is not None:  # already the JSON DRF would render
            return HttpResponse(body, content_type="application/json")
        rows = project_rows_for_user(user=request.user)
        return Response(ProjectOutputSerializer().represent_rows(rows, PROJECT_ROW_FIELDS))

    @extend_schema(request=ProjectInputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request: Request) -> Response:
        data = ProjectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = project_create(owner=request.user, **data.validated_data)
        return Response(ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    """One of the user's projects."""

    @extend_schema(responses=ProjectOutputSerializer)
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        return Response(ProjectOutputSerializer(project).data)

    @extend_schema(request=ProjectPatchSerializer, responses=ProjectOutputSerializer)
    def patch(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = ProjectPatchSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        project = project_update(project=project, data=data.validated_data)
        return Response(ProjectOutputSerializer(project).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        project_delete(project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)
