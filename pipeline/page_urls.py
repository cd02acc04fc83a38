"""Dashboard routes of runs: a project's runs and generate form, the live run page."""

from django.urls import path

from . import pages

urlpatterns = [
    path("app/providers", pages.providers_page, name="page-providers"),
    path("app/projects/<int:project_id>", pages.project_page, name="page-project"),
    path(
        "app/projects/<int:project_id>/generate",
        pages.project_generate_page,
        name="page-project-generate",
    ),
    path("app/runs/<int:run_id>", pages.run_page, name="page-run"),
    path("app/runs/<int:run_id>/state", pages.run_state_json, name="page-run-state"),
    path("app/runs/<int:run_id>/summary", pages.run_summary_fragment, name="page-run-summary"),
    path("app/runs/<int:run_id>/steps", pages.run_steps_fragment, name="page-run-steps"),
    path("app/runs/<int:run_id>/rounds", pages.run_rounds_fragment, name="page-run-rounds"),
    path("app/runs/<int:run_id>/steps/<int:step_id>", pages.step_panel, name="page-step"),
    *[
        path(
            f"app/runs/<int:run_id>/{action}",
            pages.run_action,
            {"action": action},
            name=f"page-run-{action}",
        )
        for action in ("approve", "cancel", "resume")
    ],
]
