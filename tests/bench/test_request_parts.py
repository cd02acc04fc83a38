"""bench/request_parts.py: the stand-ins go back, and each part is the whole less the rest."""

import pytest

from accounts.authentication import SessionJWTAuthentication
from accounts.throttling import SlidingWindowThrottle
from bench.request_parts import PARTS, _table, _without
from pipeline.api.views import RunDetailApi
from projects.api.views import ProjectListCreateApi

REPLACED = (
    (SlidingWindowThrottle, "allow_request"),
    (SessionJWTAuthentication, "authenticate"),
    (ProjectListCreateApi, "get"),
    (RunDetailApi, "get"),
)


def test_every_part_is_put_back_when_its_block_ends_even_by_an_error():
    before = [owner.__dict__[name] for owner, name in REPLACED]

    with pytest.raises(RuntimeError), _without(PARTS):
        assert [owner.__dict__[name] for owner, name in REPLACED] != before
        raise RuntimeError("the measurement failed")

    assert [owner.__dict__[name] for owner, name in REPLACED] == before


def test_a_part_is_the_whole_request_less_the_request_without_it():
    median = {
        "/projects: whole": 2.0,
        "/projects: without rate limit": 1.75,
        "/projects: without authentication": 1.5,
        "/projects: without data": 1.6,
        "/projects: without all three": 0.9,
    }

    table = _table(median, ["projects"], {"projects": "/projects"})

    assert table.splitlines()[-1] == "GET /projects | 2.000 | 0.250 | 0.500 | 0.400 | 0.900"
