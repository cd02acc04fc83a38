"""Reading Retry-After the way HTTP allows it: seconds or a date."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from providers.errors import parse_retry_after


def test_retry_after_in_seconds_is_read_as_seconds():
    assert parse_retry_after("7") == 7.0


def test_retry_after_as_an_http_date_is_read_as_the_seconds_until_then():
    when = datetime.now(UTC) + timedelta(seconds=120)

    seconds = parse_retry_after(format_datetime(when, usegmt=True))

    assert seconds is not None
    assert 100 < seconds <= 120


def test_an_unreadable_retry_after_is_ignored():
    assert parse_retry_after("soon") is None
