"""Property-based: whatever a client sends, within the OpenAPI document or outside it,
the API answers without a 5xx, and every error is problem+json."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.support.factories import create_user
from tests.support.stack import Stack


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_problem_json(
    app_client: TestClient, mode: GenerationMode, stack: Stack
) -> None:
    user = create_user(stack)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app_client.app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise here
        checked.append(operation.label)

        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            headers = {**user.headers, **(case.headers or {})}
            headers.pop("accept", None)
            headers.pop("Accept", None)
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] in (
                    "application/problem+json",
                    ["application/problem+json"],
                )
                assert response.json()["code"]

        try:
            check()
        except Unsatisfiable:
            # Nothing invalid can be built for an operation without inputs (GET /).
            assert mode is GenerationMode.NEGATIVE
    assert "POST /api/v1/jobs" in checked
