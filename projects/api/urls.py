from django.urls import path

from .views import ProjectDetailApi, ProjectListCreateApi

urlpatterns = [
    path("projects", ProjectListCreateApi.as_view(), name="project-list"),
    path("projects/<int:project_id>", ProjectDetailApi.as_view(), name="project-detail"),
]
