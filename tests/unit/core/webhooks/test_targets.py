"""Which URLs and addresses webhooks may be sent to."""

from __future__ import annotations

import ipaddress

import pytest

from core.errors import ConveyorError
from core.webhooks import targets


@pytest.mark.parametrize(
    ("address", "strict", "relaxed"),
    [
        ("93.184.215.14", None, None),
        ("2606:4700::1111", None, None),
        ("127.0.0.1", "a loopback or private address", None),
        ("::1", "a loopback or private address", None),
        ("10.1.2.3", "a loopback or private address", None),
        ("172.31.255.1", "a loopback or private address", None),
        ("192.168.0.1", "a loopback or private address", None),
        ("100.64.1.1", "a loopback or private address", None),
        ("fd12:3456::1", "a loopback or private address", None),
        ("::ffff:10.0.0.1", "a loopback or private address", None),
        ("169.254.169.254", "a cloud metadata address", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address", "a cloud metadata address"),
        ("169.254.10.10", "a link-local address", "a link-local address"),
        ("fe80::1", "a link-local address", "a link-local address"),
        ("::ffff:169.254.169.254", "a cloud metadata address", "a cloud metadata address"),
        ("0.0.0.0", "a reserved address", "a reserved address"),  # noqa: S104 - a test value
        ("239.1.1.1", "a reserved address", "a reserved address"),
        ("240.0.0.1", "a reserved address", "a reserved address"),
        ("2002:7f00:1::", "a tunnelling address", "a tunnelling address"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a tunnelling address", "a tunnelling address"),
        ("fec0::1", "a reserved address", "a reserved address"),
        ("64:ff9b::a9fe:a9fe", "a reserved address", "a reserved address"),
    ],
)
def test_refusal(address: str, strict: str | None, relaxed: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert targets.refusal(ip, allow_private=False) == strict
    assert targets.refusal(ip, allow_private=True) == relaxed


def test_https_only_unless_http_is_allowed() -> None:
    with pytest.raises(ConveyorError, match="must use https"):
        targets.parse("http://example.com/hook", allow_http=False)
    assert targets.parse("https://example.com/hook", allow_http=False).port == 443
    assert targets.parse("http://example.com:8080/hook", allow_http=True).port == 8080


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://a:b@example.com/", "credentials"),
        ("https://example.com/#x", "fragment"),
        ("https:///x", "no host"),
        ("https://example.com:70000/", "not valid"),
        ("gopher://example.com/", "https"),
        ("https://bücher.example/", "ASCII"),
        ("https://example.com/a b", "ASCII"),
        ("https://example.com/\tx", "ASCII"),
    ],
)
def test_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(ConveyorError, match=message):
        targets.parse(url, allow_http=False)


def test_one_bad_address_among_several_refuses_the_name() -> None:
    with pytest.raises(ConveyorError, match="resolves to a loopback"):
        targets.resolve("localhost", 80, allow_private=False)
    assert targets.resolve("localhost", 80, allow_private=True)


def test_production_takes_https_only_and_dev_takes_http_too() -> None:
    from core.settings import Environment, Settings
    from core.webhooks.endpoints import check_url

    dev = Settings(environment=Environment.DEV, webhook_allow_private_targets=True)
    production = dev.model_copy(update={"environment": Environment.PRODUCTION})
    check_url(dev, "http://127.0.0.1:8080/hook")
    with pytest.raises(ConveyorError, match="must use https"):
        check_url(production, "http://127.0.0.1:8080/hook")
    check_url(production, "https://127.0.0.1:8080/hook")
