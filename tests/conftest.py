"""Fixtures shared by the whole suite: users, authenticated clients, a real Celery worker."""

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import ProjectFactory, UserFactory


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    """Each test starts with the test Redis db empty (the development db is never touched)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.close()


@pytest.fixture
def user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def other_user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def project(user: Any) -> Any:
    return ProjectFactory(owner=user)


def access_token_for(user: Any) -> str:
    """Mint an access token for ``user`` the way login does (a real UserSession, its ``sid``)."""
    from accounts.services import session_start

    _, pair = session_start(user=user, ip="127.0.0.1", user_agent="pytest")
    return pair.access


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def api_client(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    return client


@pytest.fixture
def other_client(other_user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(other_user)}")
    return client


@pytest.fixture
def celery_worker(transactional_db: Any) -> Iterator[Any]:
    """A real Celery worker (threads) consuming every queue of the test Redis.

    Tests using it see committed data only, hence ``transactional_db``.
    """
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(
        app,
        pool="threads",
        concurrency=8,
        queues=["llm", "sandbox", "default"],
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker
