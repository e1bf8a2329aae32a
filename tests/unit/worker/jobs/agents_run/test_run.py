"""The workflows run with the Agents SDK's scripted model: no server, no worker."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from agents import MaxTurnsExceeded, Model, ModelBehaviorError, ModelRefusalError, UserError
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from openai.types.responses import ResponseOutputMessage, ResponseOutputRefusal
from pydantic import BaseModel

from core.agents.workflows import AskFilesInput, DocumentSummaryInput, TriageInput
from core.jobs.states import EventType
from tests.support.agent_runs import Recorder
from worker.errors import JobCancelled, PermanentJobError
from worker.jobs.agents_run.execute import own_cause
from worker.jobs.agents_run.failures import run_failure
from worker.jobs.agents_run.library import Document, Library
from worker.jobs.agents_run.run import run_workflow
from worker.jobs.agents_run.workflows import AGENTS

REPORT = uuid.UUID("00000000-0000-4000-8000-000000000001")


MINUTES = uuid.UUID("00000000-0000-4000-8000-000000000002")


def turn(*output: Any, tokens: tuple[int, int] = (10, 5)) -> ModelStep:
    return ModelStep(
        output=list(output),
        usage=Usage(
            requests=1,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            total_tokens=sum(tokens),
        ),
    )


def answer(value: dict[str, Any], **kw: Any) -> ModelStep:
    return turn(assistant_message(json.dumps(value)), **kw)


def run(
    workflow: str,
    data: BaseModel,
    model: Model,
    library: Library | None = None,
    recorder: Recorder | None = None,
    max_turns: int = 10,
) -> Any:
    return asyncio.run(
        run_workflow(
            workflow,
            data,
            library or Library([]),
            model,
            recorder or Recorder(),
            max_turns=max_turns,
        )
    )


def library() -> Library:
    return Library(
        [
            Document(REPORT, "report.txt", "Revenue grew 12 percent.\n\nThe Porto terminal opens."),
            Document(MINUTES, "minutes.md", "The board met in Lisbon.\n\nPorto was discussed."),
        ]
    )


def test_a_tool_call_then_a_structured_answer() -> None:
    summary = {"title": "Q3", "summary": "Growth.", "key_points": ["12%"], "entities": ["Porto"]}
    model = ScriptedModel(
        [
            turn(function_call("read_page", {"upload_id": str(REPORT), "page": 1}, call_id="c1")),
            answer(summary, tokens=(30, 12)),
        ]
    )
    recorder = Recorder()
    result = run(
        "document_summary", DocumentSummaryInput(upload_id=REPORT), model, library(), recorder
    )

    assert result.output == summary
    assert result.final_agent == "summarizer"
    assert result.usage.model_dump() == {
        "requests": 2,
        "input_tokens": 40,
        "output_tokens": 17,
        "total_tokens": 57,
    }
    assert recorder.kinds() == ["agent", "model_turn", "tool_call", "tool_result", "model_turn"]
    tool_result = json.loads(recorder.events[3][1]["output"])
    assert tool_result["text"].startswith("Revenue grew 12 percent.")
    assert tool_result["pages"] == 1
    model.assert_complete()
    assert "report.txt" in str(model.first_call.input if model.first_call else "")


def test_a_handoff_ends_with_the_specialist() -> None:
    reply = {"category": "technical", "answer": "Restart it.", "confidence": 0.7}
    model = ScriptedModel(
        [turn(function_call("transfer_to_technical", {}, call_id="h1")), answer(reply)]
    )
    recorder = Recorder()
    result = run("triage", TriageInput(message="It crashes"), model, recorder=recorder)

    assert result.final_agent == "technical"
    assert result.output == reply
    assert (EventType.HANDOFF, {"from": "triage", "to": "technical"}) in recorder.events


def test_search_finds_passages_across_uploads_and_citations_are_checked() -> None:
    reply = {
        "answer": "It opens in May.",
        "citations": [{"upload_id": str(REPORT), "quote": "The Porto terminal opens."}],
    }
    model = ScriptedModel(
        [
            turn(function_call("search_uploads", {"query": "Porto terminal"}, call_id="s1")),
            answer(reply),
        ]
    )
    recorder = Recorder()
    data = AskFilesInput(upload_ids=[REPORT, MINUTES], question="When does Porto open?")
    result = run("ask_files", data, model, library(), recorder)

    assert result.output["citations"][0]["upload_id"] == str(REPORT)
    hits = json.loads(recorder.events[3][1]["output"])["hits"]
    assert [hit["upload_id"] for hit in hits] == [str(REPORT), str(MINUTES)]

    stray = {"answer": "x", "citations": [{"upload_id": str(uuid.uuid4()), "quote": "x"}]}
    with pytest.raises(PermanentJobError) as caught:
        run("ask_files", data, ScriptedModel([answer(stray)]), library())
    assert caught.value.type == "invalid_model_output"


def test_a_tool_cannot_read_an_upload_the_run_was_not_given() -> None:
    summary = {"title": "t", "summary": "s", "key_points": [], "entities": []}
    other = uuid.uuid4()
    model = ScriptedModel(
        [
            turn(function_call("read_page", {"upload_id": str(other), "page": 1}, call_id="c1")),
            answer(summary),
        ]
    )
    recorder = Recorder()
    run("document_summary", DocumentSummaryInput(upload_id=REPORT), model, library(), recorder)
    assert json.loads(recorder.events[3][1]["output"]) == {"error": "no such upload in this task"}


def test_too_many_turns_fail_without_a_retry() -> None:
    calls = [
        turn(function_call("search_uploads", {"query": "porto"}, call_id=f"c{n}")) for n in range(3)
    ]
    data = AskFilesInput(upload_ids=[REPORT], question="?")
    with pytest.raises(MaxTurnsExceeded) as caught:
        run("ask_files", data, ScriptedModel(calls), library(), max_turns=2)
    failure = run_failure(caught.value, 2)
    assert isinstance(failure, PermanentJobError)
    assert failure.type == "max_turns_exceeded"


def test_output_that_is_not_the_schema_is_a_permanent_failure() -> None:
    model = ScriptedModel([turn(assistant_message("not json at all"))])
    with pytest.raises(ModelBehaviorError) as caught:
        run("triage", TriageInput(message="hi"), model)
    failure = run_failure(caught.value, 10)
    assert isinstance(failure, PermanentJobError)
    assert failure.type == "invalid_model_output"


def test_a_cancel_stops_the_run_after_the_current_turn() -> None:
    reply = {"category": "billing", "answer": "Refunded.", "confidence": 0.9}
    model = ScriptedModel(
        [turn(function_call("transfer_to_billing", {}, call_id="h1")), answer(reply)]
    )
    # Cancelled once the first turn is recorded: the next checkpoint is before turn 2.
    recorder = Recorder(cancel_after=2)
    with pytest.raises(JobCancelled):
        run("triage", TriageInput(message="Refund"), model, recorder=recorder)
    assert len(model.calls) == 1
    assert model.remaining_steps == 1


def test_every_workflow_has_agents() -> None:
    assert set(AGENTS) == {"document_summary", "triage", "ask_files"}


def test_a_refusal_is_a_permanent_failure_with_the_models_words() -> None:
    refusal = ResponseOutputMessage(
        id="m1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputRefusal(type="refusal", refusal="I can't help with that.")],
    )
    with pytest.raises(ModelRefusalError) as caught:
        run("triage", TriageInput(message="hi"), ScriptedModel([turn(refusal)]))
    failure = run_failure(caught.value, 10)
    assert isinstance(failure, PermanentJobError)
    assert failure.type == "model_refused"
    assert "I can't help with that." in str(failure)


def test_output_postgresql_cannot_store_is_invalid() -> None:
    reply = {"category": "general", "answer": "a\u0000b", "confidence": 0.5}
    with pytest.raises(PermanentJobError) as caught:
        run("triage", TriageInput(message="hi"), ScriptedModel([answer(reply)]))
    assert caught.value.type == "invalid_model_output"
    assert "output.answer must not contain NUL characters" in str(caught.value)


class FailingRecorder(Recorder):
    """The database goes away when a tool call is recorded."""

    def event(self, type_: EventType, data: dict[str, Any]) -> None:
        if type_ is EventType.TOOL_CALL:
            raise ConnectionError("database went away")
        super().event(type_, data)


def test_a_failure_inside_a_tool_step_is_judged_by_its_cause() -> None:
    model = ScriptedModel([turn(function_call("search_uploads", {"query": "porto"}, call_id="c1"))])
    data = AskFilesInput(upload_ids=[REPORT], question="?")
    with pytest.raises(UserError) as caught:
        run("ask_files", data, model, library(), FailingRecorder())
    # The SDK wraps it; the handler retries on the cause, as for any lost connection.
    assert isinstance(own_cause(caught.value), ConnectionError)
    assert own_cause(ValueError("x")).args == ("x",)
