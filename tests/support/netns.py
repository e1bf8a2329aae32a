"""Test hosts: network namespaces on this machine, each joined to it by a veth pair, so
a process "on another host" reaches the servers only across a link the test can cut.
Traffic stays between this machine and its own test hosts."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

from tests.support import services
from tests.support.tcp_proxy import TcpProxy


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


def available() -> None:
    """Skip (fail in CI) where namespaces cannot be made: not root, or no iproute2."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        services.unavailable("test hosts need root and iproute2 (ip netns)")
    probe = f"cvp{uuid.uuid4().hex[:8]}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        services.unavailable(f"ip netns does not work here: {exc.stderr.decode().strip()}")
    _ip("netns", "del", probe)


class TestHost:
    """A namespace with one link to this machine: `10.a.b.2` there, `10.a.b.1` here."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = f"cv{tag}"
        self._outside = f"cv{tag}o"  # interface names: at most 15 characters
        inside = f"cv{tag}i"
        a, b = random.randrange(64, 250), random.randrange(0, 250)  # noqa: S311
        self.gateway = f"10.{a}.{b}.1"
        self.address = f"10.{a}.{b}.2"
        self._proxies: list[TcpProxy] = []
        _ip("netns", "add", self.name)
        _ip("link", "add", self._outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", self.name)
        _ip("addr", "add", f"{self.gateway}/30", "dev", self._outside)
        _ip("link", "set", self._outside, "up")
        self._inside("addr", "add", f"{self.address}/30", "dev", inside)
        self._inside("link", "set", inside, "up")
        self._inside("link", "set", "lo", "up")

    def _inside(self, *argv: str) -> None:
        _ip("netns", "exec", self.name, "ip", *argv)

    @property
    def prefix(self) -> tuple[str, ...]:
        """Runs a command on this host."""
        return ("ip", "netns", "exec", self.name)

    def reach(self, url: str) -> str:
        """The URL by which this host reaches a server this machine reaches at `url`
        (through a proxy listening on this machine's end of the link)."""
        parts = urlsplit(url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 0, self.gateway)
        proxy.start()
        self._proxies.append(proxy)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.gateway}:{proxy.port}"))

    def cut(self) -> None:
        """Its link goes dark: packets are dropped, nothing is refused or reset."""
        _ip("link", "set", self._outside, "down")

    def reconnect(self) -> None:
        _ip("link", "set", self._outside, "up")

    def remove(self) -> None:
        for proxy in self._proxies:
            proxy.stop()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self._outside], capture_output=True, timeout=30)
