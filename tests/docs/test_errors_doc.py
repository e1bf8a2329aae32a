"""docs/errors.md lists every error code the API can return, with its HTTP status, and
every `error.type` a failed job can carry; nothing that does not exist."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from api.problems import _BY_STATUS
from core.errors import ErrorCode
from tests.docs.markdown import DOCS, REPO, code_cell, read, section, table_rows
from worker.errors import PermanentJobError

PAGE = DOCS / "errors.md"

# Where a job error's type is not a literal, but passed on from something else.
PASSED_ON = {
    # classify(): a PermanentJobError keeps the type it was raised with.
    ("worker/protocol.py", "exc.type"),
    # An agent run fails with the code of the ConveyorError texts_of() raised.
    ("worker/jobs/agents_run/execute.py", "exc.error.code"),
}
# The types those pass on that no literal names: texts_of() raises upload_has_no_text.
PASSED_ON_TYPES = {ErrorCode.UPLOAD_HAS_NO_TEXT.code}


def documented_api_codes() -> dict[str, int]:
    rows = table_rows(section(read(PAGE), "API error codes"))
    codes: dict[str, int] = {}
    for row in rows:
        code = code_cell(row[0])
        assert code is not None, f"errors.md: no `code` in row {row}"
        assert row[1].isdigit(), f"errors.md: no HTTP status in row {row}"
        assert code not in codes, f"errors.md lists {code!r} twice"
        codes[code] = int(row[1])
    return codes


def documented_job_errors() -> set[str]:
    rows = table_rows(section(read(PAGE), "Job errors"))
    types = [code_cell(row[0]) for row in rows]
    assert None not in types, f"errors.md: malformed job error rows {rows}"
    assert len(types) == len(set(types)), "errors.md lists a job error type twice"
    return {t for t in types if t is not None}


def test_every_api_error_code_is_listed_with_its_status() -> None:
    documented = documented_api_codes()
    actual = {error.code: error.http_status for error in ErrorCode}
    missing = sorted(set(actual) - set(documented))
    unknown = sorted(set(documented) - set(actual))
    wrong = sorted(
        f"{code}: listed {documented[code]}, answers {actual[code]}"
        for code in set(actual) & set(documented)
        if documented[code] != actual[code]
    )
    assert not missing, f"docs/errors.md lacks codes of core/errors.py ErrorCode: {missing}"
    assert not unknown, f"docs/errors.md lists codes ErrorCode does not have: {unknown}"
    assert not wrong, f"docs/errors.md gives the wrong HTTP status: {wrong}"


def test_framework_errors_map_onto_listed_codes() -> None:
    """What api/problems.py turns FastAPI's and Starlette's own errors into: request
    validation (422), unknown routes and methods, oversized bodies, anything else."""
    documented = documented_api_codes()
    mapped = {
        *_BY_STATUS.values(),
        ErrorCode.VALIDATION_FAILED,
        ErrorCode.BAD_REQUEST,
        ErrorCode.INTERNAL,
    }
    for error in mapped:
        assert documented.get(error.code) == error.http_status, error


def _job_error_types() -> Iterator[str]:
    """Every literal error type a worker or core module fails a job with: the first
    argument of `JobError(...)` and the `type=` of `PermanentJobError(...)`, with
    module-level string constants resolved; and PermanentJobError's default type."""
    sources = sorted((REPO / "worker").rglob("*.py")) + sorted((REPO / "core").rglob("*.py"))
    trees = {path: ast.parse(read(path)) for path in sources}
    constants = {
        target.id: node.value.value
        for tree in trees.values()
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    unresolved = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            value: ast.expr | None = None
            if name == "JobError" and node.args:
                value = node.args[0]
            elif name == "PermanentJobError":
                value = next((k.value for k in node.keywords if k.arg == "type"), None)
            if value is None:
                continue
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield value.value
            elif isinstance(value, ast.Name) and value.id in constants:
                yield constants[value.id]
            else:
                where = (path.relative_to(REPO).as_posix(), ast.unparse(value))
                if where not in PASSED_ON:
                    unresolved.append(where)
    assert not unresolved, f"job error types this test cannot read; list them: {unresolved}"
    yield PermanentJobError("").type
    yield from PASSED_ON_TYPES


def test_every_job_error_type_is_listed() -> None:
    documented = documented_job_errors()
    actual = set(_job_error_types())
    assert not actual - documented, (
        f"docs/errors.md (Job errors) lacks: {sorted(actual - documented)}"
    )
    assert not documented - actual, (
        f"docs/errors.md (Job errors) lists types no code raises: {sorted(documented - actual)}"
    )
