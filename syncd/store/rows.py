"""What every backend shares: the shapes of reported rows, the journal's rules, the checks of
local administration.  Pure: no database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..errors import CODES, InputError
from ..mirror import cursor_from_json
from ..model import BUILTIN_USER_TYPES, NAME_LENGTH, email_problem, escape, is_custom_role_id, unstorable
from ..records import OBJECT_KINDS, RecordError, audit_values, plan_from_record

PAUSED_KEY = "paused"
CURSOR_KEY = "mirror.cursor"
APP_ROLES_KEY = "mirror.app_roles"
INCREMENTAL_AT_KEY = "mirror.incremental_at"
INTERRUPTED = (
    "interrupted: the run ended without recording its outcome (its process was killed, or the database "
    "failed); nothing of it was applied"
)
"""What a run left ``running`` is relabelled with.  A run's outcome commits with its data, so a run
still ``running`` never committed any of it."""


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def summary_text(summary: dict[str, Any] | None) -> str:
    return json.dumps(summary or {}, sort_keys=True, default=str)


def loaded(value: str | None) -> Any:
    return json.loads(value) if value else None


def run_dict(row: Any) -> dict[str, Any]:
    """A run as the reports give it; ``row`` has the columns of ``sync_runs`` as attributes."""
    return {
        "id": row.id,
        "status": row.status,
        "trigger": row.trigger,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "changes": row.changes,
        "errors": row.errors,
        "summary": loaded(row.summary),
        "message": row.message,
        "graph_requests": getattr(row, "graph_requests", None),
    }


def user_dict(row: Any) -> dict[str, Any]:
    """A user as the reports give it; ``row`` has the columns of ``users`` as attributes."""
    return {
        "email": row.email,
        "name": row.name,
        "title": row.title,
        "active": bool(row.active),
        "user_type": row.user_type,
        "entra_id": row.entra_id,
        "managed": row.entra_id is not None,
        "inactive_reason": row.inactive_reason,
    }


def audit_dict(row: Any) -> dict[str, Any]:
    """An audit row as the reports give it."""
    return {
        "id": row.id,
        "run_id": row.run_id,
        "at": iso(row.at),
        "op": row.op,
        "object_kind": row.object_kind,
        "target": row.target,
        "entra_id": row.entra_id,
        "before": loaded(row.before),
        "after": loaded(row.after),
        "status": row.status,
        "error_code": row.error_code,
        "message": row.message,
    }


def local_user(email: str, name: str, user_type: str) -> tuple[str, str]:
    """The email and name of a local user as stored; InputError for anything the store must not hold."""
    email = email.strip().lower()
    name = " ".join(name.split())
    if (problem := email_problem(email)) is not None:
        raise InputError(f"the email {escape(email)!r} {problem}")
    if not name:
        raise InputError("a user needs a name")
    if (problem := unstorable(name, NAME_LENGTH)) is not None:
        raise InputError(f"the name {problem}")
    if user_type not in BUILTIN_USER_TYPES and not is_custom_role_id(user_type):
        raise InputError(
            f"user type {escape(user_type)!r} is not one of {', '.join(BUILTIN_USER_TYPES)} "
            "or a custom role id (1 to 32 ASCII digits)"
        )
    return email, name


def local_team(name: str, member_emails: Sequence[str]) -> tuple[str, list[str]]:
    """The name and sorted member emails of a local team; InputError for a name the store must not hold."""
    name = " ".join(name.split())
    if not name:
        raise InputError("a team needs a name")
    if (problem := unstorable(name, NAME_LENGTH)) is not None:
        raise InputError(f"the team name {problem}")
    return name, sorted({email.strip().lower() for email in member_emails})


def check_members(emails: Sequence[str], active_by_email: dict[str, bool]) -> None:
    """Every email names a user, and an active one; InputError (NOT_FOUND) naming those that do not."""
    unknown = [email for email in emails if email not in active_by_email]
    if unknown:
        raise InputError(f"no user with email {', '.join(unknown)}", code="NOT_FOUND")
    inactive = [email for email in emails if not active_by_email[email]]
    if inactive:
        raise InputError(f"inactive users cannot join a team: {', '.join(inactive)}")


def reads_summary(cursor_text: str | None, incremental_at: str | None) -> dict[str, Any]:
    """How Graph is read, from the stored cursor (see :meth:`~syncd.store.protocol.Reports.reads`)."""
    cursor = cursor_from_json(cursor_text) if cursor_text else None
    if cursor is None:
        return {"mode": "full", "last_full_at": None, "last_incremental_at": None}
    mode = "incremental" if cursor.mode == "delta" else "incremental (assignments listed)"
    return {
        "mode": mode,
        "last_full_at": iso(cursor.full_at),
        "last_incremental_at": incremental_at,
    }


def refused_rows(run: Any) -> list[dict[str, Any]]:
    """The plan a refused run kept, as audit rows with the status ``refused`` (nothing of it was applied).

    ``run`` has the columns of ``sync_runs`` as attributes.  A plan that cannot be read gives no rows.
    """
    if run.status != "refused" or not run.plan:
        return []
    try:
        plan = plan_from_record(json.loads(run.plan))
    except (ValueError, RecordError):
        return []
    rows: list[dict[str, Any]] = []
    for change in plan.changes:
        before, after = audit_values(change)
        rows.append(
            _refused_row(run, change.op, OBJECT_KINDS[change.op], change.target, change.entra_id, before, after)
        )
    for problem in (*plan.errors, *plan.warnings):
        kind = "user" if problem.kind == "user" else "team"
        row = _refused_row(run, "problem", kind, problem.target, problem.entra_id, None, None)
        rows.append({**row, "error_code": problem.code, "message": problem.message})
    return rows


def _refused_row(
    run: Any,
    op: str,
    kind: str,
    target: str,
    entra_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": None,
        "run_id": run.id,
        "at": iso(run.finished_at),
        "op": op,
        "object_kind": kind,
        "target": target,
        "entra_id": entra_id,
        "before": before,
        "after": after,
        "status": "refused",
        "error_code": None,
        "message": None,
    }


PROBLEM_RUN_STATUSES = ("failed", "refused", "incomplete")
"""Runs whose message names the codes that ended them (``CODE: text``)."""
_CODE_IN_MESSAGE = re.compile(r"(?<![A-Za-z0-9_])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+): ")


def problem_summary(
    audited: Iterable[tuple[int, datetime | None, str, str, int]],
    runs: Iterable[tuple[int, datetime | None, str, str]],
) -> list[dict[str, Any]]:
    """The error codes of recent runs, newest first: ``code``, ``level`` (``error`` or ``warning``),
    ``runs`` (how many runs it appeared in), ``objects`` (how many times in the latest of them),
    ``last_run`` and ``last_at``.

    ``audited``: (run id, when, code, audit status, rows) per run and code; ``runs``: (run id, when,
    status, message) of the runs that ended with a code of their own (:data:`PROBLEM_RUN_STATUSES`).
    """
    seen: dict[str, dict[str, Any]] = {}

    def note(run_id: int, at: datetime | None, code: str, level: str, count: int) -> None:
        entry = seen.setdefault(code, {"code": code, "level": level, "runs": set(), "objects": 0, "last_run": -1})
        if level == "error":
            entry["level"] = "error"
        entry["runs"].add(run_id)
        if run_id > entry["last_run"]:
            entry.update(last_run=run_id, last_at=at, objects=count)
        elif run_id == entry["last_run"]:
            entry["objects"] += count

    for run_id, at, code, status, count in audited:
        note(run_id, at, code, "warning" if status == "warning" else "error", count)
    for run_id, at, status, message in runs:
        if status in PROBLEM_RUN_STATUSES:
            for code in dict.fromkeys(_CODE_IN_MESSAGE.findall(message or "")):
                if code in CODES:
                    note(run_id, at, code, "error", 1)
    ordered = sorted(seen.values(), key=lambda entry: (-entry["last_run"], entry["level"] != "error", entry["code"]))
    return [{**entry, "runs": len(entry["runs"]), "last_at": iso(entry.get("last_at"))} for entry in ordered]
