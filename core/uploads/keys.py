"""Where an upload's objects live in storage. Keys are built by the server from ids,
never from anything a client sends, so one tenant's upload cannot name another's."""

from __future__ import annotations

import re
import uuid

DERIVED_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def upload_prefix(tenant_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    """Every object of one upload: its original and what was derived from it."""
    return f"tenants/{_uuid(tenant_id)}/uploads/{_uuid(upload_id)}/"


def upload_key(tenant_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    return upload_prefix(tenant_id, upload_id) + "original"


def incoming_key(tenant_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    """Where a direct upload lands. It moves to `upload_key` once checked, so bytes
    PUT again with the same URL afterwards never replace what was checked."""
    return upload_prefix(tenant_id, upload_id) + "incoming"


def derived_key(tenant_id: uuid.UUID, upload_id: uuid.UUID, name: str) -> str:
    """A file a processor made from the upload (a thumbnail, extracted text, ...)."""
    if not DERIVED_NAME.fullmatch(name):
        raise ValueError(
            f"derived name {name!r} must match {DERIVED_NAME.pattern}: lower-case letters, "
            "digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters"
        )
    return upload_prefix(tenant_id, upload_id) + "derived/" + name


def _uuid(value: uuid.UUID) -> str:
    # A string here could be anything, "../" included; the canonical form cannot.
    if not isinstance(value, uuid.UUID):
        raise TypeError(f"expected a uuid.UUID, got {type(value).__name__}")
    return str(value)
