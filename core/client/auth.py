"""How requests say who is calling."""

from __future__ import annotations

from collections.abc import Generator

import httpx


class Bearer(httpx.Auth):
    """An access token or an API key (`cvk_…`). An auth flow, not a default header, so
    it goes only to the API: a presigned upload URL never sees it."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def choose(api_key: str | None, token: str | None, auth: httpx.Auth | None) -> httpx.Auth | None:
    given = [value for value in (api_key, token, auth) if value is not None]
    if len(given) > 1:
        raise ValueError("give one of api_key, token and auth")
    if api_key is not None or token is not None:
        return Bearer(api_key or token or "")
    return auth
