"""A real Prometheus server scrapes a running API (uvicorn, with METRICS_TOKEN) while a
real worker runs jobs, some failing; what it stored is checked with PromQL through its
HTTP API. The shipped alert rules are checked and unit-tested with promtool."""

from __future__ import annotations

import io
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.jobs.contracts import ECHO, SLEEP, UPLOAD_PROCESS
from tests.support import samples
from tests.support.api_server import ApiServer
from tests.support.factories import create_user
from tests.support.processes import eventually
from tests.support.prometheus import ALERTS, PrometheusServer, binary
from tests.support.services import unavailable
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

TOKEN = "scrape-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def promtool() -> str:
    found = binary("promtool")
    if found is None or binary("prometheus") is None:
        unavailable("prometheus and promtool are not installed (apt-get install prometheus)")
    assert found is not None
    return found


@pytest.fixture
def api(stack: Stack, tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer({**stack.env, "METRICS_TOKEN": TOKEN}, tmp_path)
    yield server
    server.stop()


def test_the_alert_rules_are_valid_and_fire_as_designed(promtool: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_prometheus_scrapes_what_the_jobs_did(
    promtool: str, stack: Stack, worker: WorkerProcess, api: ApiServer, tmp_path: Path
) -> None:
    prometheus = PrometheusServer(tmp_path / "prometheus", f"127.0.0.1:{api.port}", TOKEN)
    try:
        user = create_user(stack)
        with httpx.Client(base_url=api.url, headers=user.headers, timeout=30) as client:
            _run_jobs(client)

        def settled() -> float | None:
            return prometheus.value("sum(conveyor_jobs_finished_total)") == 5 or None

        eventually(settled, 30, "five finished jobs in Prometheus")
        assert prometheus.value('up{job="conveyor-api"}') == 1
        finished = {
            (r["metric"]["kind"], r["metric"]["outcome"]): float(r["value"][1])
            for r in prometheus.query("conveyor_jobs_finished_total > 0")
        }
        assert finished == {
            (ECHO, "succeeded"): 3,
            (SLEEP, "cancelled"): 1,
            (UPLOAD_PROCESS, "failed"): 1,
        }
        failure_rate = (
            'sum(conveyor_jobs_finished_total{outcome="failed"}) '
            "/ sum(conveyor_jobs_finished_total)"
        )
        assert prometheus.value(failure_rate) == pytest.approx(0.2)
        assert prometheus.value(f'conveyor_job_run_seconds_count{{kind="{ECHO}"}}') == 3
        assert prometheus.value('sum(conveyor_jobs{status=~"queued|running"})') == 0
        submitted = 'conveyor_http_requests_total{method="POST",route="/api/v1/jobs",status="202"}'
        assert prometheus.value(submitted) == 4
        reconciled = 'time() - conveyor_maintenance_last_run_timestamp_seconds{task="reconciler"}'
        assert (eventually(lambda: prometheus.value(reconciled), 30, "the reconciler ran")) < 30
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
        assert len(rules) == 5, rules
        assert set(rules.values()) == {"ok"}, rules
        firing = [
            alert["labels"]["alertname"]
            for alert in prometheus.get("/api/v1/alerts")["alerts"]
            if alert["state"] == "firing"
        ]
        assert firing == []
    finally:
        prometheus.stop()


def _run_jobs(client: httpx.Client) -> None:
    """Three echo jobs succeed, an upload that is not a PDF fails, a sleep is cancelled."""
    ids = []
    for n in range(3):
        response = client.post("/api/v1/jobs", json={"kind": ECHO, "input": {"n": n}})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    pdf = samples.pdf(["one", "two"])
    cut = ("cut.pdf", io.BytesIO(pdf[: len(pdf) // 2]), "application/pdf")
    response = client.post("/api/v1/uploads", files={"file": cut})
    assert response.status_code == 201, response.text
    ids.append(response.json()["job"]["id"])
    response = client.post("/api/v1/jobs", json={"kind": SLEEP, "input": {"seconds": 60}})
    assert response.status_code == 202, response.text
    sleeper = response.json()["id"]
    ids.append(sleeper)
    assert client.post(f"/api/v1/jobs/{sleeper}/cancel").status_code in (200, 202)

    def all_ended() -> bool | None:
        statuses = {client.get(f"/api/v1/jobs/{job_id}").json()["status"] for job_id in ids}
        return statuses <= TERMINAL or None

    eventually(all_ended, 60, "every job ended")


TERMINAL = {"succeeded", "failed", "cancelled"}
