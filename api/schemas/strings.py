"""Strings PostgreSQL can store: text and JSONB refuse NUL characters, so they are a
client error here rather than a database error later."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NulFreeStr = Annotated[str, AfterValidator(_no_nul)]

# A display name: surrounding whitespace dropped, so a blank name is an empty one.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]
