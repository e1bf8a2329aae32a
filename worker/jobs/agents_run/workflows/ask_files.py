from __future__ import annotations

import json

from agents import Agent

from core.agents.workflows import AskFilesInput, AskFilesOutput
from worker.jobs.agents_run.library import Library
from worker.jobs.agents_run.workflows.deps import RunDeps
from worker.jobs.agents_run.workflows.tools import read_page, search_uploads

RESEARCHER: Agent[RunDeps] = Agent(
    name="researcher",
    instructions=(
        "You answer a question from the given uploads only. Search them with "
        "search_uploads (try a few phrasings) and read pages with read_page when a "
        "passage needs context. Answer concisely, and cite each passage you relied on "
        "with its upload_id and a short verbatim quote. If the uploads do not answer the "
        "question, say so and cite nothing."
    ),
    tools=[search_uploads, read_page],
    output_type=AskFilesOutput,
)


def prompt(data: AskFilesInput, library: Library) -> str:
    task = {"question": data.question, "uploads": library.outline()}
    return "Answer from these uploads: " + json.dumps(task, ensure_ascii=False)


def check(data: AskFilesInput, output: AskFilesOutput) -> AskFilesOutput:
    asked = set(data.upload_ids)
    strays = sorted({str(c.upload_id) for c in output.citations if c.upload_id not in asked})
    if strays:
        raise ValueError(f"citations name uploads the question did not give: {strays}")
    return output
