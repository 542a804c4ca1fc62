"""Plan -> text or JSON, for ``syncd plan`` and the summary of ``syncd sync``.  Pure.

Every text line is escaped (:func:`syncd.model.escape`): a name, email or message from Graph
cannot put a control character, a newline or a bidirectional override on the terminal or in the
log.  JSON needs no such care: ``json.dumps`` escapes them itself.
"""

from __future__ import annotations

from typing import Any

from .changes import (
    AddMember,
    AdoptUser,
    Change,
    DeactivateUser,
    DeleteTeam,
    Plan,
    Problem,
    RemoveMember,
)
from .model import escape

_SIGN = {
    "create_user": "+",
    "adopt_user": "~",
    "reactivate_user": "+",
    "update_user": "~",
    "deactivate_user": "-",
    "create_team": "+",
    "rename_team": "~",
    "replace_team": "~",
    "delete_team": "-",
    "add_member": "+",
    "remove_member": "-",
}


def _value(value: Any) -> str:
    return "(none)" if value is None or value == "" else repr(value) if isinstance(value, str) else str(value)


def describe(change: Change) -> str:
    """One line per change: ``+ create user alice@contoso.com (entra id …): name 'Alice', …``."""
    return escape(_describe(change))


def _describe(change: Change) -> str:
    sign = _SIGN[change.op]
    op = change.op
    if op == "create_user":
        fields = ", ".join(f"{name} {_value(new)}" for name, _old, new in change.fields if name != "email")
        return f"{sign} create user {change.target} [{change.entra_id}]: {fields}"
    if isinstance(change, AdoptUser) and change.previous_entra_id:
        return (
            f"{sign} adopt user {change.target}: its deleted Entra account [{change.previous_entra_id}] "
            f"is replaced by [{change.entra_id}]"
        )
    if op == "adopt_user":
        return f"{sign} adopt user {change.target}: local user now managed by [{change.entra_id}]"
    if op == "update_user":
        fields = ", ".join(f"{name} {_value(old)} -> {_value(new)}" for name, old, new in change.fields)
        return f"{sign} update user {change.target} [{change.entra_id}]: {fields}"
    if isinstance(change, DeactivateUser):
        return f"{sign} deactivate user {change.target} [{change.entra_id}] ({change.reason})"
    if op == "reactivate_user":
        return f"{sign} reactivate user {change.target} [{change.entra_id}]"
    if op == "create_team":
        return f"{sign} create team {_value(change.target)} [{change.entra_id}]"
    if op == "rename_team":
        old = change.fields[0][1]
        return f"{sign} rename team {_value(old)} -> {_value(change.target)} [{change.entra_id}]"
    if op == "replace_team":
        return (
            f"{sign} replace team {_value(change.target)}: group [{change.entra_id}] takes over the existing "
            "team; its members become exactly the group's members"
        )
    if isinstance(change, DeleteTeam):
        members = f" ({len(change.member_emails)} members)" if change.member_emails else ""
        return f"{sign} delete team {_value(change.target)} [{change.entra_id}]{members}"
    if isinstance(change, AddMember):
        return f"{sign} add member {change.email} to team {_value(change.team_name)}"
    if isinstance(change, RemoveMember):
        return f"{sign} remove member {change.email} from team {_value(change.team_name)}"
    raise ValueError(op)  # pragma: no cover - every op is listed above


def describe_problem(problem: Problem, *, warning: bool) -> str:
    word = "warning" if warning else "error"
    return escape(f"! {word} {problem.code} {problem.kind} {problem.target} [{problem.entra_id}]: {problem.message}")


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    if not counts:
        text = "no changes"
    else:
        text = ", ".join(f"{count} {op.replace('_', ' ')}" for op, count in counts.items())
    extras = []
    if plan.errors:
        extras.append(f"{len(plan.errors)} errors")
    if plan.warnings:
        extras.append(f"{len(plan.warnings)} warnings")
    if not plan.complete:
        extras.append("snapshot incomplete: nothing deprovisioned by absence")
    return f"Plan: {text}" + (f" ({'; '.join(extras)})" if extras else "") + "."


def to_text(plan: Plan) -> str:
    lines = [describe(change) for change in plan.changes]
    lines += [describe_problem(problem, warning=False) for problem in plan.errors]
    lines += [describe_problem(problem, warning=True) for problem in plan.warnings]
    lines.append(summary_line(plan))
    return "\n".join(lines)


def change_to_json(change: Change) -> dict[str, Any]:
    item: dict[str, Any] = {
        "op": change.op,
        "target": change.target,
        "entra_id": change.entra_id,
        "fields": {name: [old, new] for name, old, new in change.fields},
    }
    if isinstance(change, DeactivateUser):
        item["reason"] = change.reason
    if isinstance(change, (AddMember, RemoveMember)):
        item["team"] = change.team_name
        item["member"] = change.email
    if isinstance(change, AddMember):
        item["member_entra_id"] = change.user_entra_id
    if isinstance(change, DeleteTeam):
        item["members"] = list(change.member_emails)
    return item


def problem_to_json(problem: Problem) -> dict[str, Any]:
    return {
        "code": problem.code,
        "kind": problem.kind,
        "target": problem.target,
        "entra_id": problem.entra_id,
        "message": problem.message,
    }


def to_json(plan: Plan) -> dict[str, Any]:
    return {
        "changes": [change_to_json(change) for change in plan.changes],
        "errors": [problem_to_json(problem) for problem in plan.errors],
        "warnings": [problem_to_json(problem) for problem in plan.warnings],
        "summary": plan.summary(),
        "complete": plan.complete,
    }
