"""Input and output serializers of the webhook endpoints."""

from rest_framework import serializers

from ..catalogue import EVENTS
from ..models import Delivery, Endpoint


class EndpointInputSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=2000,
        trim_whitespace=True,
        help_text="Where deliveries are POSTed: https (any scheme the operator allows), a "
        "host whose every address is public unless WEBHOOKS_ALLOW_LOCAL is set.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENTS)),
        allow_empty=False,
        help_text="The events this endpoint hears about.",
    )


class EndpointOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Endpoint
        fields = ["id", "project", "url", "events", "created_at"]


class EndpointCreatedSerializer(EndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (whsec_..., Standard Webhooks): shown this once only."
    )

    class Meta(EndpointOutputSerializer.Meta):
        fields = [*EndpointOutputSerializer.Meta.fields, "secret"]


class WebhookDeliveryOutputSerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="created_at", help_text="When the event happened.")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "status",
            "attempts",
            "response_code",
            "at",
            "message_id",
            "run",
            "error",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
        ]
