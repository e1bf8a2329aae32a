"""Rate limits on login and password reset, per client IP and per account.

Sliding windows in the key-value store. Nothing is stored on the account itself: a
limited account is usable again as soon as its window slides, never locked.
"""

from __future__ import annotations

from enum import StrEnum

from core.accounts import normalize_email
from core.errors import ConveyorError, ErrorCode
from core.kv import KeyValueStore
from core.security import sha256_hex
from core.settings import Settings


class Action(StrEnum):
    LOGIN = "login"
    RESET = "reset"
    RESET_CONFIRM = "reset-confirm"


def _limits(settings: Settings, action: Action) -> tuple[int, int, float]:
    if action is Action.LOGIN:
        return (
            settings.login_limit_per_ip,
            settings.login_limit_per_account,
            settings.login_window_seconds,
        )
    per_account = settings.reset_limit_per_account
    if action is Action.RESET_CONFIRM:
        # Each code already dies after its wrong tries; this bounds guesses across codes.
        per_account *= settings.password_reset_max_tries
    return settings.reset_limit_per_ip, per_account, settings.reset_window_seconds


def check(
    kv: KeyValueStore, settings: Settings, action: Action, client_ip: str, email: str
) -> None:
    """Count this attempt, or raise 429 with the seconds until one is allowed.

    The account is keyed by a digest of the email whether or not an account exists,
    so a 429 says nothing about which emails are registered.
    """
    per_ip, per_account, window = _limits(settings, action)
    for key, limit in (
        (f"{action}:ip:{client_ip}", per_ip),
        (f"{action}:account:{sha256_hex(normalize_email(email))}", per_account),
    ):
        wait = kv.hit(key, limit, window)
        if wait is not None:
            raise ConveyorError(ErrorCode.TOO_MANY_REQUESTS, retry_after=wait)
