"""Routes of the progress stream (SSE)."""

from django.urls import path

from .stream_views import RunEventsApi, RunSocketTicketApi

urlpatterns = [
    path("runs/<int:run_id>/events", RunEventsApi.as_view(), name="run-events"),
    path("runs/<int:run_id>/ws-ticket", RunSocketTicketApi.as_view(), name="run-ws-ticket"),
]
