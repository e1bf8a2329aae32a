"""Local-disk storage refuses keys and prefixes that could leave its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.storage import (
    check_key,
)
from core.storage.local import LocalStorage


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside",
        "a/../../outside",
        "a/./b",
        "a//b",
        "a/b/",
        "a\\..\\b",
        "nul\x00byte",
        "line\nbreak",
        ".meta/a",
        "a/.tmp-x",
        "k" * 1025,
    ],
)
def test_keys_that_could_escape_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^key"):
        check_key(key)
    local = LocalStorage(tmp_path)
    with pytest.raises(ValueError, match="^key"):
        local.path_of(key)
    with pytest.raises(ValueError, match="^key"):
        local.put_bytes(key, b"x", "text/plain")
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "tenants").symlink_to(outside)
    with pytest.raises(ValueError, match="leaves"):
        LocalStorage(root).path_of("tenants/x")


@pytest.mark.parametrize("prefix", ["", "tenants", "/", "../", "tenants//"])
def test_prefixes_are_checked(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^prefix"):
        LocalStorage(tmp_path).delete_prefix(prefix)
