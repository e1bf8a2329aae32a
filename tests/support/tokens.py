"""Hand-made tokens, for checking that the API refuses what it should."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core.identity.credentials import TokenType, create_token
from core.settings import Settings


def access_token(
    settings: Settings, user_id: uuid.UUID, session_id: uuid.UUID | None = None
) -> str:
    """A correctly signed access token, for a user or session that may not exist."""
    return create_token(
        settings, TokenType.ACCESS, user_id, session_id or uuid.uuid4(), timedelta(minutes=5)
    )
