"""Housekeeping deletes expired codes, refresh tokens and long-ended sessions, and
nothing that is still live."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import select, update

from core.kv import CodeCheck
from core.kv.sql_store import SqlStore
from core.models import AuthSession, KvEntry, RefreshToken
from tests.support.factories import User, log_in
from tests.support.stack import Stack
from worker.maintenance.housekeeping import housekeep
from worker.resources import runtime


def test_housekeeping_removes_only_what_expired(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    db = runtime().db
    kv = SqlStore(db)
    gone, live = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"
    kv.put_code(gone, "h", 0.05)
    kv.put_code(live, "h", 60)
    ended = jwt.get_unverified_claims(log_in(stack, user).refresh_token)
    expired = jwt.get_unverified_claims(log_in(stack, user).refresh_token)
    long_ago = datetime.now(UTC) - timedelta(days=stack.settings.refresh_token_days + 1)
    with db.transaction() as session:
        session.execute(
            update(AuthSession)
            .where(AuthSession.id == uuid.UUID(ended["sid"]))
            .values(revoked_at=long_ago, revoked_reason="logout")
        )
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == uuid.UUID(expired["jti"]))
            .values(expires_at=long_ago)
        )
    time.sleep(0.1)

    # The code, the expired refresh token and the long-ended session: nothing else (the
    # tables start empty for each test).
    assert housekeep(kv) == 3

    with db.transaction() as session:
        keys = set(session.scalars(select(KvEntry.key).where(KvEntry.key.in_([gone, live]))))
        sessions = set(
            session.scalars(
                select(AuthSession.id).where(
                    AuthSession.id.in_([uuid.UUID(ended["sid"]), uuid.UUID(expired["sid"])])
                )
            )
        )
        token = session.get(RefreshToken, uuid.UUID(expired["jti"]))
    assert keys == {live}
    assert sessions == {uuid.UUID(expired["sid"])}
    assert token is None
    assert kv.check_code(live, "h", 5) is CodeCheck.ACCEPTED
    assert app_client.get("/api/v1/users/me", headers=user.headers).status_code == 200


def test_housekeeping_removes_direct_uploads_never_completed(
    app_client: TestClient, stack: Stack, user: User
) -> None:
    from core.models import Upload
    from core.storage import open_storage
    from core.uploads.keys import incoming_key

    data = b"never completed\n"
    presigned = app_client.post(
        "/api/v1/uploads/presign",
        headers=user.headers,
        json={"filename": "x.txt", "size": len(data), "content_type": "text/plain"},
    ).json()
    storage = open_storage(stack.settings)
    upload_id = uuid.UUID(presigned["upload_id"])
    tenant = user.personal_tenant_id
    storage.put_bytes(incoming_key(tenant, upload_id), data, "text/plain")
    db = runtime().db
    long_ago = datetime.now(UTC) - timedelta(seconds=stack.settings.upload_url_seconds, hours=2)
    with db.transaction() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(created_at=long_ago))

    housekeep(SqlStore(db))

    with db.transaction() as session:
        assert session.get(Upload, upload_id) is None
    assert storage.head(incoming_key(tenant, upload_id)) is None
