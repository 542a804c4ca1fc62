"""Change records as JSON and back, exactly: what a saved plan (``syncd plan --out``) and a refused
run keep, so that the plan applied or shown later is the very plan that was made.

Every change record is a frozen dataclass; its JSON is ``{"op": ..., <each field>: <value>}``, and
decoding checks each field's type, so a record that was edited into something else is refused
(:class:`RecordError`) rather than guessed at.

Pure: imports only :mod:`syncd.model` and :mod:`syncd.changes`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .changes import (
    AddMember,
    AdoptUser,
    Change,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    DeleteTeam,
    Plan,
    Problem,
    ReactivateUser,
    RemoveMember,
    RenameTeam,
    ReplaceTeam,
    UpdateUser,
)
from .model import USER_ATTRIBUTES

CLASSES: dict[str, type[Any]] = {
    cls.op: cls
    for cls in (
        CreateUser,
        AdoptUser,
        UpdateUser,
        DeactivateUser,
        ReactivateUser,
        CreateTeam,
        RenameTeam,
        ReplaceTeam,
        DeleteTeam,
        AddMember,
        RemoveMember,
    )
}


UNAUDITED = frozenset(attribute.field for attribute in USER_ATTRIBUTES if not attribute.audited)
"""Attributes the audit leaves out of its before and after (the registry says which)."""
AUDITED_ATTRIBUTES = tuple(attribute.field for attribute in USER_ATTRIBUTES if attribute.audited)

OBJECT_KINDS = {
    "create_user": "user",
    "adopt_user": "user",
    "reactivate_user": "user",
    "update_user": "user",
    "deactivate_user": "user",
    "delete_team": "team",
    "rename_team": "team",
    "replace_team": "team",
    "create_team": "team",
    "remove_member": "membership",
    "add_member": "membership",
}


def audit_values(change: Change) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The object before and after the change, as far as the change touches it."""
    if isinstance(change, CreateUser):
        attributes = change.attributes
        return None, {
            "email": change.email,
            "name": change.name,
            **{field: attributes.get(field) for field in AUDITED_ATTRIBUTES},
            "user_type": change.user_type,
        }
    if isinstance(change, AddMember):
        return None, {"member": change.email, "user_entra_id": change.user_entra_id}
    before = {name: old for name, old, _ in change.fields if name not in UNAUDITED}
    after = {name: new for name, _, new in change.fields if name not in UNAUDITED}
    if isinstance(change, CreateTeam):
        return None, after
    if isinstance(change, RemoveMember):
        return before, None
    if isinstance(change, DeleteTeam):
        return {**before, "members": list(change.member_emails)}, None
    if isinstance(change, DeactivateUser):
        after["inactive_reason"] = change.reason
    return before, after


class RecordError(ValueError):
    """A record that is not a change record syncd made."""


def change_record(change: Change) -> dict[str, Any]:
    record: dict[str, Any] = {"op": change.op}
    for field in dataclasses.fields(change):
        value = getattr(change, field.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = [list(item) if isinstance(item, tuple) else item for item in value]
        record[field.name] = value
    return record


def _scalar(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise RecordError(f"{where}: {type(value).__name__} is not a value a change holds")


def change_from_record(record: Any) -> Change:
    if not isinstance(record, Mapping):
        raise RecordError("a change is not an object")
    op = record.get("op")
    cls = CLASSES.get(op) if isinstance(op, str) else None
    if cls is None:
        raise RecordError(f"unknown change {op!r}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    extra = set(record) - set(fields) - {"op"}
    if extra:
        raise RecordError(f"{op}: unknown fields {sorted(extra)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in record:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise RecordError(f"{op}: {name} is missing")
        values[name] = _value(record[name], str(field.type), f"{op}.{name}")
    try:
        change: Change = cls(**values)
    except TypeError as error:
        raise RecordError(f"{op}: {error}") from None
    return change


def _value(value: Any, annotation: str, where: str) -> Any:
    if annotation.startswith("int"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise RecordError(f"{where}: not a whole number")
        return value
    if annotation.startswith("str"):
        if annotation == "str" and not isinstance(value, str):
            raise RecordError(f"{where}: not a string")
        if value is not None and not isinstance(value, str):
            raise RecordError(f"{where}: not a string")
        return value
    if annotation.startswith("Mapping"):
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise RecordError(f"{where}: not an object")
        return {key: _scalar(item, where) for key, item in value.items()}
    if annotation == "FieldChanges":
        if not isinstance(value, list) or not all(isinstance(item, list) and len(item) == 3 for item in value):
            raise RecordError(f"{where}: not a list of [field, old, new]")
        return tuple((str(name), _scalar(old, where), _scalar(new, where)) for name, old, new in value)
    if annotation.startswith("tuple[str"):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise RecordError(f"{where}: not a list of strings")
        return tuple(value)
    raise RecordError(f"{where}: a field of type {annotation} is not understood")


def problem_record(problem: Problem) -> dict[str, Any]:
    return dataclasses.asdict(problem)


def problem_from_record(record: Any) -> Problem:
    if not isinstance(record, Mapping) or set(record) != {field.name for field in dataclasses.fields(Problem)}:
        raise RecordError("a problem is not an object with code, kind, entra_id, target and message")
    if not all(isinstance(value, str) for value in record.values()):
        raise RecordError("a problem's fields are not strings")
    return Problem(**record)


def plan_record(plan: Plan) -> dict[str, Any]:
    return {
        "changes": [change_record(change) for change in plan.changes],
        "errors": [problem_record(problem) for problem in plan.errors],
        "warnings": [problem_record(problem) for problem in plan.warnings],
        "held": [change_record(change) for change in plan.held],
        "complete": plan.complete,
    }


def plan_from_record(record: Any) -> Plan:
    if not isinstance(record, Mapping):
        raise RecordError("the plan is not an object")
    lists = {name: record.get(name, []) for name in ("changes", "errors", "warnings", "held")}
    if not all(isinstance(value, list) for value in lists.values()):
        raise RecordError("the plan's changes, errors, warnings and held changes must be lists")
    complete = record.get("complete", True)
    if not isinstance(complete, bool):
        raise RecordError("the plan's complete is not true or false")
    return Plan(
        changes=tuple(change_from_record(item) for item in lists["changes"]),
        errors=tuple(problem_from_record(item) for item in lists["errors"]),
        warnings=tuple(problem_from_record(item) for item in lists["warnings"]),
        held=tuple(change_from_record(item) for item in lists["held"]),
        complete=complete,
    )
