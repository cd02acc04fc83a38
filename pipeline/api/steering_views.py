"""Steering endpoints: edit the plan at the gate, pause, message a task, forecast a run."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from projects.selectors import project_get_for_user

from ..forecast import run_estimate
from ..selectors import run_get_for_user
from ..services.followups import LATEST
from ..services.plan_edits import plan_edit
from ..services.steering import run_pause, task_message_send
from .views import _RunActionApi


class PlanTaskInputSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Unique in the plan: lowercase letters, digits, - or _.")
    title = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True)
    files = serializers.ListField(child=serializers.CharField(), help_text="Paths it writes.")
    depends_on = serializers.ListField(child=serializers.CharField(), required=False)


class PlanInputSerializer(serializers.Serializer):
    # Documentation of the body only: the service checks it whole (plain reasons, one rule
    # at a time), so the raw list is passed on.
    tasks = PlanTaskInputSerializer(many=True)


class PlanTaskOutputSerializer(PlanTaskInputSerializer):
    layer = serializers.IntegerField()


class PlanEditSerializer(serializers.Serializer):
    by = serializers.DictField(help_text="Who edited the plan: {id, email}.")
    at = serializers.DateTimeField()
    changes = serializers.ListField(
        child=serializers.DictField(),
        help_text="Per task: {op: added|removed|changed, task, fields: {name: {from, to}}}; "
        "{op: interfaces_dropped, interfaces} for design interfaces no task writes any more.",
    )


class PlanOutputSerializer(serializers.Serializer):
    tasks = PlanTaskOutputSerializer(many=True)
    edits = PlanEditSerializer(many=True)


class RunPlanApi(APIView):
    """Replace the plan of a run waiting for approval by the whole new task list; the change
    is recorded as a decision (who, when, what) and the run goes on with it once approved."""

    @extend_schema(request=PlanInputSerializer, responses={200: PlanOutputSerializer})
    def patch(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=request.user, run_id=run_id)
        tasks = request.data.get("tasks") if isinstance(request.data, dict) else None
        result = plan_edit(run=run, user=request.user, tasks=tasks)
        return Response(PlanOutputSerializer(result).data)


class RunPauseApi(_RunActionApi):
    """Pause the run: steps in flight finish, no new one starts until POST /resume."""

    service = staticmethod(run_pause)


class TaskMessageInputSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=True)


class TaskMessageOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task = serializers.CharField()
    text = serializers.CharField()
    at = serializers.DateTimeField()
    step = serializers.IntegerField(
        allow_null=True, help_text="The coder step that read it (null: not read yet)."
    )


class TaskMessageApi(APIView):
    """Send a message to a task: it joins the context of the task's next coder attempt."""

    @extend_schema(request=TaskMessageInputSerializer, responses={201: TaskMessageOutputSerializer})
    def post(self, request: Request, run_id: int, key: str) -> Response:
        run = run_get_for_user(user=request.user, run_id=run_id)
        data = TaskMessageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = task_message_send(
            run=run, user=request.user, key=key, text=data.validated_data["text"]
        )
        body = {
            "id": message.pk,
            "task": key,
            "text": message.text,
            "at": message.created_at,
            "step": message.step_id,
        }
        return Response(TaskMessageOutputSerializer(body).data, status=status.HTTP_201_CREATED)


class EstimateInputSerializer(serializers.Serializer):
    prompt = serializers.CharField(allow_blank=True, trim_whitespace=True)
    options = serializers.DictField(required=False, allow_null=True, default=None)
    base_run = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="As for generate: left out, the latest completed run; null, a fresh start.",
    )


class SpreadSerializer(serializers.Serializer):
    p10 = serializers.FloatField()
    p50 = serializers.FloatField()
    p90 = serializers.FloatField()


class CostSpreadSerializer(serializers.Serializer):
    p10 = serializers.DecimalField(max_digits=12, decimal_places=6)
    p50 = serializers.DecimalField(max_digits=12, decimal_places=6)
    p90 = serializers.DecimalField(max_digits=12, decimal_places=6)


class TokenSpreadSerializer(serializers.Serializer):
    p10 = serializers.IntegerField()
    p50 = serializers.IntegerField()
    p90 = serializers.IntegerField()


class EstimateOutputSerializer(serializers.Serializer):
    cost_usd = CostSpreadSerializer()
    seconds = SpreadSerializer()
    tokens = TokenSpreadSerializer()
    basis = serializers.ChoiceField(
        choices=["user", "everyone", "default"],
        help_text="What the forecast rests on: your completed runs, everyone's on this "
        "server, or the stated default (a typical three-task run).",
    )
    history_runs = serializers.IntegerField(help_text="Completed runs read (0 for default).")
    follow_up = serializers.BooleanField(help_text="Whether the run would build on a base run.")
    prices = serializers.DictField(
        child=serializers.CharField(), help_text="Per role, the model its tokens are priced at."
    )
    detail = serializers.CharField(help_text="The same, in a sentence.")


class EstimateApi(APIView):
    """What a run of this body would cost and take (p10, p50, p90), before it starts: the
    token history of past runs priced at the chosen chains' prices."""

    @extend_schema(request=EstimateInputSerializer, responses={200: EstimateOutputSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        data = EstimateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = run_estimate(
            project=project,
            user=request.user,
            prompt=data.validated_data["prompt"],
            options=data.validated_data.get("options"),
            base_run_id=data.validated_data.get("base_run", LATEST),
        )
        return Response(EstimateOutputSerializer(result.as_dict()).data)
