"""Password reset end to end: the API queues an email job, a real worker sends it over
SMTP to a real SMTP server, and the code in that email resets the password."""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from core.db import Database
from core.models import Job, Role
from tests.support.factories import User, add_member, create_api_key, create_tenant, create_user
from tests.support.problems import assert_problem
from tests.support.smtp import Received
from tests.support.stack import Stack
from tests.support.worker import WorkerProcess

NEW_PASSWORD = "a brand new password"


def _request_code(client: TestClient, stack: Stack, user: User) -> str:
    seen = len(stack.smtp.received)
    response = client.post("/api/v1/auth/password-reset/request", json={"email": user.email})
    assert response.status_code == 202

    def is_new_reset_mail(item: Received) -> bool:
        return user.email in item.rcpt_tos and stack.smtp.received.index(item) >= seen

    mail = stack.smtp.wait_for(is_new_reset_mail, timeout=30)
    assert mail.message["To"] == user.email
    assert "reset" in mail.message["Subject"].lower()
    body = mail.message.get_content()
    match = re.search(r"\b(\d{6,8})\b", body)
    assert match, body
    return match.group(1)


def _confirm(client: TestClient, user: User, code: str, password: str = NEW_PASSWORD) -> int:
    response = client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"email": user.email, "code": code, "new_password": password},
    )
    if response.status_code != 204:
        assert_problem(response, 400, "invalid_reset_code")
    return response.status_code


def _login(client: TestClient, user: User, password: str) -> int:
    response = client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": password}
    )
    return response.status_code


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def test_reset_by_emailed_code_logs_every_old_session_out(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    code = _request_code(app_client, stack, user)

    assert _confirm(app_client, user, code) == 204

    assert app_client.get("/api/v1/users/me", headers=user.headers).status_code == 401
    refresh = app_client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_problem(refresh, 401, "invalid_token")
    assert _login(app_client, user, user.password) == 401
    assert _login(app_client, user, NEW_PASSWORD) == 200
    # The code worked once.
    assert _confirm(app_client, user, code, "yet another password") == 400
    assert _login(app_client, user, NEW_PASSWORD) == 200


def test_two_concurrent_confirms_give_exactly_one_success(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    code = _request_code(app_client, stack, user)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _confirm(app_client, user, code), range(4)))

    assert sorted(results) == [204, 400, 400, 400]


