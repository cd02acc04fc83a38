"""Routes of delivery (the API has no prefix)."""

from django.urls import path

from .api import ForgeHookApi, RunDeliverApi

urlpatterns = [
    path("runs/<int:run_id>/deliver", RunDeliverApi.as_view(), name="run-deliver"),
    path("hooks/<str:kind>/<int:project_id>", ForgeHookApi.as_view(), name="forge-hook"),
]
