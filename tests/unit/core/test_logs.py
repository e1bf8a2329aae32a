"""The log lines' fields: bound once, on every line logged under them, in JSON and text."""

from __future__ import annotations

import json
import logging

from core.logs import ContextFilter, JsonFormatter, TextFormatter, bind, log_context, unbind


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("conveyor.worker", logging.INFO, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(made, name, value)
    ContextFilter().filter(made)
    return made


def test_bound_fields_are_on_every_line_until_unbound() -> None:
    json_format = JsonFormatter("worker")
    token = bind(job_id="j-1", kind="diagnostics.echo", request_id="r-1", tenant_id=None)
    try:
        with log_context(tenant_id="t-1", attempt=2):
            line = json.loads(json_format.format(record("job %s started", "j-1")))
        after = json.loads(json_format.format(record("done")))
    finally:
        unbind(token)
    outside = json.loads(json_format.format(record("idle")))

    assert line == {
        "time": line["time"],
        "level": "INFO",
        "process": "worker",
        "logger": "conveyor.worker",
        "message": "job j-1 started",
        "job_id": "j-1",
        "kind": "diagnostics.echo",
        "tenant_id": "t-1",
        "attempt": 2,
        "request_id": "r-1",
    }
    assert "tenant_id" not in after  # None is left out; the inner context has ended
    assert after["request_id"] == "r-1"
    assert not {"job_id", "kind", "request_id"} & set(outside)


def test_celerys_lines_about_a_task_name_the_job() -> None:
    data = {"id": "j-2", "name": "uploads.process.run"}
    received = record("Task %(name)s[%(id)s] received", data=data)

    line = json.loads(JsonFormatter("worker").format(received))

    assert (line["job_id"], line["kind"]) == ("j-2", "uploads.process")


def test_text_lines_end_with_their_fields() -> None:
    with log_context(request_id="r-3"):
        text = TextFormatter("%(message)s").format(record("hello"))

    assert text == "hello [request_id=r-3]"
