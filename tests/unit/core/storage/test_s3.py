"""The S3 client resolves its URLs without botocore's endpoint table (which it does not
load): from the endpoint rule set for AWS, and from S3_ENDPOINT_URL for the others.
Presigning contacts nothing, so these need no server."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from core.settings import Environment, S3AddressingStyle, Settings
from core.storage.s3 import S3Storage

KEY = "tenants/00000000-0000-4000-8000-000000000001/uploads/x/original"


def presigned_host(**settings: object) -> str:
    storage = S3Storage(
        Settings(
            environment=Environment.TEST,
            do_spaces_bucket="conveyor-files",
            do_spaces_key="AKIAEXAMPLE",
            do_spaces_secret="secret",
            # Explicit, so the environment (the test stack's S3 server) plays no part.
            **{
                "s3_endpoint_url": None,
                "s3_addressing_style": S3AddressingStyle.AUTO,
                **settings,
            },  # type: ignore[arg-type]
        )
    )
    url = storage.presign_get(KEY, 60, "a.txt", "text/plain")
    assert url is not None
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    return urlsplit(url).netloc


@pytest.mark.parametrize(
    ("settings", "host"),
    [
        ({"s3_region": "eu-west-1"}, "conveyor-files.s3.eu-west-1.amazonaws.com"),
        ({"s3_region": "us-east-1"}, "conveyor-files.s3.us-east-1.amazonaws.com"),
        (
            {"s3_region": "eu-central-1", "s3_addressing_style": S3AddressingStyle.PATH},
            "s3.eu-central-1.amazonaws.com",
        ),
        # A custom endpoint is path-style unless asked otherwise, as botocore has it.
        (
            {"s3_region": "nyc3", "s3_endpoint_url": "https://nyc3.digitaloceanspaces.com"},
            "nyc3.digitaloceanspaces.com",
        ),
        (
            {
                "s3_region": "nyc3",
                "s3_endpoint_url": "https://nyc3.digitaloceanspaces.com",
                "s3_addressing_style": S3AddressingStyle.VIRTUAL,
            },
            "conveyor-files.nyc3.digitaloceanspaces.com",
        ),
        (
            {
                "s3_region": "us-east-1",
                "s3_endpoint_url": "http://127.0.0.1:9000",
                "s3_addressing_style": S3AddressingStyle.PATH,
            },
            "127.0.0.1:9000",
        ),
    ],
)
def test_urls_resolve_without_the_endpoint_table(settings: dict[str, object], host: str) -> None:
    assert presigned_host(**settings) == host
