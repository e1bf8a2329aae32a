"""Team tenants: members and roles, invitations by email, the active tenant."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from fastapi.testclient import TestClient

from core.errors import ConveyorError, ErrorCode
from core.identity import tenants
from core.identity.access import Principal
from core.models import Role
from core.models import User as UserRow
from tests.support.factories import User, add_member, create_tenant, create_user
from tests.support.problems import assert_problem
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

API = "/api/v1"


def _team(client: TestClient, owner: User, name: str = "Team") -> str:
    response = client.post(f"{API}/tenants", headers=owner.headers, json={"name": name})
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "owner"
    tenant_id: str = response.json()["id"]
    return tenant_id


def _add(client: TestClient, actor: User, tenant_id: str, email: str, role: str) -> Any:
    return client.post(
        f"{API}/tenants/{tenant_id}/members",
        headers=actor.headers,
        json={"email": email, "role": role},
    )


def _member(stack: Stack, tenant_id: str, user: User, role: str) -> None:
    """A member already (the rows an accepted invitation leaves), for tests of what
    members do rather than of how they join."""
    add_member(stack, uuid.UUID(tenant_id), user, Role(role))


def _in(tenant_id: str, user: User) -> dict[str, str]:
    return {**user.headers, "X-Tenant-ID": tenant_id}


def test_a_team_tenant_shares_jobs_between_its_members_only(
    app_client: TestClient, stack: Stack
) -> None:
    owner, colleague = create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    _member(stack, team, colleague, "member")

    job = app_client.post(
        f"{API}/jobs", headers=_in(team, colleague), json={"kind": "diagnostics.echo", "input": {}}
    ).json()
    personal = app_client.post(
        f"{API}/jobs", headers=owner.headers, json={"kind": "diagnostics.echo", "input": {}}
    ).json()

    seen_by_owner = app_client.get(f"{API}/jobs", headers=_in(team, owner)).json()["items"]
    assert [j["id"] for j in seen_by_owner] == [job["id"]]
    colleague_personal = app_client.get(f"{API}/jobs", headers=colleague.headers).json()
    assert colleague_personal["items"] == []
    assert_problem(
        app_client.get(f"{API}/jobs/{personal['id']}", headers=_in(team, colleague)),
        404,
        "job_not_found",
    )
    tenants = app_client.get(f"{API}/tenants", headers=colleague.headers).json()
    assert {(t["id"], t["role"]) for t in tenants if not t["personal"]} == {(team, "member")}


def test_roles_decide_who_manages_members(app_client: TestClient, stack: Stack) -> None:
    owner, admin, member, newcomer = (create_user(stack) for _ in range(4))
    team = _team(app_client, owner)
    _member(stack, team, admin, "admin")
    _member(stack, team, member, "member")

    by_member = _add(app_client, member, team, newcomer.email, "member")
    assert_problem(by_member, 403, "forbidden")
    assert by_member.json()["required_role"] == "admin"
    assert_problem(_add(app_client, admin, team, newcomer.email, "owner"), 403, "forbidden")
    assert _add(app_client, admin, team, newcomer.email, "member").status_code == 201
    assert_problem(_add(app_client, admin, team, newcomer.email, "member"), 409, "already_member")

    owner_id = str(owner.id)
    demote_owner = app_client.patch(
        f"{API}/tenants/{team}/members/{owner_id}", headers=admin.headers, json={"role": "member"}
    )
    assert_problem(demote_owner, 403, "forbidden")
    remove_owner = app_client.delete(
        f"{API}/tenants/{team}/members/{owner_id}", headers=admin.headers
    )
    assert_problem(remove_owner, 403, "forbidden")

    member_id = str(member.id)
    promoted = app_client.patch(
        f"{API}/tenants/{team}/members/{member_id}", headers=admin.headers, json={"role": "admin"}
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    roles = {
        m["email"]: m["role"]
        for m in app_client.get(f"{API}/tenants/{team}/members", headers=member.headers).json()
    }
    assert roles == {
        owner.email: "owner",
        admin.email: "admin",
        member.email: "admin",
        newcomer.email: "member",  # invited
    }


def test_the_last_owner_cannot_leave_or_step_down(app_client: TestClient, stack: Stack) -> None:
    owner, second = create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    owner_id = str(owner.id)

    leave = app_client.delete(f"{API}/tenants/{team}/members/{owner_id}", headers=owner.headers)
    step_down = app_client.patch(
        f"{API}/tenants/{team}/members/{owner_id}", headers=owner.headers, json={"role": "admin"}
    )
    assert_problem(leave, 409, "last_owner")
    assert_problem(step_down, 409, "last_owner")

    _member(stack, team, second, "owner")
    left = app_client.delete(f"{API}/tenants/{team}/members/{owner_id}", headers=owner.headers)
    assert left.status_code == 204
    assert_problem(
        app_client.get(f"{API}/tenants/{team}", headers=owner.headers), 404, "tenant_not_found"
    )
    assert_problem(app_client.get(f"{API}/jobs", headers=_in(team, owner)), 404, "tenant_not_found")


def test_a_member_can_leave(app_client: TestClient, stack: Stack) -> None:
    owner, member = create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    _member(stack, team, member, "member")

    response = app_client.delete(
        f"{API}/tenants/{team}/members/{member.id}", headers=member.headers
    )

    assert response.status_code == 204
    members = app_client.get(f"{API}/tenants/{team}/members", headers=owner.headers).json()
    assert [m["email"] for m in members] == [owner.email]


def _invitation_token(stack: Stack, email: str) -> str:
    mail = stack.smtp.wait_for(lambda m: email in m.rcpt_tos, timeout=30)
    found = re.search(r"invitation token is (\S+)", mail.message.get_content())
    assert found, mail.message.get_content()
    return found.group(1)


def test_an_invited_email_gets_a_mail_and_joins_on_register_with_its_token(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    owner = create_user(stack)
    team = _team(app_client, owner, name="Data Team")
    email = f"invitee-{uuid.uuid4().hex[:10]}@example.com"

    invited = _add(app_client, owner, team, email, "admin")

    assert invited.status_code == 201
    assert invited.json()["status"] == "invited"
    assert invited.json()["user_id"] is None
    mail = stack.smtp.wait_for(lambda m: email in m.rcpt_tos, timeout=30)
    assert mail.message["Subject"] == "You are invited to a team on Conveyor"
    assert "the team named 'Data Team'" in mail.message.get_content()
    assert owner.email in mail.message.get_content()
    token = _invitation_token(stack, email)

    newcomer = app_client.post(
        f"{API}/auth/register",
        json={"email": email, "password": "welcome aboard", "invitation_token": token},
    )
    assert newcomer.status_code == 201, newcomer.text
    joined = {t["id"]: t["role"] for t in newcomer.json()["tenants"]}
    assert joined[team] == "admin"
    members = app_client.get(f"{API}/tenants/{team}/members", headers=owner.headers).json()
    assert {(m["email"], m["status"]) for m in members} == {
        (owner.email, "active"),
        (email, "active"),
    }


def test_registering_an_invited_email_without_its_token_joins_nothing(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    owner = create_user(stack)
    team = _team(app_client, owner)
    email = f"invitee-{uuid.uuid4().hex[:10]}@example.com"
    _add(app_client, owner, team, email, "owner")
    token = _invitation_token(stack, email)

    # Whoever registers the address first, without the emailed token, gets nothing.
    squatter = app_client.post(
        f"{API}/auth/register", json={"email": email, "password": "not the invitee"}
    )
    assert squatter.status_code == 201
    assert team not in {t["id"] for t in squatter.json()["tenants"]}
    wrong = app_client.post(
        f"{API}/auth/register",
        json={"email": f"x-{email}", "password": "long enough", "invitation_token": token},
    )
    assert_problem(wrong, 404, "invitation_not_found")
    login = app_client.post(
        f"{API}/auth/login", data={"username": email, "password": "not the invitee"}
    ).json()
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    bad = app_client.post(f"{API}/invitations/accept", headers=headers, json={"token": "nope"})
    assert_problem(bad, 404, "invitation_not_found")

    # The token, from the mailbox, is what joins.
    accepted = app_client.post(f"{API}/invitations/accept", headers=headers, json={"token": token})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["id"], accepted.json()["role"]) == (team, "owner")
    again = app_client.post(f"{API}/invitations/accept", headers=headers, json={"token": token})
    assert_problem(again, 404, "invitation_not_found")


def test_concurrent_adds_of_one_email_give_one_invitation(
    app_client: TestClient, stack: Stack
) -> None:
    owner, colleague = create_user(stack), create_user(stack)
    team = _team(app_client, owner)

    with ThreadPoolExecutor(4) as pool:
        codes = list(
            pool.map(
                lambda _: _add(app_client, owner, team, colleague.email, "member").status_code,
                range(4),
            )
        )

    assert sorted(codes) == [201, 409, 409, 409]


def test_two_owners_stepping_down_at_once_leave_one_owner(
    app_client: TestClient, stack: Stack
) -> None:
    first, second = create_user(stack), create_user(stack)
    team = _team(app_client, first)
    _member(stack, team, second, "owner")

    def step_down(user: User) -> int:
        return app_client.patch(
            f"{API}/tenants/{team}/members/{user.id}",
            headers=user.headers,
            json={"role": "member"},
        ).status_code

    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(step_down, (first, second)))

    assert codes in ([200, 409], [200, 403])
    members = app_client.get(f"{API}/tenants/{team}/members", headers=first.headers).json()
    assert [m["role"] for m in members].count("owner") == 1


def test_a_cancelled_invitation_is_not_honoured(app_client: TestClient, stack: Stack) -> None:
    owner = create_user(stack)
    team = _team(app_client, owner)
    email = f"invitee-{uuid.uuid4().hex[:10]}@example.com"
    invitation = _add(app_client, owner, team, email, "member").json()["invitation_id"]

    cancelled = app_client.delete(
        f"{API}/tenants/{team}/invitations/{invitation}", headers=owner.headers
    )
    again = app_client.delete(
        f"{API}/tenants/{team}/invitations/{invitation}", headers=owner.headers
    )

    assert cancelled.status_code == 204
    assert_problem(again, 404, "invitation_not_found")
    newcomer = app_client.post(
        f"{API}/auth/register", json={"email": email, "password": "welcome aboard"}
    ).json()
    assert team not in {t["id"] for t in newcomer["tenants"]}


def test_a_personal_tenant_keeps_to_its_owner(app_client: TestClient, stack: Stack) -> None:
    owner, other = create_user(stack), create_user(stack)
    personal = app_client.get(f"{API}/users/me", headers=owner.headers).json()["personal_tenant_id"]

    assert_problem(_add(app_client, owner, personal, other.email, "member"), 409, "personal_tenant")
    rename = app_client.patch(
        f"{API}/tenants/{personal}", headers=owner.headers, json={"name": "mine"}
    )
    assert_problem(rename, 409, "personal_tenant")


def test_only_owners_rename(app_client: TestClient, stack: Stack) -> None:
    owner, admin = create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    _member(stack, team, admin, "admin")

    by_admin = app_client.patch(f"{API}/tenants/{team}", headers=admin.headers, json={"name": "X"})
    by_owner = app_client.patch(f"{API}/tenants/{team}", headers=owner.headers, json={"name": "Y"})

    assert_problem(by_admin, 403, "forbidden")
    assert by_owner.status_code == 200
    assert by_owner.json()["name"] == "Y"


def test_bad_tenant_and_member_bodies_are_422(app_client: TestClient, user: User) -> None:
    team = _team(app_client, user)
    for body in ({"name": ""}, {"name": "   "}, {"name": "x" * 201}, {}):
        response = app_client.post(f"{API}/tenants", headers=user.headers, json=body)
        assert_problem(response, 422, "validation_failed")
    for member in ({"email": "a@example.com", "role": "superuser"}, {"email": "nope"}):
        response = app_client.post(
            f"{API}/tenants/{team}/members", headers=user.headers, json=member
        )
        assert_problem(response, 422, "validation_failed")
    assert_problem(
        app_client.get(f"{API}/tenants/not-a-uuid", headers=user.headers), 422, "validation_failed"
    )


def test_an_admin_cannot_cancel_an_invitation_to_ownership(
    app_client: TestClient, stack: Stack
) -> None:
    owner, admin = create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    _member(stack, team, admin, "admin")
    email = f"future-owner-{uuid.uuid4().hex[:10]}@example.com"
    invitation = _add(app_client, owner, team, email, "owner").json()["invitation_id"]
    url = f"{API}/tenants/{team}/invitations/{invitation}"

    assert_problem(app_client.delete(url, headers=admin.headers), 403, "forbidden")
    assert app_client.delete(url, headers=owner.headers).status_code == 204


def _accept(client: TestClient, user: User, token: str) -> Any:
    return client.post(f"{API}/invitations/accept", headers=user.headers, json={"token": token})


def test_adding_a_registered_address_invites_it_and_says_nothing_about_accounts(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    # Someone registered the new hire's address before the owner added it: the add must
    # not make them a member, and must answer as for an address with no account.
    owner, squatter = create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.com"

    registered = _add(app_client, owner, team, squatter.email, "admin")
    unregistered = _add(app_client, owner, team, unknown, "admin")

    assert registered.status_code == unregistered.status_code == 201
    shape = {k: v for k, v in registered.json().items() if k not in {"email", "since"}}
    other = {k: v for k, v in unregistered.json().items() if k not in {"email", "since"}}
    assert shape.keys() == other.keys()
    assert shape["status"] == other["status"] == "invited"
    assert shape["user_id"] is other["user_id"] is None
    assert_problem(
        app_client.get(f"{API}/jobs", headers=_in(team, squatter)), 404, "tenant_not_found"
    )

    # Whoever reads the mailbox joins, with the token.
    token = _invitation_token(stack, squatter.email)
    joined = _accept(app_client, squatter, token)
    assert joined.status_code == 200, joined.text
    assert joined.json()["role"] == "admin"
    assert app_client.get(f"{API}/jobs", headers=_in(team, squatter)).status_code == 200


def test_an_invitation_dies_with_the_rights_of_who_sent_it(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    owner, admin, second_self = create_user(stack), create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    _member(stack, team, admin, "admin")
    # The admin invites another address of their own, as admin; then loses the role.
    assert _add(app_client, admin, team, second_self.email, "admin").status_code == 201
    token = _invitation_token(stack, second_self.email)
    removed = app_client.delete(f"{API}/tenants/{team}/members/{admin.id}", headers=owner.headers)
    assert removed.status_code == 204

    members = app_client.get(f"{API}/tenants/{team}/members", headers=owner.headers).json()
    assert second_self.email not in {m["email"] for m in members}
    assert_problem(_accept(app_client, second_self, token), 404, "invitation_not_found")


def test_a_demoted_admins_invitations_beyond_their_new_role_die(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    owner, admin, invitee = create_user(stack), create_user(stack), create_user(stack)
    team = _team(app_client, owner)
    _member(stack, team, admin, "admin")
    assert _add(app_client, admin, team, invitee.email, "member").status_code == 201
    token = _invitation_token(stack, invitee.email)

    demoted = app_client.patch(
        f"{API}/tenants/{team}/members/{admin.id}", headers=owner.headers, json={"role": "member"}
    )

    assert demoted.status_code == 200
    assert_problem(_accept(app_client, invitee, token), 404, "invitation_not_found")


def test_team_names_hold_no_links_or_line_breaks(app_client: TestClient, user: User) -> None:
    for name in (
        "URGENT: your account is locked, verify at https://evil.example/login",
        "evil.example",
        "www.example",
        "write to help@evil.example",
        "Data\nTeam",
        "Data\u2028Team",
    ):
        response = app_client.post(f"{API}/tenants", headers=user.headers, json={"name": name})
        assert_problem(response, 422, "validation_failed")
    for name in ("Data Team", "R&D — Ops 2.0", "Q3: plans"):
        created = app_client.post(f"{API}/tenants", headers=user.headers, json={"name": name})
        assert created.status_code == 201, (name, created.text)


def _at_once(*calls: Callable[[], object]) -> list[BaseException]:
    """Run the calls in threads released together; what they raised."""
    start = threading.Barrier(len(calls))
    raised: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            call()
        except BaseException as exc:
            raised.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return raised


def _demote(stack: Stack, team: uuid.UUID, owner: User, admin: User) -> None:
    with stack.db.transaction() as session:
        by_owner = Principal(team, owner.id, Role.OWNER, frozenset())
        tenants.change_role(session, by_owner, admin.id, Role.MEMBER)


def _accept_token(stack: Stack, invitee: User, token: str) -> None:
    with stack.db.transaction() as session:
        tenants.accept(session, stack.settings, session.get_one(UserRow, invitee.id), token)


def test_an_acceptance_and_a_demotion_of_the_inviter_at_once_never_deadlock(
    stack: Stack,
) -> None:
    # Member management locks the tenant, then the invitation; so must acceptance, or
    # the two wait for each other and PostgreSQL aborts one.
    for _ in range(10):
        owner, admin, invitee = create_user(stack), create_user(stack), create_user(stack)
        team = create_tenant(stack, owner)
        add_member(stack, team, admin, Role.ADMIN)
        with stack.db.transaction() as session:
            inviter = Principal(team, admin.id, Role.ADMIN, frozenset())
            token = tenants.add(session, inviter, invitee.email, Role.MEMBER).invitation_token

        raised = _at_once(
            partial(_demote, stack, team, owner, admin),
            partial(_accept_token, stack, invitee, token),
        )

        # Demoted first, the invitation is gone; accepted first, the invitee is in.
        assert all(
            isinstance(exc, ConveyorError) and exc.error is ErrorCode.INVITATION_NOT_FOUND
            for exc in raised
        ), raised
