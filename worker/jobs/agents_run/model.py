"""The model a run talks to: OpenAI, or any OpenAI-compatible server.

A client per run, closed when the run ends: an `AsyncOpenAI` holds an HTTP pool bound
to the event loop that first used it, and each run has a loop of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agents import (
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    set_tracing_export_api_key,
)
from openai import AsyncOpenAI

from core.settings import OpenAIApi, Settings

# A compatible server at OPENAI_BASE_URL may need no key; the client insists on one.
NO_KEY = "unused"


@asynccontextmanager
async def open_model(settings: Settings) -> AsyncIterator[Model]:
    key = settings.openai_api_key
    client = AsyncOpenAI(
        api_key=key.get_secret_value() if key is not None else NO_KEY,
        base_url=settings.openai_base_url,
        timeout=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
    )
    try:
        if settings.openai_api is OpenAIApi.CHAT_COMPLETIONS:
            yield OpenAIChatCompletionsModel(model=settings.openai_model, openai_client=client)
        else:
            yield OpenAIResponsesModel(model=settings.openai_model, openai_client=client)
    finally:
        await client.close()


def tracing_enabled(settings: Settings) -> bool:
    """Traces go to OpenAI with the configured key, never the environment's (which may
    be missing, or belong to another server): no key, no tracing."""
    key = settings.openai_api_key
    if not settings.openai_tracing or key is None or settings.openai_base_url is not None:
        return False
    set_tracing_export_api_key(key.get_secret_value())
    return True
