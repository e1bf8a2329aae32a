"""Where a webhook may be sent: the URL's form, and the addresses its host resolves to.

Checked when an endpoint is saved and again for every connection (the delivering
worker connects only to an address checked here), so a name that resolved to a public
address at creation and to an internal one later (DNS rebinding) is refused too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from core.errors import ConveyorError, ErrorCode

MAX_URL_LENGTH = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services, refused whatever the settings: they hand out the
# host's credentials. Most are link-local, refused as such; these are not.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, DigitalOcean, OpenStack
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
# Carrier-grade NAT space: private in practice, though `ipaddress` calls it neither.
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook must not go to `address`, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None or address.teredo is not None:
            # Tunnels that reach an IPv4 address inside them: judged by that address
            # by some Python versions and not others, so never trusted.
            return "a tunnelling address"
        elif address.is_site_local:
            return "a reserved address"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    # ::1 sits in a reserved block too: loopback is judged below, as loopback.
    reserved = address.is_reserved and not address.is_loopback
    if address.is_multicast or address.is_unspecified or reserved:
        return "a reserved address"
    if address.is_global and address not in SHARED_SPACE:
        return None
    if allow_private and (address.is_loopback or address.is_private or address in SHARED_SPACE):
        return None
    return "a loopback or private address"


def parse(url: str, *, allow_http: bool) -> Target:
    """The URL's parts, if it is one a webhook may use; else a 422."""
    if len(url) > MAX_URL_LENGTH:
        raise _refused(f"The URL is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or _SPACE_OR_CONTROL.search(url):
        raise _refused(
            "The URL must be ASCII with no spaces or control characters: "
            "percent-encode its path and give an international host in punycode (xn--)"
        )
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refused(f"The URL is not valid: {exc}") from exc
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        raise _refused("The URL must use https" if not allow_http else "The URL must be http(s)")
    if not parts.hostname:
        raise _refused("The URL has no host")
    if parts.username is not None or parts.password is not None:
        raise _refused("The URL must not hold credentials: the signature authenticates")
    if parts.fragment:
        raise _refused("The URL must not have a fragment")
    default = 443 if parts.scheme == "https" else 80
    return Target(url=url, scheme=parts.scheme, host=parts.hostname, port=port or default)


def resolve(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Every address `host` resolves to, if each may be sent to; else a 422. One bad
    address refuses them all: a name pointing both inside and out is not trusted."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise _refused(f"The host {host!r} does not resolve") from exc
        found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    for address in found:
        why = refusal(address, allow_private=allow_private)
        if why is not None:
            # Not the address itself: a tenant must not learn how internal names resolve.
            raise _refused(f"The host {host!r} resolves to {why}")
    return found


def check(url: str, *, allow_http: bool, allow_private: bool) -> Target:
    target = parse(url, allow_http=allow_http)
    resolve(target.host, target.port, allow_private=allow_private)
    return target


def _refused(detail: str) -> ConveyorError:
    return ConveyorError(ErrorCode.WEBHOOK_URL_REFUSED, detail)
