"""The webhook endpoints of the API: create (secret shown once, encrypted at rest), list,
delete, deliveries, redeliver; owner only; local addresses refused unless allowed."""

from typing import Any

import pytest

from common.secrets import decrypt
from pipeline.events import publish
from webhooks.models import Delivery, Endpoint

from .conftest import Receiver, make_run

pytestmark = pytest.mark.django_db


def create(client: Any, project: Any, url: str, events: list[str] | None = None) -> Any:
    return client.post(
        f"/projects/{project.id}/webhooks",
        {"url": url, "events": ["run.completed"] if events is None else events},
        format="json",
    )


def test_creating_an_endpoint_shows_its_secret_once_and_keeps_it_encrypted(
    api_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    response = create(api_client, project, receiver.url, ["run.completed", "run.failed"])

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "project", "url", "events", "created_at", "secret"}
    assert (body["url"], body["events"]) == (receiver.url, ["run.completed", "run.failed"])
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 44
    endpoint = Endpoint.objects.get(id=body["id"])
    assert secret not in endpoint.secret_encrypted
    assert secret[len("whsec_") :] not in endpoint.secret_encrypted
    assert decrypt(endpoint.secret_encrypted).reveal() == secret
    listed = api_client.get(f"/projects/{project.id}/webhooks").json()
    assert listed == [{k: v for k, v in body.items() if k != "secret"}]
    assert secret not in api_client.get(f"/projects/{project.id}/webhooks").content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://10.0.0.5/hooks",
        "https://192.168.1.20/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
    ],
)
def test_a_local_address_is_refused_at_creation(api_client: Any, project: Any, url: str) -> None:
    response = create(api_client, project, url)

    assert response.status_code == 400
    assert response.json()["code"] == "outbound_refused"
    assert Endpoint.objects.count() == 0


def test_plain_http_is_refused_unless_local_addresses_are_allowed(
    api_client: Any, project: Any
) -> None:
    response = create(api_client, project, "http://example.com/hooks")

    assert (response.status_code, response.json()["code"]) == (400, "outbound_refused")
    assert "scheme 'http' is not allowed" in response.json()["detail"]


def test_a_host_that_does_not_resolve_is_a_plain_400(api_client: Any, project: Any) -> None:
    response = create(api_client, project, "https://no-such-host.invalid/hooks")

    assert (response.status_code, response.json()["code"]) == (400, "unresolvable")


def test_unknown_or_missing_events_are_refused(
    api_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    unknown = create(api_client, project, receiver.url, ["run.exploded"])
    empty = create(api_client, project, receiver.url, [])

    assert (unknown.status_code, unknown.json()["code"]) == (400, "invalid")
    assert "run.exploded" in unknown.json()["detail"]
    assert (empty.status_code, empty.json()["code"]) == (400, "invalid")
    assert Endpoint.objects.count() == 0


def test_a_project_has_at_most_the_configured_number_of_endpoints(
    api_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    local_webhooks.WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT = 2
    assert create(api_client, project, receiver.url).status_code == 201
    assert create(api_client, project, receiver.url).status_code == 201

    third = create(api_client, project, receiver.url)

    assert (third.status_code, third.json()["code"]) == (400, "too_many_endpoints")
    assert Endpoint.objects.filter(project=project).count() == 2


def test_deliveries_list_and_delete(
    api_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_id = create(api_client, project, receiver.url).json()["id"]
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()

    listed = api_client.get(f"/webhooks/{endpoint_id}/deliveries").json()

    assert [
        (d["id"], d["event"], d["status"], d["attempts"], d["response_code"], d["run"])
        for d in listed
    ] == [(delivery.id, "run.completed", "pending", 0, None, run.id)]
    assert {"at", "message_id", "next_attempt_at", "delivered_at"} <= set(listed[0])
    assert api_client.delete(f"/webhooks/{endpoint_id}").status_code == 204
    assert (Endpoint.objects.count(), Delivery.objects.count()) == (0, 0)


def test_redeliver_answers_202_with_the_delivery_due_now(
    api_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_id = create(api_client, project, receiver.url).json()["id"]
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    Delivery.objects.filter(id=delivery.id).update(
        status="failed", attempts=7, next_attempt_at=None
    )

    response = api_client.post(f"/webhooks/{endpoint_id}/deliveries/{delivery.id}/redeliver")

    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["attempts"], body["message_id"]) == (
        "pending",
        0,
        delivery.message_id,
    )


def test_redeliver_of_an_attempt_in_flight_is_409(
    api_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_id = create(api_client, project, receiver.url).json()["id"]
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()
    Delivery.objects.filter(id=delivery.id).update(status="sending")

    response = api_client.post(f"/webhooks/{endpoint_id}/deliveries/{delivery.id}/redeliver")

    assert (response.status_code, response.json()["code"]) == (409, "delivery_in_flight")


def test_another_users_webhooks_are_404_everywhere(
    api_client: Any, other_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    endpoint_id = create(api_client, project, receiver.url).json()["id"]
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get()

    answers = [
        other_client.get(f"/projects/{project.id}/webhooks"),
        create(other_client, project, receiver.url),
        other_client.get(f"/webhooks/{endpoint_id}/deliveries"),
        other_client.post(f"/webhooks/{endpoint_id}/deliveries/{delivery.id}/redeliver"),
        other_client.delete(f"/webhooks/{endpoint_id}"),
    ]

    assert [answer.status_code for answer in answers] == [404] * 5
    assert (Endpoint.objects.count(), Delivery.objects.get().status) == (1, "pending")


def test_a_delivery_of_another_endpoint_is_404(
    api_client: Any, project: Any, receiver: Receiver, local_webhooks: Any
) -> None:
    first = create(api_client, project, receiver.url).json()["id"]
    second = create(api_client, project, receiver.url, ["run.failed"]).json()["id"]
    run = make_run(project, status="completed")
    publish(run_id=run.id, type="run.completed", payload={})
    delivery = Delivery.objects.get(endpoint_id=first)

    response = api_client.post(f"/webhooks/{second}/deliveries/{delivery.id}/redeliver")

    assert response.status_code == 404
