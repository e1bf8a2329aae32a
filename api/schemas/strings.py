"""Strings PostgreSQL can store: text and JSONB refuse NUL characters, so they are a
client error here rather than a database error later."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# NUL, and halves of a surrogate pair (JSON's "\ud800" escapes): PostgreSQL stores
# neither.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain unpaired surrogates")
    return value


NulFreeStr = Annotated[str, AfterValidator(_no_nul)]

# A display name: surrounding whitespace dropped, so a blank name is an empty one.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]


# A team's name goes into the email Conveyor sends to people it invites: nothing in it
# may read as a link (mail clients make one of a bare domain too) or start a new line.
_LINK = re.compile(
    r"[a-z][a-z0-9+.-]*:/|www\.|@|\b[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}\b", re.IGNORECASE
)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _plain_name(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain line breaks or control characters")
    if _LINK.search(value):
        raise ValueError("must not contain a link, a domain name or an email address")
    return value


TeamName = Annotated[Name, AfterValidator(_plain_name)]
