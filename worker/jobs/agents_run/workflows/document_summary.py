from __future__ import annotations

import json

from agents import Agent

from core.agents.workflows import DocumentSummaryInput, DocumentSummaryOutput
from worker.jobs.agents_run.library import Library
from worker.jobs.agents_run.workflows.deps import RunDeps
from worker.jobs.agents_run.workflows.tools import read_page

SUMMARIZER: Agent[RunDeps] = Agent(
    name="summarizer",
    instructions=(
        "You summarise one document. Read it with the read_page tool, starting at page 1; "
        "read further pages while they add to the summary (a long document may be "
        "sampled). Then answer with a short title, a summary of a few paragraphs, the "
        "key points as short sentences, and the entities it names (people, "
        "organisations, places, products). Use only what the document says."
    ),
    tools=[read_page],
    output_type=DocumentSummaryOutput,
)


def prompt(data: DocumentSummaryInput, library: Library) -> str:
    task: dict[str, object] = {"document": library.outline()[0]}
    if data.focus:
        task["focus"] = data.focus
    return "Summarise this document: " + json.dumps(task, ensure_ascii=False)
