"""Structured logs never carry secrets and do carry the request id."""

import logging

from common.logging import bind_request_id, formatter_factory, get_logger


def _render(**fields: object) -> str:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger("tests.redaction").addHandler(handler)
    try:
        get_logger("tests.redaction").warning("auth.checked", **fields)
    finally:
        logging.getLogger("tests.redaction").removeHandler(handler)
    return formatter_factory(json=True).format(records[0])


def test_secret_fields_are_redacted():
    line = _render(password="hunter2", refresh_token="abc.def.ghi", api_key="sk-123", user_id=7)
    assert "hunter2" not in line
    assert "abc.def.ghi" not in line
    assert "sk-123" not in line
    assert '"user_id": 7' in line


def test_the_request_id_is_in_the_line():
    bind_request_id("req-42")
    try:
        line = _render(user_id=1)
    finally:
        bind_request_id(None)
    assert '"request_id": "req-42"' in line


def test_celerys_line_for_a_replaced_task_is_dropped_and_others_kept():
    from common.logging import DropReplacedTasks

    def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
        return logging.LogRecord("celery.app.trace", level, "", 0, message, (), None)

    keep = DropReplacedTasks().filter
    assert not keep(record("Task pipeline.design[abc] ignored"))
    assert keep(record("Task pipeline.design[abc] succeeded in 0.1s: None"))
    assert keep(record("Task pipeline.design[abc] ignored", logging.WARNING))
