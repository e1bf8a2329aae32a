"""Tools over the run's uploads. Each reaches only the library of its run, which holds
only the uploads the run names, all of the job's tenant."""

from __future__ import annotations

import json

from agents import RunContextWrapper, function_tool

from worker.jobs.agents_run.workflows.deps import RunDeps


@function_tool
def read_page(ctx: RunContextWrapper[RunDeps], upload_id: str, page: int) -> str:
    """Read one page of an upload's text.

    Args:
        upload_id: The upload to read, as given in the task.
        page: The page number, from 1.
    """
    document = ctx.context.library.get(upload_id)
    if document is None:
        return json.dumps({"error": "no such upload in this task"})
    return json.dumps(document.page(page), ensure_ascii=False)


@function_tool
def search_uploads(ctx: RunContextWrapper[RunDeps], query: str) -> str:
    """Search the uploads' text for passages that share words with the query.

    Args:
        query: Words to look for; the best-matching passages come first.
    """
    hits = ctx.context.library.search(query)
    return json.dumps({"hits": hits} if hits else {"hits": [], "note": "nothing matched"})
