"""Tenant isolation, route by route: an outsider who knows an id gets a 404 with the
resource's code, never the resource; the insider's identical request succeeds, so each
row of the matrix would notice a route that stopped checking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support import jobs
from tests.support.factories import (
    ApiKey,
    User,
    add_member,
    create_api_key,
    create_job,
    create_tenant,
    create_user,
    new_email,
)
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.tenancy import (
    API,
    bearer,
    in_tenant,
    job_ids,
    list_keys,
    member_emails,
    tenant_ids,
)

SLOW_JOB = ("diagnostics.sleep", {"seconds": 30})


@dataclass
class World:
    """A owns a personal tenant and team T (with a member and an invitation); B owns
    its own personal tenant and team. Each has jobs and API keys."""

    a: User
    b: User
    member: User
    a_personal: str
    team: str
    b_personal: str
    b_team: str
    a_personal_job: str
    team_job: str
    b_job: str
    b_team_job: str
    a_personal_key: ApiKey
    team_key: ApiKey
    b_key: ApiKey
    invitee: str
    invitation: str


@pytest.fixture
def world(app_client: TestClient, stack: Stack) -> World:
    a, b, member = create_user(stack), create_user(stack), create_user(stack)
    team = create_tenant(stack, a, "A's team")
    b_team = create_tenant(stack, b, "B's team")
    add_member(stack, team, member)
    # Invited over HTTP: the invitation email is a system job no tenant may list.
    invitee = new_email("invitee")
    invited = app_client.post(
        f"{API}/tenants/{team}/members", headers=a.headers, json={"email": invitee}
    )
    assert invited.status_code == 201, invited.text
    assert invited.json()["status"] == "invited"

    def job(user: User, tenant: uuid.UUID, marker: str) -> str:
        return str(create_job(stack, tenant, user, job_input={"marker": marker}))

    return World(
        a=a,
        b=b,
        member=member,
        a_personal=str(a.personal_tenant_id),
        team=str(team),
        b_personal=str(b.personal_tenant_id),
        b_team=str(b_team),
        a_personal_job=job(a, a.personal_tenant_id, "a personal"),
        team_job=job(a, team, "a team"),
        b_job=job(b, b.personal_tenant_id, "b personal"),
        b_team_job=job(b, b_team, "b team"),
        a_personal_key=create_api_key(stack, a.personal_tenant_id, a, name="a personal"),
        team_key=create_api_key(stack, team, a, name="a team"),
        b_key=create_api_key(stack, b.personal_tenant_id, b, name="b personal"),
        invitee=invitee,
        invitation=invited.json()["invitation_id"],
    )


@dataclass
class Ids:
    """Fills `{name}` in a case's path, tenant and body. World ids come as they are;
    `fresh_*` ones are made on first use (by A), so a destructive request has something
    of its own to destroy; `own_team` is the caller's own team tenant."""

    client: TestClient
    stack: Stack
    world: World
    own_team: str
    fresh: dict[str, str] = field(default_factory=dict)

    def for_caller(self, own_team: str) -> Ids:
        return Ids(self.client, self.stack, self.world, own_team, self.fresh)

    def __getitem__(self, name: str) -> str:
        if name == "own_team":
            return self.own_team
        if not name.startswith("fresh_"):
            value = getattr(self.world, name)
            return str(value.id) if isinstance(value, ApiKey) else str(value)
        if name not in self.fresh:
            self.fresh[name] = self._make(name)
        return self.fresh[name]

    def _make(self, name: str) -> str:
        client, stack, w = self.client, self.stack, self.world
        team = uuid.UUID(w.team)
        if name == "fresh_email":
            return new_email()
        if name == "fresh_member":
            user = create_user(stack)
            add_member(stack, team, user)
            return str(user.id)
        if name == "fresh_invitation":
            response = client.post(
                f"{API}/tenants/{w.team}/members", headers=w.a.headers, json={"email": new_email()}
            )
            assert response.status_code == 201, response.text
            return str(response.json()["invitation_id"])
        if name in ("fresh_team_key", "fresh_personal_key"):
            tenant = team if name == "fresh_team_key" else w.a.personal_tenant_id
            return str(create_api_key(stack, tenant, w.a, name=name).id)
        if name in ("fresh_team_job", "fresh_personal_job"):
            tenant = team if name == "fresh_team_job" else w.a.personal_tenant_id
            kind, job_input = SLOW_JOB
            return str(create_job(stack, tenant, w.a, kind, job_input))
        raise KeyError(name)

    def fill(self, template: Any) -> Any:
        if isinstance(template, str):
            return template.format_map(self)
        if isinstance(template, dict):
            return {k: self.fill(v) for k, v in template.items()}
        return template


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    code: str  # the outsider's 404
    ok: tuple[int, ...]  # the insider's answer to the same request
    tenant: str | None = None  # X-Tenant-ID
    body: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        header = f" as {self.tenant.strip('{}')}" if self.tenant else ""
        return f"{self.method} {self.path}{header}"


