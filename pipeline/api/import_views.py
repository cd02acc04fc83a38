"""Import endpoints: start an import run (git or an uploaded archive); the baseline."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from projects.selectors import project_get_for_user

from ..selectors import project_baseline
from ..services.imports import run_import_start, upload_handlers_install
from .serializers import GenerateOutputSerializer


class GitSourceSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000,
        help_text="https:// or ssh:// (http:// and file:// only with REPOSITORY_ALLOW_LOCAL).",
    )
    ref = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=255,
        help_text="A branch, a tag or a full commit id; left out: the remote's HEAD.",
    )
    submodules = serializers.BooleanField(
        required=False, default=False, help_text="Fetch submodules too (their URLs checked)."
    )


class ImportInputSerializer(serializers.Serializer):
    """JSON ``{"git": {url, ref?}}``, or a multipart form with an ``archive`` file."""

    git = GitSourceSerializer(required=False)
    archive = serializers.FileField(
        required=False, help_text="A .zip or .tar.gz (multipart/form-data)."
    )


class ProjectImportApi(APIView):
    """Start an import run: the repository's tree becomes the base of the project's next run;
    progress streams at ``events_url`` (``import.progress``)."""

    throttle_scope = "generate"

    def initialize_request(self, request: Any, *args: Any, **kwargs: Any) -> Request:
        # Before anything reads the body: an upload past the limit is refused as it is parsed.
        upload_handlers_install(request)
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request=ImportInputSerializer, responses={202: GenerateOutputSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = ImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        archive = data.validated_data.get("archive")
        run = run_import_start(
            project=project,
            user=request.user,
            git=data.validated_data.get("git"),
            archive=archive,
            archive_name=archive.name if archive is not None else "",
        )
        body = {"run_id": run.id, "status": run.status, "events_url": f"/runs/{run.id}/events"}
        return Response(GenerateOutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class BaselineTestSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="pytest's node id, e.g. tests/test_x.py::test_y.")
    outcome = serializers.CharField(help_text="passed, failed, error, skipped, xfailed, xpassed.")


class BaselineOutputSerializer(serializers.Serializer):
    run = serializers.IntegerField(help_text="The import run whose tree was tested.")
    run_status = serializers.CharField()
    command = serializers.CharField(help_text="How the tests ran ('' when none was found).")
    status = serializers.CharField(help_text="pending, passed, failed or not_run.")
    reason = serializers.CharField(help_text="Why this command, or why the tests did not run.")
    counts = serializers.DictField(child=serializers.IntegerField())
    tests = BaselineTestSerializer(many=True)


class ProjectBaselineApi(APIView):
    """The before picture: the imported repository's own tests as they ran at import (of the
    import the project's latest completed run descends from, else its latest import)."""

    @extend_schema(responses=BaselineOutputSerializer)
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        return Response(BaselineOutputSerializer(project_baseline(project=project)).data)
