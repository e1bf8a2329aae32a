"""The Python client against a running API (uvicorn on a port) and real workers: what a
program using `core.client` sees."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.client import APIError, AsyncClient, Client, JobEvent
from tests.support import samples
from tests.support.api_server import ApiServer
from tests.support.factories import User
from tests.support.openai_server import OpenAIServer, text, tool_call
from tests.support.servers import free_port
from tests.support.worker import WorkerProcess


@pytest.fixture
def conveyor(api: ApiServer, user: User) -> Iterator[Client]:
    with Client(api.url, token=user.token) as client:
        yield client


def test_a_job_is_submitted_followed_to_its_end_and_read(
    conveyor: Client, worker: WorkerProcess
) -> None:
    job = conveyor.jobs.submit("diagnostics.sleep", {"seconds": 1.5}, idempotency_key="nap")
    assert job.status == "queued"
    assert (
        conveyor.jobs.submit("diagnostics.sleep", {"seconds": 1.5}, idempotency_key="nap").id
        == job.id
    )

    events = list(conveyor.jobs.stream(job.id))

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    statuses = [e.data["status"] for e in events if e.type == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert any(e.type == "progress" for e in events)
    assert events[-1].ends_job
    done = conveyor.jobs.wait(job.id)
    assert done.status == "succeeded"
    assert done.result is not None
    assert done.result["slept_seconds"] >= 1.5
    assert conveyor.jobs.get(job.id) == done
    assert conveyor.jobs.events(job.id, after=1).items == events[1:]


def test_a_wait_ends_at_its_timeout_and_a_stream_of_an_ended_job_ends_at_once(
    conveyor: Client, worker: WorkerProcess
) -> None:
    sleeping = conveyor.jobs.submit("diagnostics.sleep", {"seconds": 60})
    with pytest.raises(TimeoutError):
        conveyor.jobs.wait(sleeping.id, timeout=2)
    conveyor.jobs.cancel(sleeping.id)
    ended = conveyor.jobs.wait(sleeping.id, timeout=60)
    assert ended.status == "cancelled"

    last = conveyor.jobs.events(sleeping.id).items[-1].seq
    assert list(conveyor.jobs.stream(sleeping.id, after=last)) == []
    assert [e.seq for e in conveyor.jobs.stream(sleeping.id, after=last - 1)] == [last]


def test_lists_filter_and_page_and_a_batch_answers_each_job(
    conveyor: Client, worker: WorkerProcess
) -> None:
    items = conveyor.jobs.submit_batch(
        [
            {"kind": "diagnostics.echo", "input": {"n": 1}},
            {"kind": "no.such.kind", "input": {}},
            {"kind": "diagnostics.echo", "input": {"n": 2}, "idempotency_key": "two"},
        ]
    )
    assert [item.job is not None for item in items] == [True, False, True]
    assert items[1].error is not None
    assert items[1].error["code"] == "unknown_job_kind"
    third = conveyor.jobs.submit("diagnostics.echo", {"n": 3})
    conveyor.jobs.submit("diagnostics.sleep", {"seconds": 0})

    first_page = conveyor.jobs.list(kind="diagnostics.echo", limit=2)
    assert [j.id for j in first_page.items][0] == third.id
    assert first_page.next_cursor is not None
    echoes = list(conveyor.jobs.iterate(kind="diagnostics.echo", page_size=2))
    assert len(echoes) == 3
    assert {j.kind for j in echoes} == {"diagnostics.echo"}
    for job in echoes:
        assert conveyor.jobs.wait(job.id, timeout=60).status == "succeeded"
    assert len(conveyor.jobs.list(status="succeeded", kind="diagnostics.echo").items) == 3
    assert "diagnostics.echo" in {k.name for k in conveyor.jobs.kinds()}


def test_a_refusal_is_an_api_error_with_the_problem_code(
    api: ApiServer, conveyor: Client, other_user: User
) -> None:
    with pytest.raises(APIError) as missing:
        conveyor.jobs.get(uuid.uuid4())
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")
    assert missing.value.request_id

    theirs = Client(api.url, token=other_user.token).jobs.submit("diagnostics.echo", {})
    with pytest.raises(APIError) as hidden:
        conveyor.jobs.get(theirs.id)
    assert hidden.value.code == "job_not_found"

    with pytest.raises(APIError) as invalid:
        conveyor.jobs.submit("diagnostics.sleep", {"seconds": -1})
    assert (invalid.value.status, invalid.value.code) == (422, "validation_failed")

    with pytest.raises(APIError) as unauthenticated:
        Client(api.url, token="not-a-token").jobs.list()
    assert unauthenticated.value.status == 401

    with pytest.raises(APIError) as nobody:
        Client(f"http://127.0.0.1:{free_port()}").jobs.kinds()
    assert (nobody.value.status, nobody.value.code) == (0, "unreachable")


def test_a_running_job_is_cancelled(conveyor: Client, worker: WorkerProcess) -> None:
    job = conveyor.jobs.submit("diagnostics.sleep", {"seconds": 60})
    for event in conveyor.jobs.stream(job.id):
        if event.type == "status" and event.data["status"] == "running":
            break
    assert conveyor.jobs.cancel(job.id).cancel_requested_at is not None
    assert conveyor.jobs.wait(job.id, timeout=30).status == "cancelled"


def test_a_file_is_uploaded_with_progress_processed_read_and_deleted(
    conveyor: Client, worker: WorkerProcess
) -> None:
    body = b"name,born\n" + b"".join(b"person %d,%d\n" % (i, 1800 + i % 200) for i in range(20_000))
    sent: list[tuple[int, int]] = []

    created = conveyor.uploads.create(
        body, filename="people.csv", on_progress=lambda done, total: sent.append((done, total))
    )

    assert len(sent) > 2, sent  # counted as it went, not once at the end
    assert sent[-1] == (len(body), len(body))
    assert created.upload.size == len(body)
    assert conveyor.jobs.wait(created.job.id, timeout=60).status == "succeeded"
    detail = conveyor.uploads.get(created.upload.id)
    assert detail.job is not None
    assert detail.job.result is not None
    assert detail.job.result["summary"]["rows"] == 20_000
    assert conveyor.uploads.content(created.upload.id) == body
    assert [u.id for u in conveyor.uploads.list().items] == [created.upload.id]
    conveyor.uploads.delete(created.upload.id)
    with pytest.raises(APIError) as gone:
        conveyor.uploads.get(created.upload.id)
    assert gone.value.code == "upload_not_found"


def test_a_direct_upload_goes_to_storage_and_is_processed(
    conveyor: Client, worker: WorkerProcess, tmp_path: Path
) -> None:
    image = samples.png(320, 200)
    path = tmp_path / "photo.png"
    path.write_bytes(image)
    sent: list[int] = []

    created = conveyor.uploads.create(
        path, on_progress=lambda done, _: sent.append(done), direct=True
    )

    assert sent[-1] == len(image)
    assert created.upload.filename == "photo.png"
    assert created.upload.content_type == "image/png"
    done = conveyor.jobs.wait(created.job.id, timeout=60)
    assert done.status == "succeeded", done
    detail = conveyor.uploads.get(created.upload.id)
    assert detail.derived
    assert conveyor.uploads.derived(created.upload.id, detail.derived[0].name)
    assert conveyor.uploads.content(created.upload.id) == image


def test_an_agent_run_shows_its_steps_as_they_happen(
    conveyor: Client, openai_server: OpenAIServer, agents_worker: WorkerProcess
) -> None:
    answer = {"category": "billing", "answer": "Refunded.", "confidence": 0.9}
    openai_server.script(tool_call("transfer_to_billing", {}), text(json.dumps(answer)))
    assert "triage" in {w.name for w in conveyor.agents.list()}

    job = conveyor.agents.run("triage", {"message": "I was charged twice."})
    seen: list[JobEvent] = []
    done = conveyor.jobs.wait(job.id, timeout=60, on_event=seen.append)

    assert done.status == "succeeded", done
    assert done.result is not None
    assert done.result["output"] == answer
    steps = [(e.type, e.data.get("agent")) for e in seen if e.type in {"agent", "handoff"}]
    assert steps == [("agent", "triage"), ("handoff", None), ("agent", "billing")]


def test_keys_and_webhooks_are_managed_through_the_client(
    api: ApiServer, conveyor: Client, worker: WorkerProcess
) -> None:
    key = conveyor.api_keys.create("ci", ["jobs:read", "jobs:write"])
    with Client(api.url, api_key=key.secret) as machine:
        job = machine.jobs.submit("diagnostics.echo", {"from": "a key"})
        assert machine.jobs.wait(job.id, timeout=60).result == {"from": "a key"}
        with pytest.raises(APIError) as scoped:
            machine.uploads.list()
        assert scoped.value.status == 403
    assert [k.id for k in conveyor.api_keys.list()] == [key.id]
    conveyor.api_keys.revoke(key.id)
    with pytest.raises(APIError) as revoked:
        Client(api.url, api_key=key.secret).jobs.list()
    assert revoked.value.status == 401

    hook = conveyor.webhooks.create(
        f"http://127.0.0.1:{free_port()}/hook", ["job.failed"], description="alerts"
    )
    assert hook.secret.startswith("whsec_")
    assert conveyor.webhooks.update(hook.id, enabled=False).enabled is False
    assert conveyor.webhooks.rotate_secret(hook.id).secret != hook.secret
    assert [w.id for w in conveyor.webhooks.list()] == [hook.id]
    assert conveyor.webhooks.deliveries(hook.id).items == []
    conveyor.webhooks.delete(hook.id)
    with pytest.raises(APIError) as deleted:
        conveyor.webhooks.get(hook.id)
    assert deleted.value.code == "webhook_not_found"


def test_the_async_client_does_the_same(api: ApiServer, user: User, worker: WorkerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(api.url, token=user.token) as conveyor:
            jobs = await asyncio.gather(
                *(conveyor.jobs.submit("diagnostics.echo", {"n": n}) for n in range(3))
            )
            events = [event async for event in conveyor.jobs.stream(jobs[0].id)]
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert events[-1].ends_job
            done = await asyncio.gather(*(conveyor.jobs.wait(j.id, timeout=60) for j in jobs))
            assert [d.result for d in done] == [{"n": 0}, {"n": 1}, {"n": 2}]

            sent: list[int] = []
            created = await conveyor.uploads.create(
                samples.csv_text(), filename="a.csv", on_progress=lambda d, _: sent.append(d)
            )
            assert sent[-1] == len(samples.csv_text())
            assert (await conveyor.jobs.wait(created.job.id, timeout=60)).status == "succeeded"
            direct = await conveyor.uploads.create(
                samples.json_doc(), filename="d.json", direct=True
            )
            assert (await conveyor.jobs.wait(direct.job.id, timeout=60)).status == "succeeded"
            assert await conveyor.uploads.content(direct.upload.id) == samples.json_doc()

            with pytest.raises(APIError) as missing:
                await conveyor.jobs.cancel(uuid.uuid4())
            assert missing.value.code == "job_not_found"

    asyncio.run(scenario())
