"""JSON: its shape summarised, never loaded whole past a bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.processing import peak_growth, run
from worker.jobs.uploads_process import json_file


def test_json_object(tmp_path: Path) -> None:
    document = {f"key{i}": i for i in range(150)} | {"nested": {"a": [1, 2]}}
    processed, _ = run(tmp_path, "data.json", json.dumps(document).encode())
    summary = processed.summary
    assert processed.kind == "json"
    assert summary["valid"] is True
    assert summary["parsed"] is True
    assert summary["top_level_type"] == "object"
    assert summary["key_count"] == 151
    assert summary["keys"][:2] == ["key0", "key1"]
    assert len(summary["keys"]) == 100


def test_json_array(tmp_path: Path) -> None:
    document = [1, 2.5, "three", None, True, {"a": 1}, [1]]
    processed, _ = run(tmp_path, "list.json", json.dumps(document).encode())
    summary = processed.summary
    assert summary["top_level_type"] == "array"
    assert summary["length"] == 7
    assert summary["element_types"] == [
        "number",
        "number",
        "string",
        "null",
        "boolean",
        "object",
        "array",
    ]


def test_invalid_json_is_a_result(tmp_path: Path) -> None:
    content = '{\n  "name": "Ada",\n  "age": ,\n  "city": "London"\n}\n'
    processed, _ = run(tmp_path, "broken.json", content.encode())
    assert processed.kind == "json"
    assert processed.summary["valid"] is False
    assert processed.summary["error"] == {"line": 3, "column": 10, "message": "Expecting value"}


def test_large_json_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_file, "MAX_PARSE_BYTES", 1024)
    content = json.dumps([{"id": i} for i in range(500)]).encode()
    processed, _ = run(tmp_path, "big.json", content)
    summary = processed.summary
    assert summary["parsed"] is False
    assert summary["valid"] is None
    assert summary["top_level_type"] == "array"
    assert summary["size"] == len(content)
    assert "only the start was read" in summary["reason"]


def json_of_empty_items(item: str, size: int) -> bytes:
    """An array of `item` ({} or []) as long as fits in `size` bytes: the JSON that
    takes most memory per byte once parsed, short of deep nesting."""
    count = (size - 2) // (len(item) + 1)
    return b"[" + b",".join([item.encode()] * count) + b"]"


def test_json_over_the_limit_is_not_parsed(tmp_path: Path) -> None:
    data = json_of_empty_items("{}", json_file.MAX_PARSE_BYTES + 8)
    assert len(data) > json_file.MAX_PARSE_BYTES
    processed, _ = run(tmp_path, "many.json", data)
    assert processed.summary["parsed"] is False
    assert processed.summary["reason"] == "larger than 4 MiB: only the start was read"


@pytest.mark.parametrize("item", ["{}", "[]"])
def test_json_parse_at_the_limit_stays_bounded(tmp_path: Path, item: str) -> None:
    path = tmp_path / "many.json"
    path.write_bytes(json_of_empty_items(item, json_file.MAX_PARSE_BYTES))
    outcome, grown = peak_growth(path, "application/json")
    assert outcome == "json"
    assert grown < 160  # MiB; measured about 105 (and 1.6 GB for 63 MiB before)
