"""Dashboard routes of runs: a project's runs and generate form, the live run page, Follow
up, Fork from here and Compare."""

from django.urls import path

from . import import_pages, iteration_pages, pages, run_pages, steering_pages
from .delivery import pages as delivery_pages

urlpatterns = [
    path("app/providers", pages.providers_page, name="page-providers"),
    path("app/projects/<int:project_id>", pages.project_page, name="page-project"),
    path(
        "app/projects/<int:project_id>/generate",
        pages.project_generate_page,
        name="page-project-generate",
    ),
    path(
        "app/projects/<int:project_id>/import",
        import_pages.project_import_page,
        name="page-project-import",
    ),
    path(
        "app/projects/<int:project_id>/compare",
        iteration_pages.project_compare_page,
        name="page-project-compare",
    ),
    path("app/runs/<int:run_id>", run_pages.run_page, name="page-run"),
    path(
        "app/runs/<int:run_id>/follow-up",
        iteration_pages.run_follow_up_page,
        name="page-run-follow-up",
    ),
    path("app/runs/<int:run_id>/fork", iteration_pages.run_fork_page, name="page-run-fork"),
    path("app/runs/<int:run_id>/state", run_pages.run_state_json, name="page-run-state"),
    path("app/runs/<int:run_id>/summary", run_pages.run_summary_fragment, name="page-run-summary"),
    path("app/runs/<int:run_id>/steps", run_pages.run_steps_fragment, name="page-run-steps"),
    path("app/runs/<int:run_id>/iterate", run_pages.run_iterate_fragment, name="page-run-iterate"),
    path("app/runs/<int:run_id>/changes", run_pages.run_changes_fragment, name="page-run-changes"),
    path("app/runs/<int:run_id>/rounds", run_pages.run_rounds_fragment, name="page-run-rounds"),
    path(
        "app/runs/<int:run_id>/delivery",
        delivery_pages.run_delivery_fragment,
        name="page-run-delivery",
    ),
    path("app/runs/<int:run_id>/deliver", delivery_pages.run_deliver_page, name="page-run-deliver"),
    path("app/runs/<int:run_id>/steps/<int:step_id>", run_pages.step_panel, name="page-step"),
    path(
        "app/projects/<int:project_id>/estimate",
        steering_pages.project_estimate_fragment,
        name="page-project-estimate",
    ),
    path("app/runs/<int:run_id>/plan", steering_pages.run_plan_fragment, name="page-run-plan"),
    path(
        "app/runs/<int:run_id>/plan/tasks",
        steering_pages.run_plan_task_add,
        name="page-run-plan-add",
    ),
    path(
        "app/runs/<int:run_id>/plan/tasks/<str:key>",
        steering_pages.run_plan_task_save,
        name="page-run-plan-task",
    ),
    path(
        "app/runs/<int:run_id>/plan/tasks/<str:key>/remove",
        steering_pages.run_plan_task_remove,
        name="page-run-plan-remove",
    ),
    path(
        "app/runs/<int:run_id>/tasks/<str:key>/messages",
        steering_pages.run_task_message,
        name="page-run-task-message",
    ),
    *[
        path(
            f"app/runs/<int:run_id>/{action}",
            run_pages.run_action,
            {"action": action},
            name=f"page-run-{action}",
        )
        for action in ("approve", "cancel", "resume", "pause")
    ],
]
