"""JSON: valid or not (and where it breaks), and the shape of the top level.

A document that does not parse is a result, not a failure: saying where it breaks is
what the uploader wants to know. Files over MAX_PARSE_BYTES are not loaded whole.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from worker.jobs.uploads_process.classify import reading
from worker.jobs.uploads_process.results import Processed, Progress
from worker.jobs.uploads_process.text import file_encoding

# Parsed JSON takes many times its size in memory: [{},{},...] and [[],[],...] 25 times,
# nested arrays ([[[[]]]],...) over 40, every "[]" a list object. At 4 MiB the worst of
# them takes some 180 MB over what the worker holds already (105 MB for [{},{},...]);
# 63 MiB of [{},{},...] took 1.6 GB.
MAX_PARSE_BYTES = 4 << 20
HEAD_BYTES = 64 * 1024
MAX_KEYS = 100
FIRST_ELEMENTS = 20
KEY_CHARS = 200

_TYPE_BY_FIRST_CHAR = {"{": "object", "[": "array", '"': "string", "t": "boolean"}
_TYPE_BY_FIRST_CHAR |= {"f": "boolean", "n": "null", "-": "number"}
_TYPE_BY_FIRST_CHAR |= dict.fromkeys("0123456789", "number")


def process(path: Path, progress: Progress) -> Processed:
    size = path.stat().st_size
    encoding = file_encoding(path, "JSON")
    summary: dict[str, Any] = {"encoding": encoding, "size": size}
    if size > MAX_PARSE_BYTES:
        summary |= _unparsed(path, encoding)
        return Processed(kind="json", summary=summary, derived=[])
    with reading(f"Could not read the JSON file as {encoding}", path):
        text = path.read_bytes().decode(encoding)
    progress(0.5, "Parsing the JSON")
    with reading("Could not parse the JSON file", path):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            error = {"line": exc.lineno, "column": exc.colno, "message": exc.msg}
            summary |= {"valid": False, "parsed": True, "error": error}
            return Processed(kind="json", summary=summary, derived=[])
        except RecursionError:
            summary |= {"valid": None, "parsed": False, "reason": "nested too deeply to parse"}
            return Processed(kind="json", summary=summary, derived=[])
    summary |= {"valid": True, "parsed": True, "top_level_type": json_type(value)}
    if isinstance(value, dict):
        summary["key_count"] = len(value)
        summary["keys"] = [key[:KEY_CHARS] for key in list(value)[:MAX_KEYS]]
    elif isinstance(value, list):
        summary["length"] = len(value)
        summary["element_types"] = [json_type(item) for item in value[:FIRST_ELEMENTS]]
    return Processed(kind="json", summary=summary, derived=[])


def json_type(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _unparsed(path: Path, encoding: str) -> dict[str, Any]:
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    with reading(f"Could not read the JSON file as {encoding}", path):
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
    stripped = text.lstrip()
    return {
        "valid": None,
        "parsed": False,
        "reason": f"larger than {MAX_PARSE_BYTES >> 20} MiB: only the start was read",
        "top_level_type": _TYPE_BY_FIRST_CHAR.get(stripped[:1], "unknown"),
    }
