from django.urls import path

from .views import ForgeApi

urlpatterns = [
    path("projects/<int:project_id>/forge", ForgeApi.as_view(), name="project-forge"),
]
