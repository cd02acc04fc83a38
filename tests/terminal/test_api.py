"""POST /projects/{id}/terminal/ticket issues a single-use ticket to the project's owner."""

from typing import Any

import redis
from django.conf import settings

from accounts.models import UserSession
from common.websocket import ticket_key
from terminal.tickets import TicketClaim, ticket_consume


def url(project: Any) -> str:
    return f"/projects/{project.pk}/terminal/ticket"


def test_the_owner_gets_a_ticket_and_the_socket_url(api_client: Any, project: Any) -> None:
    response = api_client.post(url(project))

    body = response.json()
    assert response.status_code == 201
    assert body["ws_url"] == f"ws://testserver/ws/terminal/{project.pk}/?ticket={body['ticket']}"


def test_the_ticket_is_bound_to_the_user_the_project_and_the_session(
    api_client: Any, project: Any, user: Any
) -> None:
    ticket = api_client.post(url(project)).json()["ticket"]

    claim = ticket_consume(ticket=ticket, project_id=project.pk)

    sid = str(UserSession.objects.get(user=user).pk)
    assert claim == TicketClaim(user_id=user.pk, project_id=project.pk, sid=sid)


def test_the_ticket_is_stored_only_as_a_hash_that_expires(api_client: Any, project: Any) -> None:
    ticket = api_client.post(url(project)).json()["ticket"]
    client = redis.Redis.from_url(settings.REDIS_URL)

    keys = [k.decode() for k in client.keys("aiflow:ws:ticket:*")]  # type: ignore[union-attr]

    assert keys == [ticket_key(ticket)]
    assert ticket not in keys[0]
    assert 0 < int(client.ttl(keys[0])) <= settings.TERMINAL_TICKET_TTL  # type: ignore[arg-type]


def test_another_users_project_is_not_found(other_client: Any, project: Any) -> None:
    response = other_client.post(url(project))

    assert response.status_code == 404


def test_an_anonymous_request_is_refused(anon_client: Any, project: Any) -> None:
    response = anon_client.post(url(project))

    assert response.status_code == 401


def test_no_ticket_is_issued_when_the_terminal_is_disabled(
    api_client: Any, project: Any, settings: Any
) -> None:
    settings.TERMINAL_ENABLED = False

    response = api_client.post(url(project))

    assert (response.status_code, response.json()["code"]) == (403, "terminal_disabled")


def production_setting(name: str, **env: str) -> str:
    """A setting as production settings compute it from ``env`` alone (a fresh interpreter)."""
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith(("TERMINAL_", "DJANGO_"))}
    result = subprocess.run(  # noqa: S603 - our own interpreter and settings module
        [sys.executable, "-c", f"from config.settings import production; print(production.{name})"],
        env={
            **base,
            "DJANGO_SECRET_KEY": "x" * 50,
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://aiflow.example.com",
            # Production refuses to start without the keys of the secrets at rest.
            "SECRETS_ENCRYPTION_KEYS": "cHJvZHVjdGlvbi10ZXN0LWtleS0zMi1ieXRlcy0hISE=",
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
        cwd=settings.BASE_DIR,
    )
    return result.stdout.strip()


def test_production_has_the_terminal_off_by_default() -> None:
    assert production_setting("TERMINAL_ENABLED") == "False"


def test_production_turns_the_terminal_on_when_told() -> None:
    assert production_setting("TERMINAL_ENABLED", TERMINAL_ENABLED="true") == "True"
