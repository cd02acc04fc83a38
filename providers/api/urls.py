"""Routes of the providers app (included before Django's admin in ``config/urls.py``)."""

from django.urls import path

from .views import ProvidersStatusView

urlpatterns = [
    path("admin/providers", ProvidersStatusView.as_view(), name="providers-status"),
]
