from __future__ import annotations

from agents import Agent

from core.agents.workflows import TriageInput, TriageOutput
from worker.jobs.agents_run.library import Library
from worker.jobs.agents_run.workflows.deps import RunDeps

_ANSWER = (
    " Answer the customer's message helpfully and briefly. Set category to {category!r} "
    "and confidence (0 to 1) to how sure you are that the answer resolves the message."
)


def _specialist(category: str, focus: str) -> Agent[RunDeps]:
    return Agent(
        name=category,
        handoff_description=f"Questions about {focus}.",
        instructions=f"You are the {category} specialist, for {focus}."
        + _ANSWER.format(category=category),
        output_type=TriageOutput,
    )


BILLING = _specialist("billing", "invoices, charges, refunds, plans and payment methods")
TECHNICAL = _specialist("technical", "errors, outages, integrations and how the product works")
GENERAL = _specialist("general", "anything else: accounts, policies, feedback")

TRIAGE: Agent[RunDeps] = Agent(
    name="triage",
    instructions=(
        "You route a customer's message. Hand it off to exactly one specialist: billing, "
        "technical or general. Do not answer it yourself."
    ),
    handoffs=[BILLING, TECHNICAL, GENERAL],
    output_type=TriageOutput,
)


def prompt(data: TriageInput, _library: Library) -> str:
    return data.message