JOB = {"kind": "diagnostics.echo", "input": {"from": "outsider"}}
KEY = {"name": "outsider", "scopes": ["jobs:read"]}

JOB_CASES = [
    Case("GET", "/jobs/{a_personal_job}", "job_not_found", (200,)),
    Case("GET", "/jobs/{a_personal_job}/events", "job_not_found", (200,)),
    Case("POST", "/jobs/{fresh_personal_job}/cancel", "job_not_found", (200, 202)),
    Case("GET", "/jobs/{a_personal_job}", "tenant_not_found", (200,), "{a_personal}"),
    Case("GET", "/jobs/{team_job}", "tenant_not_found", (200,), "{team}"),
    Case("GET", "/jobs/{team_job}/events", "tenant_not_found", (200,), "{team}"),
    Case("POST", "/jobs/{fresh_team_job}/cancel", "tenant_not_found", (200, 202), "{team}"),
    Case("GET", "/jobs", "tenant_not_found", (200,), "{a_personal}"),
    Case("GET", "/jobs", "tenant_not_found", (200,), "{team}"),
    Case("POST", "/jobs", "tenant_not_found", (202,), "{a_personal}", JOB),
    Case("POST", "/jobs", "tenant_not_found", (202,), "{team}", JOB),
]

TENANT_CASES = [
    Case("GET", "/tenants/{team}", "tenant_not_found", (200,)),
    Case("GET", "/tenants/{a_personal}", "tenant_not_found", (200,)),
    Case("PATCH", "/tenants/{team}", "tenant_not_found", (200,), body={"name": "A's team"}),
    Case("GET", "/tenants/{team}/members", "tenant_not_found", (200,)),
    Case("GET", "/tenants/{a_personal}/members", "tenant_not_found", (200,)),
    Case(
        "POST",
        "/tenants/{team}/members",
        "tenant_not_found",
        (201,),
        body={"email": "{fresh_email}", "role": "admin"},
    ),
    Case(
        "PATCH",
        "/tenants/{team}/members/{fresh_member}",
        "tenant_not_found",
        (200,),
        body={"role": "admin"},
    ),
    Case("DELETE", "/tenants/{team}/members/{fresh_member}", "tenant_not_found", (204,)),
    Case("DELETE", "/tenants/{team}/invitations/{fresh_invitation}", "tenant_not_found", (204,)),
    Case("GET", "/api-keys", "tenant_not_found", (200,), "{team}"),
    Case("GET", "/api-keys", "tenant_not_found", (200,), "{a_personal}"),
    Case("POST", "/api-keys", "tenant_not_found", (201,), "{team}", KEY),
    Case("POST", "/api-keys", "tenant_not_found", (201,), "{a_personal}", KEY),
    Case("DELETE", "/api-keys/{fresh_team_key}", "tenant_not_found", (204,), "{team}"),
    Case("DELETE", "/api-keys/{fresh_personal_key}", "api_key_not_found", (204,)),
    # Another tenant's ids used in a tenant the outsider does manage.
    Case(
        "PATCH",
        "/tenants/{own_team}/members/{fresh_member}",
        "member_not_found",
        (200,),
        body={"role": "admin"},
    ),
    Case("DELETE", "/tenants/{own_team}/members/{fresh_member}", "member_not_found", (204,)),
    Case(
        "DELETE",
        "/tenants/{own_team}/invitations/{fresh_invitation}",
        "invitation_not_found",
        (204,),
    ),
    Case("DELETE", "/api-keys/{fresh_team_key}", "api_key_not_found", (204,), "{own_team}"),
]


