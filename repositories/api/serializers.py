from rest_framework import serializers

from ..models import ForgeConnection


class ForgeInputSerializer(serializers.Serializer):
    """``PUT /projects/{id}/forge``: secrets are write-only; left out, a stored one is kept."""

    kind = serializers.ChoiceField(choices=ForgeConnection.Kind.choices)
    api_url = serializers.CharField(required=False, allow_blank=True, max_length=500)
    repository = serializers.CharField(max_length=300)
    remote_url = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    token = serializers.CharField(
        required=False, allow_blank=True, write_only=True, trim_whitespace=False
    )
    ssh_key = serializers.CharField(
        required=False, allow_blank=True, write_only=True, trim_whitespace=False
    )
    webhook_secret = serializers.CharField(
        required=False, allow_blank=True, write_only=True, trim_whitespace=False
    )


class ForgeOutputSerializer(serializers.ModelSerializer):
    """A forge connection without its secrets: only whether each is set."""

    project = serializers.IntegerField(source="project_id")
    clone_url = serializers.CharField()
    has_token = serializers.SerializerMethodField()
    has_ssh_key = serializers.SerializerMethodField()
    has_webhook_secret = serializers.SerializerMethodField()

    class Meta:
        model = ForgeConnection
        fields = [
            "project",
            "kind",
            "api_url",
            "repository",
            "remote_url",
            "clone_url",
            "has_token",
            "has_ssh_key",
            "has_webhook_secret",
            "created_at",
            "updated_at",
        ]

    def get_has_token(self, connection: ForgeConnection) -> bool:
        return connection.has_secret("token")

    def get_has_ssh_key(self, connection: ForgeConnection) -> bool:
        return connection.has_secret("ssh_key")

    def get_has_webhook_secret(self, connection: ForgeConnection) -> bool:
        return connection.has_secret("webhook_secret")
