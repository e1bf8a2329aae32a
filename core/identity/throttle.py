"""Rate limits on logins, password resets, registrations and invitations.

Sliding windows in the key-value store. An account's attempts are counted per client
IP: a stranger failing logins from elsewhere can neither lock the owner out nor block
their password reset, and nothing is stored on the account itself. Every client IP is
limited across all accounts as well. An IPv6 client counts as its /64: one host or
household gets a whole /64, so counting single addresses would count nothing.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

from core.errors import ConveyorError, ErrorCode
from core.identity.accounts import normalize_email
from core.identity.credentials import sha256_hex
from core.kv import KeyValueStore
from core.settings import Settings


class Action(StrEnum):
    LOGIN = "login"
    RESET = "reset"
    RESET_CONFIRM = "reset-confirm"
    PASSWORD_CHANGE = "password-change"  # noqa: S105 - an action name, not a password
    REGISTER = "register"
    INVITE = "invite"
    CREATE_TENANT = "create-tenant"


Rule = tuple[str, int, float]  # key, limit, window in seconds


def _rules(
    settings: Settings, action: Action, client_ip: str, subject: str, within: str
) -> list[Rule]:
    """`subject` is whom the attempt is about: an email, a user id, or for invitations
    the invited email; `within` the tenant an invitation comes from."""
    client = client_key(client_ip)
    account = f"{action}:account:{sha256_hex(normalize_email(subject))}:{client}"
    per_ip = f"{action}:ip:{client}"
    if action in (Action.LOGIN, Action.PASSWORD_CHANGE):
        window = settings.login_window_seconds
        return [
            (per_ip, settings.login_limit_per_ip, window),
            (account, settings.login_limit_per_account, window),
        ]
    if action in (Action.RESET, Action.RESET_CONFIRM):
        per_account = settings.reset_limit_per_account
        if action is Action.RESET_CONFIRM:
            # Each code already dies after its wrong tries; this bounds guesses across codes.
            per_account *= settings.password_reset_max_tries
        window = settings.reset_window_seconds
        return [(per_ip, settings.reset_limit_per_ip, window), (account, per_account, window)]
    if action is Action.REGISTER:
        return [(per_ip, settings.register_limit_per_ip, settings.register_window_seconds)]
    if action is Action.CREATE_TENANT:  # subject: the user's id, wherever they are
        return [(f"{action}:user:{subject}", settings.tenant_limit_per_user, 86400.0)]
    # Invitations send email to addresses the inviter chooses: bound what one tenant can
    # send one address. Per tenant, so that no one can use up another tenant's sends.
    recipient = f"{action}:recipient:{within}:{sha256_hex(normalize_email(subject))}"
    window = settings.invite_window_seconds
    return [
        (per_ip, settings.invite_limit_per_ip, window),
        (recipient, settings.invite_limit_per_recipient, window),
    ]


def _known_key(client_ip: str, email: str, credential: str) -> str:
    # Bound to the password's hash: a new password (a reset after a takeover) forgets
    # every client the old one let in.
    account = sha256_hex(f"{normalize_email(email)}\n{credential}")
    return f"login:known:{account}:{client_key(client_ip)}"


def check_login(
    kv: KeyValueStore, settings: Settings, client_ip: str, email: str, credential: str
) -> None:
    """The login limits: per client, per account from one client, and per account from
    all the clients that never logged in to it with this password (`credential`: the
    stored hash, "" for an address with no account). Past the last one the owner is
    not locked out: the answer asks them to confirm this client by email
    (`client_verification`)."""
    check(kv, settings, Action.LOGIN, client_ip, email)
    if kv.remembers(_known_key(client_ip, email, credential)):
        return
    wait = kv.hit(
        f"login:unfamiliar:{sha256_hex(normalize_email(email))}",
        settings.login_limit_per_account_unfamiliar,
        settings.login_window_seconds,
    )
    if wait is not None:
        raise ConveyorError(ErrorCode.CLIENT_VERIFICATION_REQUIRED, retry_after=wait)


def remember_client(
    kv: KeyValueStore, settings: Settings, client_ip: str, email: str, credential: str
) -> None:
    """The client proved it may use the account (a login, a code from the account's
    email): its logins to it are no longer counted with strangers'."""
    key = _known_key(client_ip, email, credential)
    kv.remember(key, settings.login_known_client_days * 86400)


def client_key(client_ip: str) -> str:
    """What a client's attempts are counted under: an IPv4 address, an IPv6 /64."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip  # not an address (a test client, a proxy's placeholder)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def check(
    kv: KeyValueStore,
    settings: Settings,
    action: Action,
    client_ip: str,
    subject: str,
    *,
    within: str = "",
) -> None:
    """Count this attempt, or raise 429 with the seconds until one is allowed.

    Keys use a digest of the email whether or not an account exists, so a 429 says
    nothing about which emails are registered. Invitations are counted once they are
    allowed and about to be sent, `within` their tenant.
    """
    for key, limit, window in _rules(settings, action, client_ip, subject, within):
        wait = kv.hit(key, limit, window)
        if wait is not None:
            raise ConveyorError(ErrorCode.TOO_MANY_REQUESTS, retry_after=wait)