def a_view(client: TestClient, w: World) -> dict[str, Any]:
    """Everything A can see of its tenants, as A sees it; an outsider's refused request
    must leave it as it was. Job statuses and key use times are left out: a worker or a
    key's own use may change those meanwhile."""

    def keys(tenant: str) -> list[Any]:
        return [
            {k: v for k, v in key.items() if k != "last_used_at"}
            for key in list_keys(client, w.a.headers, tenant)
        ]

    def cancels(tenant: str) -> list[Any]:
        page = client.get(
            f"{API}/jobs", headers=in_tenant(w.a.headers, tenant), params={"limit": 100}
        ).json()
        assert page["next_cursor"] is None
        return [(j["id"], j["cancel_requested_at"]) for j in page["items"]]

    return {
        "tenants": client.get(f"{API}/tenants", headers=w.a.headers).json(),
        "members": client.get(f"{API}/tenants/{w.team}/members", headers=w.a.headers).json(),
        "keys": [keys(w.a_personal), keys(w.team)],
        "jobs": [cancels(w.a_personal), cancels(w.team)],
    }


def _send(client: TestClient, case: Case, ids: Ids, headers: dict[str, str]) -> Any:
    return client.request(
        case.method,
        API + ids.fill(case.path),
        headers=in_tenant(headers, ids.fill(case.tenant) if case.tenant else None),
        json=ids.fill(case.body),
    )


def _check(
    client: TestClient,
    stack: Stack,
    w: World,
    case: Case,
    outsider: dict[str, str],
    outsider_team: str,
) -> None:
    ids = Ids(client, stack, w, w.team)
    # Make the fresh things first, so the snapshot includes them.
    for template in (case.path, case.tenant or "", *(case.body or {}).values()):
        ids.fill(template)
    before = a_view(client, w)

    refused = _send(client, case, ids.for_caller(outsider_team), outsider)

    assert_problem(refused, 404, case.code)
    assert a_view(client, w) == before
    control = _send(client, case, ids, w.a.headers)
    assert control.status_code in case.ok, control.text


