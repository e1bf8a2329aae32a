"""Choosing and configuring storage, and what the interface promises without a server."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.settings import ConfigurationError, Settings
from core.storage import (
    StorageError,
    content_disposition,
    open_storage,
)
from core.storage.local import LocalStorage
from core.storage.s3 import S3Storage

STORAGE_VARIABLES = (
    "DO_SPACES_BUCKET",
    "DO_SPACES_KEY",
    "DO_SPACES_SECRET",
    "S3_ENDPOINT_URL",
    "S3_REGION",
    "ENVIRONMENT",
    "SECRET_KEY",
)


def local_settings(data_dir: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        **{"environment": "test", "data_dir": data_dir, "do_spaces_bucket": None, **values},
    )


def test_storage_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(StorageError("boom", transient=True, not_found=True)))
    assert (str(error), error.transient, error.not_found) == ("boom", True, True)


def test_production_without_a_bucket_refuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        _env_file=None, environment="production", secret_key="k" * 48, data_dir=tmp_path
    )
    with pytest.raises(ConfigurationError, match="DO_SPACES_BUCKET"):
        open_storage(settings)


def test_dev_without_a_bucket_uses_local_disk(tmp_path: Path) -> None:
    store = open_storage(local_settings(tmp_path, do_spaces_bucket=""))
    assert isinstance(store, LocalStorage)
    assert store.root == tmp_path.resolve() / "storage"


def test_the_seed_variables_choose_s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DO_SPACES_BUCKET", "media")
    monkeypatch.setenv("DO_SPACES_KEY", "DO00EXAMPLE")
    monkeypatch.setenv("DO_SPACES_SECRET", "not-a-real-secret")
    monkeypatch.setenv("S3_ENDPOINT_URL", "https://nyc3.digitaloceanspaces.com")
    monkeypatch.setenv("S3_REGION", "nyc3")
    settings = Settings(
        _env_file=None, environment="production", secret_key="k" * 48, data_dir=tmp_path
    )
    store = open_storage(settings)
    assert isinstance(store, S3Storage)
    assert store.bucket == "media"
    assert "not-a-real-secret" not in repr(settings)


@pytest.mark.parametrize("mib", [4, 65])
def test_part_size_stays_within_what_s3_allows(mib: int, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="s3_part_size_mib"):
        local_settings(tmp_path, s3_part_size_mib=mib)


def test_content_disposition() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    assert content_disposition('a"b\\c/d\r\n.txt') == 'attachment; filename="a_b_c_d.txt"'
    assert content_disposition("") == 'attachment; filename="download"'
    assert content_disposition("Résumé.pdf") == (
        "attachment; filename=\"R_sum_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"
    )
