"""Routes of runs (the API has no prefix)."""

from django.urls import path

from .import_views import ProjectBaselineApi, ProjectImportApi
from .steering_views import EstimateApi, RunPauseApi, RunPlanApi, TaskMessageApi
from .views import (
    GenerateApi,
    ProjectCompareApi,
    ProjectRunListApi,
    RunApproveApi,
    RunCancelApi,
    RunDetailApi,
    RunForkApi,
    RunResumeApi,
    RunStepDetailApi,
    RunStepListApi,
)

urlpatterns = [
    path("projects/<int:project_id>/generate", GenerateApi.as_view(), name="project-generate"),
    path("projects/<int:project_id>/import", ProjectImportApi.as_view(), name="project-import"),
    path(
        "projects/<int:project_id>/baseline", ProjectBaselineApi.as_view(), name="project-baseline"
    ),
    path("projects/<int:project_id>/runs", ProjectRunListApi.as_view(), name="project-runs"),
    path("projects/<int:project_id>/compare", ProjectCompareApi.as_view(), name="project-compare"),
    path("runs/<int:run_id>", RunDetailApi.as_view(), name="run-detail"),
    path("runs/<int:run_id>/steps", RunStepListApi.as_view(), name="run-steps"),
    path(
        "runs/<int:run_id>/steps/<int:step_id>", RunStepDetailApi.as_view(), name="run-step-detail"
    ),
    path("runs/<int:run_id>/cancel", RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<int:run_id>/resume", RunResumeApi.as_view(), name="run-resume"),
    path("runs/<int:run_id>/approve", RunApproveApi.as_view(), name="run-approve"),
    path("runs/<int:run_id>/fork", RunForkApi.as_view(), name="run-fork"),
    path("projects/<int:project_id>/estimate", EstimateApi.as_view(), name="project-estimate"),
    path("runs/<int:run_id>/plan", RunPlanApi.as_view(), name="run-plan"),
    path("runs/<int:run_id>/pause", RunPauseApi.as_view(), name="run-pause"),
    path(
        "runs/<int:run_id>/tasks/<str:key>/messages",
        TaskMessageApi.as_view(),
        name="run-task-messages",
    ),
]
