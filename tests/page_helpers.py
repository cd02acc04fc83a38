"""Helpers of the dashboard page tests: a browser-like client that signs in through the form."""

import re
from typing import Any

from django.test import Client

from tests.factories import DEFAULT_PASSWORD


def csrf_token_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match is not None, "the page has no CSRF-protected form"
    return match.group(1)


def page_post(client: Client, url: str, data: dict[str, Any], *, form_page: str = "/") -> Any:
    """POST ``data`` to ``url`` with the CSRF token of ``form_page``, like a browser does."""
    token = csrf_token_of(client.get(form_page).content.decode())
    return client.post(url, {"csrfmiddlewaretoken": token, **data})


def signed_in_client(user: Any, password: str = DEFAULT_PASSWORD) -> Client:
    """A client with CSRF checks on, signed in through the sign-in form at ``/``."""
    client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux) Chrome/130")
    response = page_post(client, "/", {"email": user.email, "password": password})
    assert response.status_code == 302, response.content.decode()[:500]
    return client
