from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from projects.selectors import project_get_for_user

from ..selectors import forge_connection_get_for_user
from ..services import forge_connection_delete, forge_connection_put
from .serializers import ForgeInputSerializer, ForgeOutputSerializer


class ForgeApi(APIView):
    """The project's forge connection: where deliveries go, with write-only credentials."""

    @extend_schema(responses=ForgeOutputSerializer)
    def get(self, request: Request, project_id: int) -> Response:
        connection = forge_connection_get_for_user(user=request.user, project_id=project_id)
        return Response(ForgeOutputSerializer(connection).data)

    @extend_schema(request=ForgeInputSerializer, responses=ForgeOutputSerializer)
    def put(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = ForgeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        connection = forge_connection_put(project=project, **data.validated_data)
        return Response(ForgeOutputSerializer(connection).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: int) -> Response:
        connection = forge_connection_get_for_user(user=request.user, project_id=project_id)
        forge_connection_delete(connection=connection)
        return Response(status=status.HTTP_204_NO_CONTENT)
