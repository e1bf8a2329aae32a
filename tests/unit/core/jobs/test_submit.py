from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from core.jobs.submit import MAX_INPUT_DEPTH, find_unstorable


def _nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["n"] = {}
        node = node["n"]
    return root


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, {"b": "x\x00"}]}, ("input.a.1.b", "must not contain NUL characters")),
        ({"a": {"k\x00": 1}}, ("input.a.'k\\x00'", "must not contain NUL characters")),
        (["ok", "\ud800"], ("input.1", "must not contain unpaired surrogates")),
        (
            _nested(MAX_INPUT_DEPTH + 5),
            ("input" + ".n" * (MAX_INPUT_DEPTH + 1), f"nests deeper than {MAX_INPUT_DEPTH} levels"),
        ),
        ({"fine": [[], {}, "text", 1, None]}, None),
        (_nested(MAX_INPUT_DEPTH), None),
    ],
)
def test_the_field_with_a_problem_is_named_by_its_path(
    value: Any, expected: tuple[str, str] | None
) -> None:
    assert find_unstorable(value, "input") == expected


def test_a_large_clean_input_is_walked_without_building_paths() -> None:
    # 1 MiB of `[[],[],...]` once cost seconds of API time building a path string for
    # each element before any error existed. Memory is the deterministic witness.
    value: dict[str, list[list[int]]] = {"a": [[] for _ in range(200_000)]}
    tracemalloc.start()
    try:
        assert find_unstorable(value, "input") is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak
