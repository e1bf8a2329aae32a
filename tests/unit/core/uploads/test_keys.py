"""The storage keys of uploads and their derived files."""

from __future__ import annotations

import uuid

import pytest

from core.storage import (
    check_key,
)
from core.uploads.keys import derived_key, upload_key, upload_prefix

TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")


def test_key_helpers() -> None:
    tenant = uuid.UUID("11111111-1111-4111-8111-111111111111")
    upload = uuid.UUID("22222222-2222-4222-8222-222222222222")
    prefix = f"tenants/{tenant}/uploads/{upload}/"
    assert upload_prefix(tenant, upload) == prefix
    assert upload_key(tenant, upload) == prefix + "original"
    assert derived_key(tenant, upload, "thumb-256.webp") == prefix + "derived/thumb-256.webp"
    for key in (upload_key(tenant, upload), derived_key(tenant, upload, "a")):
        check_key(key)


@pytest.mark.parametrize(
    "name", ["", "Thumb.png", ".hidden", "-dash", "a/b", "a" * 65, "..", "x y", "é"]
)
def test_derived_names_are_restricted(name: str) -> None:
    with pytest.raises(ValueError, match="derived name"):
        derived_key(TENANT, uuid.uuid4(), name)


def test_key_helpers_take_only_uuids() -> None:
    with pytest.raises(TypeError):
        upload_key(TENANT, "../../etc")  # type: ignore[arg-type]
