"""The CSP middleware with a cached policy: the same headers django-csp would write."""

from csp.constants import NONCE
from csp.middleware import CSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from common.csp import CachedPolicyCSPMiddleware


def _headers(middleware_class, *, nonce=False, update=None):
    middleware = middleware_class(lambda request: HttpResponse())
    request = RequestFactory().get("/projects")
    middleware.process_request(request)
    if nonce:
        str(request.csp_nonce)
    response = HttpResponse()
    if update is not None:
        response._csp_update = update
    return middleware.process_response(request, response).headers


def test_a_plain_response_gets_the_policy_django_csp_builds():
    assert (
        _headers(CachedPolicyCSPMiddleware)["Content-Security-Policy"]
        == (_headers(CSPMiddleware)["Content-Security-Policy"])
    )


def test_a_per_view_update_is_in_the_header():
    header = _headers(CachedPolicyCSPMiddleware, update={"img-src": "https://example.com"})
    assert "https://example.com" in header["Content-Security-Policy"]
    assert (
        "https://example.com" not in _headers(CachedPolicyCSPMiddleware)["Content-Security-Policy"]
    )


def test_a_drawn_nonce_is_in_the_header(settings):
    policy = dict(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"] = {**policy["DIRECTIVES"], "script-src": ["'self'", NONCE]}
    settings.CONTENT_SECURITY_POLICY = policy
    assert "'nonce-" in _headers(CachedPolicyCSPMiddleware, nonce=True)["Content-Security-Policy"]
    assert "'nonce-" not in _headers(CachedPolicyCSPMiddleware)["Content-Security-Policy"]


def test_a_settings_change_changes_the_cached_policy(settings):
    before = _headers(CachedPolicyCSPMiddleware)["Content-Security-Policy"]
    policy = dict(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"] = {**policy["DIRECTIVES"], "img-src": ["'self'", "https://cdn.test"]}
    settings.CONTENT_SECURITY_POLICY = policy
    after = _headers(CachedPolicyCSPMiddleware)["Content-Security-Policy"]
    assert "https://cdn.test" in after
    assert "https://cdn.test" not in before
