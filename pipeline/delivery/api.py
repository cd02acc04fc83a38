"""Delivery endpoints: ``POST /runs/{id}/deliver`` and the forge's ``POST /hooks/{kind}/{id}``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..selectors import run_get_for_user
from .hooks import review_comment_receive
from .selectors import delivery_view
from .services import run_deliver


class DeliverInputSerializer(serializers.Serializer):
    """What to deliver: the branch (default ``aiflow/run-<id>``) and whether to open (or
    update) a pull request from it."""

    branch = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="The branch to push to (default: REPOSITORY_DELIVERY_BRANCH_PREFIX + run id). "
        "A run keeps the branch of its first delivery.",
    )
    pull_request = serializers.BooleanField(
        required=False, default=True, help_text="Open a pull request (or update the open one)."
    )


class RunDeliveryOutputSerializer(serializers.Serializer):
    """A run's delivery: its branch, the branch's commit, the pull request, and where it is."""

    branch = serializers.CharField()
    commit = serializers.CharField(allow_null=True, help_text="The branch's head once pushed.")
    pull_request = serializers.BooleanField(help_text="Whether a pull request was asked for.")
    pull_request_url = serializers.CharField(allow_null=True)
    pull_request_number = serializers.IntegerField(allow_null=True)
    pull_request_state = serializers.CharField(
        allow_null=True, help_text="As the forge says it: open, closed, merged (GitLab: opened)."
    )
    state = serializers.ChoiceField(
        choices=["waiting", "queued", "pushing", "delivered", "failed"],
        help_text="waiting: for the run to complete; queued, pushing: under way; delivered; "
        "failed (error and error_code say why).",
    )
    trigger = serializers.ChoiceField(choices=["request", "generate", "review"])
    error = serializers.CharField()
    error_code = serializers.CharField()
    requested_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class RunDeliverApi(APIView):
    """Deliver a completed run to the project's forge: a branch with one commit, and a pull
    request. Asking again updates the same branch and the same pull request."""

    @extend_schema(request=DeliverInputSerializer, responses={202: RunDeliveryOutputSerializer})
    def post(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=request.user, run_id=run_id)
        data = DeliverInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        delivery = run_deliver(
            run=run,
            user=request.user,
            branch=data.validated_data.get("branch") or None,
            pull_request=data.validated_data["pull_request"],
        )
        body = RunDeliveryOutputSerializer(delivery_view(delivery)).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class HookOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["started", "duplicate", "ignored"])
    reason = serializers.CharField(required=False)
    run_id = serializers.IntegerField(required=False, allow_null=True)
    events_url = serializers.CharField(required=False)


class ForgeHookApi(APIView):
    """A forge's webhook (GitHub, Gitea/Forgejo, GitLab), signed with the project's webhook
    secret. The signature is checked over the raw body before anything in it is read."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []  # the body is read raw, and only after the signature

    @extend_schema(
        request=None,
        responses={
            202: HookOutputSerializer,
            200: HookOutputSerializer,
            401: OpenApiResponse(description="The signature does not verify."),
        },
    )
    def post(self, request: Request, kind: str, project_id: int) -> Response:
        outcome = review_comment_receive(
            kind=kind, project_id=project_id, headers=dict(request.headers), body=request.body
        )
        if outcome.status == "started" and outcome.run is not None:
            body = {
                "status": "started",
                "run_id": outcome.run.pk,
                "events_url": f"/runs/{outcome.run.pk}/events",
            }
            return Response(body, status=status.HTTP_202_ACCEPTED)
        body = {"status": outcome.status, "reason": outcome.reason}
        if outcome.run is not None:
            body["run_id"] = outcome.run.pk
        return Response(body, status=status.HTTP_200_OK)
