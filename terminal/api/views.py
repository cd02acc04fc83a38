"""``POST /projects/{id}/terminal/ticket``: a single-use ticket for the terminal socket."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.revocation import request_sid

from ..services import terminal_ticket_create


class TerminalTicketOutput(serializers.Serializer):
    ticket = serializers.CharField()
    ws_url = serializers.CharField()


class TerminalTicketView(APIView):
    """Issue a ticket (single use, ``TERMINAL_TICKET_TTL`` seconds) for the owner's project."""

    @extend_schema(request=inline_serializer("Empty", {}), responses={201: TerminalTicketOutput})
    def post(self, request: Request, project_id: int) -> Response:
        ticket = terminal_ticket_create(
            user=request.user, project_id=project_id, sid=request_sid(request)
        )
        scheme = "wss" if request.is_secure() else "ws"
        ws_url = f"{scheme}://{request.get_host()}/ws/terminal/{project_id}/?ticket={ticket}"
        body = TerminalTicketOutput({"ticket": ticket, "ws_url": ws_url}).data
        return Response(body, status=status.HTTP_201_CREATED)
