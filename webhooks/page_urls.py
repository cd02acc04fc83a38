"""Dashboard routes of webhooks: the project page's Webhooks section and its actions."""

from django.urls import path

from . import pages

urlpatterns = [
    path(
        "app/projects/<int:project_id>/webhooks",
        pages.project_webhooks_section,
        name="page-project-webhooks",
    ),
    path(
        "app/projects/<int:project_id>/webhooks/list",
        pages.project_webhooks_list,
        name="page-project-webhooks-list",
    ),
    path(
        "app/webhooks/<int:webhook_id>/delete",
        pages.webhook_delete_page,
        name="page-webhook-delete",
    ),
    path(
        "app/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver",
        pages.webhook_redeliver_page,
        name="page-webhook-redeliver",
    ),
]
