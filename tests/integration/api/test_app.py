"""`/docs` and `/redoc` work without internet: every script, stylesheet and icon the
pages load is served by the API itself, and the pages name no other host."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

# Attributes through which a page makes the browser fetch something.
FETCHED = {"src", "href", "spec-url", "data", "poster", "srcset", "action"}
# Anything that looks like an absolute or protocol-relative URL, anywhere in the page.
ABSOLUTE_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//[^\s\"'<>]+", re.IGNORECASE)


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in FETCHED and value:
                self.found.append((tag, name, value))


def _references(html: str) -> list[tuple[str, str, str]]:
    parser = _References()
    parser.feed(html)
    parser.close()
    return parser.found


@pytest.mark.parametrize(
    ("page", "library", "stylesheet"),
    [("/docs", "SwaggerUIBundle", True), ("/redoc", "Redoc", False)],
)
def test_docs_pages_load_only_assets_served_by_the_api(
    app_client: TestClient, page: str, library: str, stylesheet: bool
) -> None:
    response = app_client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    page_url = str(response.url)
    origin = urlsplit(page_url)[:2]

    assert ABSOLUTE_URL.findall(html) == [], "the page names another host"
    references = _references(html)
    scripts = [value for tag, name, value in references if tag == "script" and name == "src"]
    stylesheets = [value for tag, name, value in references if tag == "link" and ".css" in value]
    assert scripts, f"{page} loads no script: {html}"
    assert bool(stylesheets) == stylesheet, stylesheets

    bodies: dict[str, bytes] = {}
    for tag, name, value in references:
        url = urljoin(page_url, value)
        assert urlsplit(url)[:2] == origin, f"<{tag} {name}={value!r}> leaves the API"
        asset = app_client.get(url)
        assert asset.status_code == 200, f"{url}: {asset.status_code}"
        assert asset.content, f"{url} is empty"
        bodies[value] = asset.content

    # The files are the real libraries, not placeholders.
    assert library.encode() in b"".join(bodies[src] for src in scripts)
    for href in stylesheets:
        assert b".swagger-ui" in bodies[href]


def test_swagger_ui_finds_the_schema_and_its_oauth2_redirect_on_the_api(
    app_client: TestClient,
) -> None:
    """What the Swagger page's own script fetches: the OpenAPI schema, and the OAuth2
    redirect page (which also names no other host)."""
    html = app_client.get("/docs").text
    schema_url = re.search(r"url: '([^']+)'", html)
    assert schema_url is not None, html
    schema = app_client.get(schema_url.group(1))
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Conveyor"

    redirect = re.search(r"window\.location\.origin \+ '([^']+)'", html)
    assert redirect is not None, html
    page = app_client.get(redirect.group(1))
    assert page.status_code == 200
    assert ABSOLUTE_URL.findall(page.text) == []