def test_five_wrong_tries_kill_the_code(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    code = _request_code(app_client, stack, user)

    for _ in range(5):
        assert _confirm(app_client, user, _wrong(code)) == 400

    assert _confirm(app_client, user, code) == 400
    assert _login(app_client, user, user.password) == 200


def test_a_new_code_replaces_the_old_one(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    first = _request_code(app_client, stack, user)
    second = _request_code(app_client, stack, user)

    if first != second:
        assert _confirm(app_client, user, first) == 400
    assert _confirm(app_client, user, second) == 204


def test_a_code_is_only_good_for_its_own_account(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    owner, other = create_user(stack), create_user(stack)
    code = _request_code(app_client, stack, owner)

    assert _confirm(app_client, other, code) == 400
    assert _login(app_client, other, other.password) == 200


def test_known_and_unknown_emails_get_identical_answers(app_client: TestClient, user: User) -> None:
    def answer(email: str) -> tuple[int, dict[str, object], dict[str, str]]:
        response = app_client.post("/api/v1/auth/password-reset/request", json={"email": email})
        headers = {k: v for k, v in response.headers.items() if k not in {"x-request-id", "date"}}
        return response.status_code, response.json(), headers

    assert answer(user.email) == answer("nobody-" + user.email)
    assert answer(user.email)[0] == 202


def test_bad_confirm_bodies_are_422(app_client: TestClient, user: User) -> None:
    for body in (
        {"email": user.email, "code": "12ab56", "new_password": NEW_PASSWORD},
        {"email": user.email, "code": "12345", "new_password": NEW_PASSWORD},
        {"email": user.email, "code": "12345678", "new_password": "short"},
        {"email": "not-an-email", "code": "12345678", "new_password": NEW_PASSWORD},
    ):
        response = app_client.post("/api/v1/auth/password-reset/confirm", json=body)
        assert_problem(response, 422, "validation_failed")


def test_a_confirm_with_no_code_requested_is_400(app_client: TestClient, user: User) -> None:
    assert _confirm(app_client, user, "12345678") == 400
    assert _login(app_client, user, user.password) == 200


def test_reset_email_jobs_are_invisible_to_the_user(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    _request_code(app_client, stack, user)

    jobs = app_client.get("/api/v1/jobs", headers=user.headers).json()["items"]
    assert all(job["kind"] != "email.send" for job in jobs)
    submit = app_client.post(
        "/api/v1/jobs",
        headers=user.headers,
        json={"kind": "email.send", "input": {"to": user.email, "subject": "s", "text": "t"}},
    )
    assert_problem(submit, 422, "unknown_job_kind")


def test_the_code_leaves_the_database_once_the_email_is_sent(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    code = _request_code(app_client, stack, user)
    mail = stack.smtp.received[-1].message
    job_id = uuid.UUID(mail["Message-ID"].strip("<>").split("@")[0])

    db = Database(stack.settings, "test")
    try:

        def stored_text() -> str:
            with db.transaction() as session:
                return str(session.get_one(Job, job_id).input["text"])

        deadline = time.monotonic() + 10
        while code in stored_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored_text() == "[redacted]"
    finally:
        db.dispose()
    # Only the copy in the job is gone: the code itself still works.
    assert _confirm(app_client, user, code) == 204


def test_changing_the_password_kills_a_pending_code(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    code = _request_code(app_client, stack, user)

    changed = app_client.post(
        "/api/v1/auth/password/change",
        headers=user.headers,
        json={"current_password": user.password, "new_password": "changed on purpose"},
    )

    assert changed.status_code == 204
    assert _confirm(app_client, user, code) == 400
    assert _login(app_client, user, "changed on purpose") == 200


def test_a_reset_revokes_the_api_keys_and_the_email_says_so(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    user = create_user(stack)
    key = create_api_key(stack, user.personal_tenant_id, user).headers
    assert app_client.get("/api/v1/jobs", headers=key).status_code == 200

    code = _request_code(app_client, stack, user)
    mail = stack.smtp.received[-1].message.get_content()
    assert "revokes every API key" in mail
    assert _confirm(app_client, user, code) == 204

    assert_problem(app_client.get("/api/v1/jobs", headers=key), 401, "invalid_token")


def test_a_password_change_keeps_the_api_keys(app_client: TestClient, stack: Stack) -> None:
    user = create_user(stack)
    key = create_api_key(stack, user.personal_tenant_id, user).headers

    changed = app_client.post(
        "/api/v1/auth/password/change",
        headers=user.headers,
        json={"current_password": user.password, "new_password": "changed on purpose"},
    )

    assert changed.status_code == 204
    assert app_client.get("/api/v1/jobs", headers=key).status_code == 200


def test_a_reset_ends_the_invitations_sent_in_the_accounts_name(
    app_client: TestClient, stack: Stack, worker: WorkerProcess
) -> None:
    # Whoever held the account invited an address of theirs into a team it administers.
    owner, admin, accomplice = create_user(stack), create_user(stack), create_user(stack)
    team = create_tenant(stack, owner)
    add_member(stack, team, admin, Role.ADMIN)
    invited = app_client.post(
        f"/api/v1/tenants/{team}/members",
        headers=admin.headers,
        json={"email": accomplice.email, "role": "admin"},
    )
    assert invited.status_code == 201
    token = re.search(
        r"invitation token is (\S+)",
        stack.smtp.wait_for(
            lambda m: accomplice.email in m.rcpt_tos, timeout=30
        ).message.get_content(),
    )
    assert token

    code = _request_code(app_client, stack, admin)
    assert _confirm(app_client, admin, code) == 204

    accepted = app_client.post(
        "/api/v1/invitations/accept", headers=accomplice.headers, json={"token": token.group(1)}
    )
    assert_problem(accepted, 404, "invitation_not_found")
