"""Where the `conveyor` client commands find the API and who they are: CONVEYOR_URL and
CONVEYOR_API_KEY, or the login `conveyor login` stored in the user's config folder
(mode 0600, never on a command line). A stored login's access token is renewed with its
refresh token when it expires, under a file lock: each refresh token works once, and
two commands refreshing with the same one would end the session."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import AsyncGenerator, Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import platformdirs

from core.client import Client
from core.client.calls import refresh as refresh_call
from core.client.errors import from_response
from core.client.models import Tokens

DEFAULT_URL = "http://127.0.0.1:8000"
# Renewed this long before it expires, so a request does not race the clock.
EXPIRY_MARGIN_SECONDS = 30
# The renewal holds the lock every other command waits on: it must not hang.
REFRESH_TIMEOUT_SECONDS = 15.0


class NotLoggedIn(Exception):
    """Neither CONVEYOR_API_KEY nor a stored login for this URL (or one that cannot be
    read)."""


@dataclass
class Login:
    url: str
    email: str | None = None
    api_key: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None

    def with_tokens(self, tokens: Tokens) -> Login:
        return Login(
            self.url,
            self.email,
            None,
            tokens.access_token,
            tokens.refresh_token,
            time.time() + tokens.expires_in,
        )

    def same_session(self, other: Login) -> bool:
        return (self.url, self.email, self.api_key) == (other.url, other.email, other.api_key)


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/conveyor, ~/.config/conveyor by default (the platform's folder
    elsewhere)."""
    return platformdirs.user_config_path("conveyor")


def login_path() -> Path:
    return config_dir() / "login.json"


def load() -> Login | None:
    path = login_path()
    try:
        return Login(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise NotLoggedIn(f"the stored login {path} cannot be read ({exc}): log in again") from exc


def save(login: Login) -> None:
    """Written whole, 0600 from the start (never readable by others for a moment)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)  # also when it was there before, made by someone less careful
    temporary = folder / f".login.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(asdict(login), out)
    os.replace(temporary, login_path())


def forget() -> Login | None:
    with _locked():  # not while a command is storing a renewed login
        try:
            login = load()
        except NotLoggedIn:
            login = None
        login_path().unlink(missing_ok=True)
    return login


@contextmanager
def _locked() -> Iterator[None]:
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (folder / "login.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class StoredLogin(httpx.Auth):
    """The stored login's access token, renewed (and stored again) when it expires or
    the API answers 401. For the sync client only: the lock is a blocking file lock."""

    def __init__(self, login: Login) -> None:
        self._login = login

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError("StoredLogin is for the sync Client")
        yield request  # makes this an async generator, as httpx expects

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if self._expiring():
            yield from self._refresh(request)
        request.headers["Authorization"] = f"Bearer {self._login.access_token}"
        response = yield request
        if response.status_code == 401:
            yield from self._refresh(request)
            request.headers["Authorization"] = f"Bearer {self._login.access_token}"
            yield request

    def _expiring(self) -> bool:
        expires_at = self._login.expires_at or 0
        return expires_at - EXPIRY_MARGIN_SECONDS < time.time()

    def _refresh(self, _: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with _locked():
            try:
                stored = load()
            except NotLoggedIn:
                stored = None
            ours = stored is not None and stored.same_session(self._login)
            if ours and stored is not None and stored.access_token != self._login.access_token:
                self._login = stored  # another command renewed it meanwhile
                return
            if not self._login.refresh_token:
                return
            renew = httpx.Request(
                "POST",
                self._login.url + refresh_call(self._login.refresh_token).path,
                json={"refresh_token": self._login.refresh_token},
                extensions={"timeout": httpx.Timeout(REFRESH_TIMEOUT_SECONDS).as_dict()},
            )
            response = yield renew
            response.read()
            if response.is_error:
                raise from_response(response)
            self._login = self._login.with_tokens(Tokens.model_validate_json(response.content))
            # Stored only over the same login: a `conveyor login` elsewhere meanwhile
            # replaced it, and this command's renewal must not undo that.
            if ours:
                save(self._login)


def resolve(url: str | None) -> tuple[str, httpx.Auth | None, str | None]:
    """The API's URL and how to authenticate there: `--url`, CONVEYOR_URL, the stored
    login's URL, the dev default; then CONVEYOR_API_KEY, or the stored login for that
    URL. Raises NotLoggedIn when there is neither."""
    stored = load()
    chosen = (
        url or os.environ.get("CONVEYOR_URL") or (stored.url if stored else None) or DEFAULT_URL
    ).rstrip("/")
    key = os.environ.get("CONVEYOR_API_KEY")
    if key:
        return chosen, None, key
    if stored is None or stored.url != chosen:
        raise NotLoggedIn(
            f"not logged in to {chosen}: run `conveyor login` or set CONVEYOR_API_KEY"
        )
    if stored.api_key:
        return chosen, None, stored.api_key
    return chosen, StoredLogin(stored), None


def connect(url: str | None, tenant: str | None) -> Client:
    base, auth, key = resolve(url)
    return Client(
        base, api_key=key, auth=auth, tenant_id=tenant or os.environ.get("CONVEYOR_TENANT")
    )
