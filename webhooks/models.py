"""Webhook endpoints of a project and the deliveries made to them.

A delivery is a row written in the same transaction as the run event that causes it, so an
event that happened is never without its deliveries, and a crash or an outage loses nothing:
the row says what is still to be sent and when. Its ``message_id`` (the ``webhook-id`` header)
and its ``body`` are fixed at creation, so every attempt and every Redeliver sends the same
message, and a receiver drops duplicates by id.
"""

from django.db import models


class Endpoint(models.Model):
    """A URL that hears about some events of a project's runs, with its signing secret."""

    # The ciphertext columns ``manage.py rotate_secrets`` re-encrypts (``common.secrets``).
    ENCRYPTED_FIELDS = ("secret_encrypted",)

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)
    # Event names (``webhooks.catalogue.EVENTS``) this endpoint hears about.
    events = models.JSONField(default=list)
    # The ``whsec_...`` secret as a Fernet token (``common.secrets``); never shown again.
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["project", "created_at"])]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"


class Delivery(models.Model):
    """One message to one endpoint: what is sent, how often it was tried, how it went."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt (``next_attempt_at``)
        SENDING = "sending"  # an attempt is in flight (held until ``lease_until``)
        DELIVERED = "delivered"  # the endpoint answered 2xx
        FAILED = "failed"  # given up: refused address, or the retry window ran out

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    # The ``webhook-id``: the same on every attempt and every Redeliver of this message.
    message_id = models.CharField(max_length=64)
    run = models.ForeignKey(
        "pipeline.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The exact JSON text that is signed and sent (built once, from an allow-list of fields).
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # Retries go on until ``window_started_at`` + WEBHOOKS_RETRY_WINDOW_SECONDS (a Redeliver
    # starts a new window).
    window_started_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # When a task message was last sent for it (null: none is on its way); the sweeper sends
    # another only for a due delivery whose message is missing or long overdue.
    queued_at = models.DateTimeField(null=True, blank=True)
    # An attempt in flight past this moment lost its worker: the sweeper sends it again.
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "message_id"], name="delivery_endpoint_message_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"]),
            # The sweeper's look for deliveries that are due or held too long.
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=models.Q(status__in=["pending", "sending"]),
                name="delivery_open_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.message_id} -> {self.endpoint_id} ({self.status})"
