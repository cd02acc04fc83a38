"""Routes of the progress stream (SSE)."""

from django.urls import path

from .stream_views import RunEventsApi

urlpatterns = [
    path("runs/<int:run_id>/events", RunEventsApi.as_view(), name="run-events"),
]
