"""Following an event stream across reconnects: each event once, in order; retry what a
restart causes, raise what retrying cannot fix."""

from __future__ import annotations

import json
import time

import pytest
from httpx_sse import ServerSentEvent

from core.client.errors import APIError
from core.client.following import Following


def _message(seq: int, status: str | None = None) -> ServerSentEvent:
    kind, data = ("status", {"status": status}) if status else ("progress", {"progress": 0.5})
    body = {"seq": seq, "type": kind, "data": data, "at": "2026-12-07T10:00:00Z"}
    return ServerSentEvent(event=kind, data=json.dumps(body), id=str(seq))


def test_each_event_is_yielded_once_in_order_and_the_terminal_one_ends_it() -> None:
    following = Following(after=0, reconnect_for=60, deadline=None)
    seen = [following.accept(_message(seq)) for seq in (1, 2, 2, 1, 3)]
    assert [event.seq if event else None for event in seen] == [1, 2, None, None, 3]
    assert following.request_headers()["Last-Event-ID"] == "3"
    assert not following.done
    assert following.accept(_message(4, "succeeded")) is not None
    assert following.done


def test_the_servers_retry_is_the_pause_and_comments_are_not_events() -> None:
    following = Following(after=5, reconnect_for=60, deadline=None)
    assert following.accept(ServerSentEvent(retry=2000)) is None
    assert following.pause(APIError(0, "unreachable", "reset")) == 2.0
    assert following.pause(APIError(503, "service_unavailable", "db")) == 2.0
    assert following.pause(APIError(429, "too_many_streams", "cap", retry_after=5)) == 5


@pytest.mark.parametrize("status", [401, 403, 404, 422])
def test_a_refusal_is_raised_at_once(status: int) -> None:
    refusal = APIError(status, "job_not_found", "no")
    with pytest.raises(APIError) as raised:
        Following(after=0, reconnect_for=60, deadline=None).pause(refusal)
    assert raised.value is refusal


def test_it_gives_up_after_reconnect_for_without_progress_and_at_the_deadline() -> None:
    outage = APIError(0, "unreachable", "refused")
    with pytest.raises(APIError):
        Following(after=0, reconnect_for=0, deadline=None).pause(outage)
    with pytest.raises(TimeoutError):
        Following(after=0, reconnect_for=60, deadline=time.monotonic()).pause(outage)