@pytest.mark.parametrize("case", JOB_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("outsider", ["login", "api key"])
def test_outsider_gets_404_on_job_routes(
    app_client: TestClient, world: World, case: Case, outsider: str, stack: Stack
) -> None:
    headers = world.b.headers if outsider == "login" else bearer(world.b_key.secret)
    _check(app_client, stack, world, case, headers, world.b_team)


@pytest.mark.parametrize("case", TENANT_CASES, ids=lambda c: c.id)
def test_outsider_gets_404_on_tenant_and_key_routes(
    app_client: TestClient, world: World, case: Case, stack: Stack
) -> None:
    _check(app_client, stack, world, case, world.b.headers, world.b_team)


def test_job_lists_show_only_the_active_tenant(app_client: TestClient, world: World) -> None:
    w = world
    a_personal = job_ids(app_client, w.a.headers)
    team = job_ids(app_client, w.a.headers, w.team)
    member_team = job_ids(app_client, w.member.headers, w.team)
    b_personal = job_ids(app_client, w.b.headers)
    b_team = job_ids(app_client, w.b.headers, w.b_team)

    assert w.a_personal_job in a_personal
    assert w.team_job in team
    assert w.team_job in member_team
    assert w.b_job in b_personal
    assert w.b_team_job in b_team
    lists = [a_personal, team, b_personal, b_team]
    for i, one in enumerate(lists):
        for other in lists[i + 1 :]:
            assert not one & other
    assert member_team == team
    # The invitation email is a system job: no tenant lists it.
    for tenant in (None, w.team):
        page = app_client.get(f"{API}/jobs", headers=in_tenant(w.a.headers, tenant)).json()
        assert "email.send" not in {j["kind"] for j in page["items"]}


def test_a_job_is_read_only_in_its_own_tenant_even_by_a_member_of_both(
    app_client: TestClient, world: World
) -> None:
    w = world
    in_team = in_tenant(w.a.headers, w.team)

    assert jobs.get(app_client, in_team, w.team_job)["id"] == w.team_job
    assert jobs.get(app_client, w.a.headers, w.a_personal_job)["id"] == w.a_personal_job
    for headers, job_id in ((in_team, w.a_personal_job), (w.a.headers, w.team_job)):
        assert_problem(
            app_client.get(f"{API}/jobs/{job_id}", headers=headers), 404, "job_not_found"
        )
    # Another member of the team reads it too.
    assert jobs.get(app_client, in_tenant(w.member.headers, w.team), w.team_job)["id"] == w.team_job


def test_tenant_lists_show_only_your_tenants(app_client: TestClient, world: World) -> None:
    w = world

    assert tenant_ids(app_client, w.a) == {w.a_personal: "owner", w.team: "owner"}
    assert tenant_ids(app_client, w.b) == {w.b_personal: "owner", w.b_team: "owner"}
    member_tenants = tenant_ids(app_client, w.member)
    assert member_tenants[w.team] == "member"
    assert not {w.a_personal, w.b_personal, w.b_team} & set(member_tenants)
    me = app_client.get(f"{API}/users/me", headers=w.b.headers).json()
    assert {t["id"] for t in me["tenants"]} == {w.b_personal, w.b_team}


def test_member_lists_show_only_the_tenants_people(app_client: TestClient, world: World) -> None:
    w = world
    team = member_emails(app_client, w.a, w.team)
    as_member = member_emails(app_client, w.member, w.team)
    b_team = member_emails(app_client, w.b, w.b_team)

    assert team[w.a.email] == "active"
    assert team[w.member.email] == "active"
    assert team[w.invitee] == "invited"
    assert w.b.email not in team
    assert as_member == team
    assert b_team == {w.b.email: "active"}
    assert member_emails(app_client, w.a, w.a_personal) == {w.a.email: "active"}


def test_key_lists_show_only_the_active_tenants_keys(app_client: TestClient, world: World) -> None:
    w = world
    a_personal = {k["id"] for k in list_keys(app_client, w.a.headers, None)}
    team = {k["id"] for k in list_keys(app_client, w.a.headers, w.team)}
    b_personal = {k["id"] for k in list_keys(app_client, w.b.headers, None)}
    b_team = {k["id"] for k in list_keys(app_client, w.b.headers, w.b_team)}

    assert str(w.a_personal_key.id) in a_personal
    assert str(w.team_key.id) in team
    assert str(w.b_key.id) in b_personal
    lists = [a_personal, team, b_personal, b_team]
    for i, one in enumerate(lists):
        for other in lists[i + 1 :]:
            assert not one & other
    for key in list_keys(app_client, w.a.headers, w.team):
        assert key["tenant_id"] == w.team


def test_a_team_key_sees_only_its_tenant(app_client: TestClient, world: World) -> None:
    w = world
    key = bearer(w.team_key.secret)

    listed = job_ids(app_client, key)
    assert w.team_job in listed
    assert not {w.a_personal_job, w.b_job, w.b_team_job} & listed
    assert listed == job_ids(app_client, w.a.headers, w.team)
    assert jobs.get(app_client, key, w.team_job)["id"] == w.team_job
    assert job_ids(app_client, key, w.team) == listed  # naming its own tenant is fine

    assert_problem(
        app_client.get(f"{API}/jobs/{w.a_personal_job}", headers=key), 404, "job_not_found"
    )
    for tenant in (w.a_personal, w.b_personal):
        for method, path in [
            ("GET", "/jobs"),
            ("GET", f"/jobs/{w.a_personal_job}"),
            ("GET", f"/jobs/{w.team_job}"),
        ]:
            response = app_client.request(method, API + path, headers=in_tenant(key, tenant))
            assert_problem(response, 404, "tenant_not_found")
    before = job_ids(app_client, w.a.headers)
    refused = app_client.post(f"{API}/jobs", headers=in_tenant(key, w.a_personal), json=JOB)
    assert_problem(refused, 404, "tenant_not_found")
    assert job_ids(app_client, w.a.headers) == before

    made = jobs.submit(app_client, key, "diagnostics.echo", {"by": "key"})["id"]
    assert made in job_ids(app_client, w.a.headers, w.team)
    assert made not in job_ids(app_client, w.a.headers)


def test_a_personal_key_is_not_let_into_its_creators_team(
    app_client: TestClient, world: World
) -> None:
    w = world
    key = bearer(w.a_personal_key.secret)

    assert job_ids(app_client, key, w.a_personal) == job_ids(app_client, w.a.headers)
    response = app_client.get(f"{API}/jobs", headers=in_tenant(key, w.team))
    assert_problem(response, 404, "tenant_not_found")
    response = app_client.get(f"{API}/jobs/{w.team_job}", headers=key)
    assert_problem(response, 404, "job_not_found")


def test_a_removed_member_is_locked_out_at_once(
    app_client: TestClient, world: World, stack: Stack
) -> None:
    w = world
    member = create_user(stack)
    add_member(stack, uuid.UUID(w.team), member)
    in_team = in_tenant(member.headers, w.team)
    their_job = jobs.submit(app_client, in_team, "diagnostics.echo", {"by": "member"})["id"]
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/jobs", in_team),
        ("GET", f"/jobs/{w.team_job}", in_team),
        ("GET", f"/jobs/{their_job}", in_team),
        ("GET", f"/tenants/{w.team}", member.headers),
        ("GET", f"/tenants/{w.team}/members", member.headers),
    ]
    for method, path, headers in requests:
        assert app_client.request(method, API + path, headers=headers).status_code == 200, path

    removed = app_client.delete(f"{API}/tenants/{w.team}/members/{member.id}", headers=w.a.headers)

    assert removed.status_code == 204, removed.text
    for method, path, headers in requests:
        response = app_client.request(method, API + path, headers=headers)
        assert_problem(response, 404, "tenant_not_found")
    refused = app_client.post(f"{API}/jobs", headers=in_team, json=JOB)
    assert_problem(refused, 404, "tenant_not_found")
    assert w.team not in tenant_ids(app_client, member)
    assert member.email not in member_emails(app_client, w.a, w.team)
    # Their login still works elsewhere, and what they made stays with the tenant.
    assert app_client.get(f"{API}/jobs", headers=member.headers).status_code == 200
    assert jobs.get(app_client, in_tenant(w.a.headers, w.team), their_job)["input"] == {
        "by": "member"
    }


