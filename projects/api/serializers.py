from rest_framework import serializers

from common.serializers import FastOutputMixin

from ..models import Project


class ProjectInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=False, trim_whitespace=True)
    description = serializers.CharField(allow_blank=True, required=False, default="")


class ProjectPatchSerializer(ProjectInputSerializer):
    name = serializers.CharField(max_length=200, required=False, trim_whitespace=True)
    description = serializers.CharField(allow_blank=True, required=False)


class ProjectOutputSerializer(FastOutputMixin, serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "created_at", "updated_at"]
