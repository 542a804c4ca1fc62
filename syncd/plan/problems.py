"""Per-object problems as the planner reports them: every field storable and printable."""

from __future__ import annotations

from ..changes import Problem
from ..model import EMAIL_LENGTH, ENTRA_ID_LENGTH, escape


def problem(code: str, kind: str, entra_id: str, target: str, message: str) -> Problem:
    """A per-object error or warning whose every field can be stored and printed, whatever Graph
    sent: control characters, lone surrogates and bidirectional overrides escaped, the id and the
    target cut to what the audit holds."""
    return Problem(
        code, kind, _cut(escape(entra_id), ENTRA_ID_LENGTH), _cut(escape(target), EMAIL_LENGTH), escape(message)
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
