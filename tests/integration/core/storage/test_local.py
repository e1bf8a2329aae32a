"""The local-disk adapter's own part."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.storage import (
    StorageError,
)
from core.storage.local import LocalStorage


def test_local_ping_fails_without_the_folder(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "absent")
    with pytest.raises(StorageError):
        store.ping()
    store.ensure_bucket()
    store.ping()
