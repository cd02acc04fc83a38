"""Run endpoints: they parse, call one service or selector, and serialize."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ApplicationError
from projects.selectors import project_get_for_user

from ..comparison import run_compare, run_list_for_compare
from ..selectors import (
    run_get_for_user,
    run_list_for_project,
    step_get_for_run,
    step_list_for_run,
)
from ..services import run_approve, run_cancel, run_fork, run_resume
from ..services.followups import LATEST, run_generate
from .serializers import (
    CompareOutputSerializer,
    ForkInputSerializer,
    GenerateInputSerializer,
    GenerateOutputSerializer,
    RunDetailSerializer,
    RunListSerializer,
    StepDetailSerializer,
    StepSerializer,
)


class GenerateApi(APIView):
    """Start a run of the project for a prompt; progress streams at ``events_url``.

    The run changes the tree of ``base_run`` (default: the project's latest completed run;
    null: a fresh start). With ``deliver`` it is delivered to the project's forge (a branch
    and a pull request) once it completes.
    """

    throttle_scope = "generate"

    @extend_schema(request=GenerateInputSerializer, responses={202: GenerateOutputSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = GenerateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = run_generate(
            project=project,
            user=request.user,
            prompt=data.validated_data["prompt"],
            options=data.validated_data.get("options"),
            base_run_id=data.validated_data.get("base_run", LATEST),
            deliver=data.validated_data.get("deliver"),
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
        run = run_get_for_user(user=request.user, run_id=run_id, for_detail=True)
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


class RunForkApi(APIView):
    """Fork the run: a new run that reuses its succeeded steps before ``from`` (no model call,
    no cost counted again) and goes on from there with ``options`` (over the run's own)."""

    throttle_scope = "generate"

    @extend_schema(request=ForkInputSerializer, responses={202: GenerateOutputSerializer})
    def post(self, request: Request, run_id: int) -> Response:
        source = run_get_for_user(user=request.user, run_id=run_id)
        data = ForkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = run_fork(
            run=source,
            user=request.user,
            point=data.validated_data["from"],
            options=data.validated_data.get("options"),
        )
        body = {"run_id": run.id, "status": run.status, "events_url": f"/runs/{run.id}/events"}
        return Response(GenerateOutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


def _run_ids(raw: str | None, name: str) -> list[int]:
    """``"3,5"`` as ``[3, 5]``; 400 when missing or not a list of run ids."""
    parts = [part.strip() for part in (raw or "").split(",") if part.strip()]
    if not parts:
        raise ApplicationError(f"The '{name}' query parameter is required.", code="invalid")
    if not all(part.isdigit() for part in parts):
        raise ApplicationError(f"'{name}' must be run ids separated by commas.", code="invalid")
    return [int(part) for part in parts]


class ProjectCompareApi(APIView):
    """Two or three runs of the project side by side, and the file diff between two."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "runs", str, required=True, description="Two or three run ids: 'a,b[,c]'."
            ),
            OpenApiParameter(
                "diff",
                str,
                description="Two of those runs, 'from,to', to diff (default: the first two).",
            ),
        ],
        responses=CompareOutputSerializer,
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        runs = run_list_for_compare(
            project=project, run_ids=_run_ids(request.query_params.get("runs"), "runs")
        )
        pair = None
        if request.query_params.get("diff"):
            diff_ids = _run_ids(request.query_params.get("diff"), "diff")
            by_id = {run.pk: run for run in runs}
            if len(diff_ids) != 2 or not set(diff_ids) <= set(by_id):
                raise ApplicationError(
                    "'diff' names two of the compared runs: from,to.", code="invalid"
                )
            pair = (by_id[diff_ids[0]], by_id[diff_ids[1]])
        body = {"project": project.pk, **run_compare(runs=runs, diff_pair=pair)}
        return Response(CompareOutputSerializer(body).data)
