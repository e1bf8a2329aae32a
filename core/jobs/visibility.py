"""What of a job its reader may see. The result and step events of a job about uploads
(a CSV's rows, text an agent read) are upload contents: an API key that may read jobs
but not uploads sees such a job's status, progress and error, not those."""

from __future__ import annotations

from core.identity.access import Principal, Scope
from core.jobs.contracts import get_kind
from core.jobs.states import EventType

# Events that say how a job is going, never what is in it.
_ALWAYS_VISIBLE = frozenset({EventType.STATUS, EventType.PROGRESS, EventType.CANCEL_REQUESTED})
WITHHELD_FIELDS = ("result", "step_events")


def withholds_uploads(principal: Principal, kind_name: str) -> bool:
    kind = get_kind(kind_name)
    revealing = kind is not None and kind.reveals_uploads
    return revealing and Scope.UPLOADS_READ not in principal.scopes


def event_visible(event_type: str, withheld: bool) -> bool:
    return not withheld or event_type in _ALWAYS_VISIBLE
