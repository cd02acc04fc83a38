"""Run endpoints: they parse, call one service or selector, and serialize."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from projects.selectors import project_get_for_user

from ..selectors import (
    run_get_for_user,
    run_list_for_project,
    step_get_for_run,
    step_list_for_run,
)
from ..services import run_approve, run_cancel, run_resume, run_start
from .serializers import (
    GenerateInputSerializer,
    GenerateOutputSerializer,
    RunDetailSerializer,
    RunListSerializer,
    StepDetailSerializer,
    StepSerializer,
)


class GenerateApi(APIView):
    """Start a run of the project for a prompt; progress streams at ``events_url``."""

    throttle_scope = "generate"

    @extend_schema(request=GenerateInputSerializer, responses={202: GenerateOutputSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = GenerateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = run_start(
            project=project,
            user=request.user,
            prompt=data.validated_data["prompt"],
            options=data.validated_data.get("options"),
        )
        body = {"run_id": run.id, "status": run.status, "events_url": f"/runs/{run.id}/events"}
        return Response(GenerateOutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class ProjectRunListApi(APIView):
    """The project's runs, newest first."""

    @extend_schema(responses=RunListSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        runs = run_list_for_project(project=project)
        return Response(RunListSerializer(runs, many=True).data)


class RunDetailApi(APIView):
    """One run with its stages, design rounds, tasks, tokens, cost and timings."""

    @extend_schema(responses=RunDetailSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=request.user, run_id=run_id)
        return Response(RunDetailSerializer(run).data)


class RunStepListApi(APIView):
    """The run's steps."""

    @extend_schema(responses=StepSerializer(many=True))
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=request.user, run_id=run_id)
        return Response(StepSerializer(step_list_for_run(run=run), many=True).data)


class RunStepDetailApi(APIView):
    """One step of the run with its input and output (design, objections, files, test report),
    secrets redacted."""

    @extend_schema(responses=StepDetailSerializer)
    def get(self, request: Request, run_id: int, step_id: int) -> Response:
        run = run_get_for_user(user=request.user, run_id=run_id)
        step = step_get_for_run(run=run, step_id=step_id)
        return Response(StepDetailSerializer(step).data)


class _RunActionApi(APIView):
    service = staticmethod(run_cancel)

    @extend_schema(request=None, responses={202: RunDetailSerializer})
    def post(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=request.user, run_id=run_id)
        run = type(self).service(run=run)
        return Response(RunDetailSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunCancelApi(_RunActionApi):
    """Cancel the run: no further step starts."""

    service = staticmethod(run_cancel)


class RunResumeApi(_RunActionApi):
    """Resume a failed, cancelled or stalled run where it stopped."""

    service = staticmethod(run_resume)


class RunApproveApi(_RunActionApi):
    """Approve the design of a run waiting at the approval gate."""

    service = staticmethod(run_approve)
