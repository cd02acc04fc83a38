"""Browser routes of the accounts part: the dashboard at ``/`` and its sign-out."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("signout", views.dashboard_logout, name="dashboard-logout"),
]
