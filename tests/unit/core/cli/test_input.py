from __future__ import annotations

import io
from pathlib import Path

import pytest

from core.cli.jobs import BadInput, parse_input


def test_input_is_json_a_file_or_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_input('{"a": 1}') == {"a": 1}
    (tmp_path / "in.json").write_text('{"from": "file"}')
    assert parse_input(f"@{tmp_path}/in.json") == {"from": "file"}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"from": "stdin"}'))
    assert parse_input("@-") == {"from": "stdin"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{oops", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("@/no/such/file.json", "No such file"),
    ],
)
def test_anything_else_is_refused_before_a_request(text: str, says: str) -> None:
    with pytest.raises(BadInput, match=says):
        parse_input(text)
