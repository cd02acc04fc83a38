"""Artifact files of a project's runs: the tree, one file's content, the zip, a diff of runs.

Owner only (another user's project or run is a 404). ``?run=`` picks the run; without it,
the latest completed run that has artifacts.
"""

import mimetypes
import re
import tempfile
from collections.abc import Iterable
from typing import Any

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError

from ..artifacts import (
    artifact_get,
    artifact_list_for_run,
    artifact_read,
    artifact_run_for_project,
    artifact_tree_diff,
    artifact_zip_write,
)
from ..selectors import project_get_for_user

RUN_PARAMETER = OpenApiParameter(
    "run", int, description="Run id (default: the latest completed run with files)."
)
# Zips up to this size stay in memory; larger ones spill to a temporary file.
_ZIP_SPOOL_BYTES = 16 * 1024 * 1024


class _AnyAcceptNegotiation(BaseContentNegotiation):
    """Raw file bodies answer whatever the client accepts; errors are JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> Any:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> Any:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


def _int_param(request: Request, name: str, *, required: bool = False) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise ApplicationError(f"The '{name}' query parameter is required.", code="invalid")
        return None
    if not raw.isdigit():
        raise ApplicationError(f"'{name}' must be a run id.", code="invalid")
    return int(raw)


class FileOutputSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class FileTreeOutputSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    run = serializers.IntegerField()
    run_status = serializers.CharField()
    total_size = serializers.IntegerField()
    files = FileOutputSerializer(many=True)


class TreeDiffOutputSerializer(serializers.Serializer):
    from_run = serializers.IntegerField()
    to_run = serializers.IntegerField()
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    changed = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.IntegerField()
    diffs = serializers.DictField(child=serializers.CharField())


class ProjectFilesApi(APIView):
    """``GET /projects/{id}/files``: the run's tree (path, size, sha256)."""

    @extend_schema(parameters=[RUN_PARAMETER], responses=FileTreeOutputSerializer)
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        run = artifact_run_for_project(project=project, run_id=_int_param(request, "run"))
        files = list(artifact_list_for_run(run=run))
        body = {
            "project": project.pk,
            "run": run.pk,
            "run_status": run.status,
            "total_size": sum(a.size for a in files),
            "files": files,
        }
        return Response(FileTreeOutputSerializer(body).data)


_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-sh|toml|yaml))")


class ProjectFileContentApi(APIView):
    """``GET /projects/{id}/files/{path}``: one file's bytes.

    Served as ``text/plain`` or ``application/octet-stream`` with a sandboxing CSP, never as
    HTML, so a generated page cannot run script on this origin.
    """

    content_negotiation_class = _AnyAcceptNegotiation

    @extend_schema(
        operation_id="projects_file_content",
        parameters=[RUN_PARAMETER],
        responses={(200, "*/*"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, project_id: int, path: str) -> HttpResponse:
        project = project_get_for_user(user=request.user, project_id=project_id)
        run = artifact_run_for_project(project=project, run_id=_int_param(request, "run"))
        artifact = artifact_get(run=run, path=path)
        data = artifact_read(artifact=artifact)
        guessed, _ = mimetypes.guess_type(artifact.path)
        is_text = (guessed is None or _TEXT_TYPES.match(guessed)) and b"\x00" not in data
        content_type = "text/plain; charset=utf-8" if is_text else "application/octet-stream"
        response = HttpResponse(data, content_type=content_type)
        response["Content-Security-Policy"] = "sandbox; default-src 'none'"
        response["X-Content-Type-Options"] = "nosniff"
        response["ETag"] = f'"{artifact.sha256}"'
        response["X-Artifact-Sha256"] = artifact.sha256
        return response


def _zip_filename(name: str, run_id: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "project"
    return f"{slug}-run{run_id}.zip"


class ProjectDownloadApi(APIView):
    """``GET /projects/{id}/download``: the run's tree as a zip archive."""

    content_negotiation_class = _AnyAcceptNegotiation

    @extend_schema(
        parameters=[RUN_PARAMETER], responses={(200, "application/zip"): OpenApiTypes.BINARY}
    )
    def get(self, request: Request, project_id: int) -> FileResponse:
        project = project_get_for_user(user=request.user, project_id=project_id)
        run = artifact_run_for_project(project=project, run_id=_int_param(request, "run"))
        spool = tempfile.SpooledTemporaryFile(max_size=_ZIP_SPOOL_BYTES)  # noqa: SIM115
        artifact_zip_write(run=run, fileobj=spool)
        spool.seek(0)
        return FileResponse(
            spool,
            as_attachment=True,
            filename=_zip_filename(project.name, run.pk),
            content_type="application/zip",
        )


class ProjectDiffApi(APIView):
    """``GET /projects/{id}/diff?from=RUN&to=RUN``: what changed between two runs' trees."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True, description="The older run."),
            OpenApiParameter("to", int, description="The newer run (default: latest)."),
        ],
        responses=TreeDiffOutputSerializer,
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        from_run = artifact_run_for_project(
            project=project, run_id=_int_param(request, "from", required=True)
        )
        to_run = artifact_run_for_project(project=project, run_id=_int_param(request, "to"))
        diff = artifact_tree_diff(from_run=from_run, to_run=to_run)
        return Response(TreeDiffOutputSerializer(diff.as_dict()).data)