def test_an_idempotency_key_never_replays_another_tenants_job(
    app_client: TestClient, world: World
) -> None:
    w = world
    key = {"Idempotency-Key": f"isolation-{w.team}"}

    def submit(headers: dict[str, str], who: str) -> Any:
        return app_client.post(
            f"{API}/jobs",
            headers={**headers, **key},
            json={"kind": "diagnostics.echo", "input": {"who": who}},
        )

    theirs = submit(in_tenant(w.a.headers, w.team), "a")
    assert theirs.status_code == 202, theirs.text

    mine = submit(w.b.headers, "a")
    conflict = submit(w.b.headers, "b")

    assert mine.status_code == 202, mine.text
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in mine.headers
    # The conflict names B's own job, never A's.
    assert (
        assert_problem(conflict, 409, "idempotency_key_reused")["existing_job_id"]
        == (mine.json()["id"])
    )


def test_an_outsider_cannot_follow_a_jobs_event_stream(
    app_client: TestClient, world: World
) -> None:
    w = world
    job = jobs.submit(app_client, in_tenant(w.a.headers, w.team), *SLOW_JOB)["id"]
    cancelled = app_client.post(f"{API}/jobs/{job}/cancel", headers=in_tenant(w.a.headers, w.team))
    # Cancelled at once if still queued, or at its next checkpoint if a worker has it:
    # either way it ends, and so does its stream.
    assert cancelled.status_code in {200, 202}, cancelled.text
    stream = {"Accept": "text/event-stream"}
    path = f"{API}/jobs/{job}/events"

    for headers, code in [
        (w.b.headers, "job_not_found"),
        (in_tenant(w.b.headers, w.team), "tenant_not_found"),
        (bearer(w.b_key.secret), "job_not_found"),
        (in_tenant(w.member.headers, w.b_team), "tenant_not_found"),
    ]:
        assert_problem(app_client.get(path, headers={**headers, **stream}), 404, code)
    control = app_client.get(path, headers={**in_tenant(w.a.headers, w.team), **stream})
    assert control.status_code == 200
    assert control.headers["content-type"].startswith("text/event-stream")
    assert '"status":"cancelled"' in control.text.replace(" ", "")
