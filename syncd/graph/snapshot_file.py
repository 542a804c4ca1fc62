"""Snapshot files: what ``syncd snapshot --out FILE`` writes and ``--from-snapshot FILE`` reads.

A snapshot file is one JSON object.  Field names are spelled as Microsoft Graph spells them, so a
captured tenant is easy to read and to edit by hand::

    {
      "format": "syncd-snapshot",
      "version": 1,
      "scope": "assigned",
      "appRoles": [
        {"id": "8f2a...", "displayName": "Admin", "value": "admin"}
      ],
      "assignments": [
        {"principalId": "5b1c...", "principalType": "User", "appRoleId": "8f2a..."},
        {"principalId": "e07d...", "principalType": "Group",
         "appRoleId": "00000000-0000-0000-0000-000000000000"}
      ],
      "groups": [
        {"id": "e07d...", "displayName": "Sales", "members": ["5b1c...", "a4f0..."]}
      ],
      "users": [
        {"id": "5b1c...", "userPrincipalName": "ada@contoso.com", "mail": "ada@contoso.com",
         "displayName": "Ada Lovelace", "jobTitle": "Engineer", "accountEnabled": true}
      ],
      "deletedUserIds": [],
      "failures": [],
      "partial": false,
      "subjects": []
    }

Keys:

* ``format`` (required) is always ``"syncd-snapshot"``; ``version`` is 1 (a file from a newer
  syncd is refused).
* ``scope``: ``"assigned"`` (users and groups assigned to the application, and the members of
  assigned groups, are in scope) or ``"all"`` (every user and group listed is).  Default
  ``"assigned"``.
* ``appRoles``: the application's roles; ``displayName`` defaults to ``""``, ``value`` to null.
* ``assignments``: ``principalType`` is ``"User"`` or ``"Group"``; ``appRoleId`` defaults to the
  default-access role ``00000000-0000-0000-0000-000000000000``.
* ``groups``: ``members`` lists the ids of the group's user members (all transitive user members
  when nested groups are flattened); ``null`` means the list could not be read and the team is
  left as it is.  Default ``[]``.
* ``users``: only ``id`` is required; the strings default to null and ``accountEnabled`` to true.
  Beside the properties shown, each attribute of the registry (``syncd.model.USER_ATTRIBUTES``)
  is a key of its own, by its Graph name.
* ``deletedUserIds``: users Graph answered 404 for.
* ``failures``: reads that failed (``code``, ``message``, optional ``path``); any entry makes the
  snapshot incomplete, and nothing is deprovisioned because it is absent.
* ``partial``: true for a snapshot of a single user or group (``syncd sync --user/--group``).
* ``subjects``: in a partial snapshot, the ids of the user or group it was taken for; those it
  knows in full, so a subject out of scope is deprovisioned.

Every list defaults to empty.  Unknown keys are ignored (a hand-edited file may keep notes or
Graph's own ``@odata`` annotations); a known key with the wrong type is an error naming the key
and the item, e.g. ``users[3].accountEnabled: must be true, false or null``.

The file is UTF-8 (a byte order mark is allowed); the JSON must be strict: no NaN or Infinity, no
key twice in one object, no integer of more digits than Python parses, no nesting deeper than
Python's recursion allows.  A user, group or app role id appears once, and so does an
assignment.  String values are taken as Graph gave them, a lone surrogate (``"\\udfff"``) or a
control character included: the planner refuses such a value for that one object
(``USER_INVALID``, ``TEAM_INVALID``), so one bad string never makes the whole file unreadable.
Every problem with the file is a :class:`~syncd.errors.SnapshotError` (``SNAPSHOT_INVALID``)
naming the key; values it quotes are escaped.  The writer escapes lone surrogates, control
characters and bidirectional controls as ``\\uXXXX``, so the file is valid UTF-8 that is safe to
``cat`` and reads back to the same snapshot.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..errors import SnapshotError
from ..mirror import MirrorFeed
from ..model import (
    DEFAULT_ACCESS_ROLE_ID,
    USER_ATTRIBUTES,
    AppRole,
    Assignment,
    FetchFailure,
    Managed,
    Snapshot,
    SourceGroup,
    SourceUser,
    escape,
    shown,
)
from ..scope_rules import ATTRIBUTES as SCOPE_ATTRIBUTES

FORMAT = "syncd-snapshot"
VERSION = 1
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
"""A failure's code: an error code such as GRAPH_UNAVAILABLE."""
_UNSAFE_IN_FILE = re.compile("[\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""What the writer escapes beyond what ``json.dumps`` does (it escapes C0 itself)."""

T = TypeVar("T")


def snapshot_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """The JSON document of a snapshot (see the module docstring for the format)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "scope": snapshot.scope,
        "appRoles": [
            {"id": role.id, "displayName": role.display_name, "value": role.value} for role in snapshot.app_roles
        ],
        "assignments": [
            {"principalId": a.principal_id, "principalType": a.principal_type, "appRoleId": a.app_role_id}
            for a in snapshot.assignments
        ],
        "groups": [
            {
                "id": group.id,
                "displayName": group.display_name,
                "members": None if group.member_ids is None else list(group.member_ids),
            }
            for group in snapshot.groups
        ],
        "users": [_user_json(user) for user in snapshot.users],
        "deletedUserIds": sorted(snapshot.deleted_user_ids),
        "failures": [{"code": f.code, "message": f.message, "path": f.path} for f in snapshot.failures],
        "partial": snapshot.partial,
        "subjects": sorted(snapshot.subjects),
    }


def _user_json(user: SourceUser) -> dict[str, Any]:
    """A user as Graph spells it: its core properties, then the registry's attributes."""
    return {
        "id": user.id,
        "userPrincipalName": user.user_principal_name,
        "mail": user.mail,
        "displayName": user.display_name,
        **{attribute.graph: user.attributes.get(attribute.graph) for attribute in USER_ATTRIBUTES},
        **{name: value for name, value in user.attributes.items() if name in SCOPE_ATTRIBUTES},
        "accountEnabled": user.account_enabled,
    }


class _Reader:
    """Typed access to one JSON object, reporting problems with their key path."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def error(self, key: str, problem: str) -> SnapshotError:
        return SnapshotError(f"{self.where}{escape(key)}: {problem}")

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, *, default: str | None = None, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required or default is None:
                raise self.error(key, "required (a string)" if key not in self.data else "must be a string")
            return default
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        if required and not value:
            raise self.error(key, "must not be empty")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.error(key, "must be a string or null")

    def boolean(self, key: str, default: bool, *, nullable: bool = False) -> bool | None:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) or (nullable and value is None):
            return value
        raise self.error(key, "must be true, false or null" if nullable else "must be true or false")

    def items(self, key: str, decode: Callable[[_Reader], T]) -> list[T]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, "must be a list")
        decoded = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise SnapshotError(f"{self.where}{key}[{index}]: must be an object")
            decoded.append(decode(_Reader(item, f"{self.where}{key}[{index}].")))
        return decoded

    def strings(self, key: str, *, nullable: bool = False) -> list[str] | None:
        value = self.data.get(key, [])
        if value is None and nullable:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return self._bad_strings(key, value, nullable)
        return value

    def _bad_strings(self, key: str, value: Any, nullable: bool) -> list[str]:
        if isinstance(value, list):
            index = next(i for i, item in enumerate(value) if not isinstance(item, str))
            raise SnapshotError(f"{self.where}{key}[{index}]: must be a string (an object id)")
        raise self.error(key, "must be a list of ids" + (" or null" if nullable else ""))


def _app_role(item: _Reader) -> AppRole:
    return AppRole(
        id=item.string("id", required=True),
        display_name=item.string("displayName", default=""),
        value=item.optional_string("value"),
    )


def _assignment(item: _Reader) -> Assignment:
    principal_type = item.string("principalType", required=True)
    if principal_type not in ("User", "Group"):
        raise item.error("principalType", 'must be "User" or "Group"')
    return Assignment(
        principal_id=item.string("principalId", required=True),
        principal_type=principal_type,  # type: ignore[arg-type]
        app_role_id=item.string("appRoleId", default=DEFAULT_ACCESS_ROLE_ID) or DEFAULT_ACCESS_ROLE_ID,
    )


def _group(item: _Reader) -> SourceGroup:
    members = item.strings("members", nullable=True)
    return SourceGroup(
        id=item.string("id", required=True),
        display_name=item.string("displayName", required=True),
        member_ids=None if members is None else tuple(members),
    )


def _user(item: _Reader) -> SourceUser:
    return SourceUser(
        id=item.string("id", required=True),
        user_principal_name=item.optional_string("userPrincipalName"),
        mail=item.optional_string("mail"),
        display_name=item.optional_string("displayName"),
        account_enabled=item.boolean("accountEnabled", True, nullable=True),
        attributes={
            **{attribute.graph: item.optional_string(attribute.graph) for attribute in USER_ATTRIBUTES},
            **{name: item.optional_string(name) for name in SCOPE_ATTRIBUTES if item.has(name)},
        },
    )


def _failure(item: _Reader) -> FetchFailure:
    code = item.string("code", required=True)
    if not _CODE.fullmatch(code):
        raise item.error("code", f"must be an error code such as GRAPH_UNAVAILABLE, not {shown(code)}")
    return FetchFailure(
        code=code,
        message=item.string("message", default=""),
        path=item.string("path", default=""),
    )


def snapshot_from_json(data: Any) -> Snapshot:
    """The snapshot a JSON document describes; raises :class:`SnapshotError` naming the bad key."""
    if not isinstance(data, dict):
        raise SnapshotError("a snapshot file must hold one JSON object")
    document = _Reader(data, "")
    if data.get("format") != FORMAT:
        raise SnapshotError(f'format: must be "{FORMAT}" (is this a snapshot written by `syncd snapshot`?)')
    version = data.get("version", VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SnapshotError("version: must be a whole number (1)")
    if version > VERSION:
        shown_version = version if version < 10**6 else "a very large number"  # a 5,000-digit int has no str()
        raise SnapshotError(f"version: {shown_version} is newer than this syncd reads ({VERSION}); upgrade syncd")
    scope = document.string("scope", default="assigned")
    if scope not in ("assigned", "all"):
        raise SnapshotError('scope: must be "assigned" or "all"')
    deleted = document.strings("deletedUserIds") or []
    app_roles = tuple(document.items("appRoles", _app_role))
    assignments = tuple(document.items("assignments", _assignment))
    groups = tuple(document.items("groups", _group))
    users = tuple(document.items("users", _user))
    _once("appRoles", "id", (role.id for role in app_roles))
    _once("groups", "id", (group.id for group in groups))
    _once("users", "id", (user.id for user in users))
    _assigned_once(assignments)
    return Snapshot(
        scope="all" if scope == "all" else "assigned",
        app_roles=app_roles,
        assignments=assignments,
        groups=groups,
        users=users,
        deleted_user_ids=frozenset(deleted),
        failures=tuple(document.items("failures", _failure)),
        partial=bool(document.boolean("partial", False)),
        subjects=frozenset(document.strings("subjects") or []),
    )


def _once(key: str, field: str, ids: Iterable[str]) -> None:
    """Each id appears once in the list ``key``: a second entry would silently win or lose."""
    seen: dict[str, int] = {}
    for index, value in enumerate(ids):
        if value in seen:
            raise SnapshotError(f"{key}[{index}].{field}: {shown(value)} appears twice (also {key}[{seen[value]}])")
        seen[value] = index


def _assigned_once(assignments: tuple[Assignment, ...]) -> None:
    """An assignment appears once, and a principal is either a user or a group."""
    seen: dict[tuple[str, str], int] = {}
    kinds: dict[str, str] = {}
    for index, assignment in enumerate(assignments):
        key = (assignment.principal_id, assignment.app_role_id)
        if key in seen:
            raise SnapshotError(
                f"assignments[{index}]: principal {shown(assignment.principal_id)} holds app role "
                f"{shown(assignment.app_role_id)} twice (also assignments[{seen[key]}])"
            )
        seen[key] = index
        kind = kinds.setdefault(assignment.principal_id, assignment.principal_type)
        if kind != assignment.principal_type:
            raise SnapshotError(
                f"assignments[{index}].principalType: principal {shown(assignment.principal_id)} is assigned "
                f"as a {kind} elsewhere"
            )


def write_snapshot(snapshot: Snapshot, path: str | os.PathLike[str]) -> None:
    """Write ``snapshot`` to ``path`` (UTF-8, indented), replacing the file atomically.

    Lone surrogates, DEL, C1 controls, bidirectional controls and line separators in the values are
    written as ``\\uXXXX`` escapes (``json.dumps`` escapes C0 itself): a lone surrogate has no UTF-8
    encoding, and the others would act on the terminal of whoever reads the file.
    """
    target = Path(path)
    text = json.dumps(snapshot_to_json(snapshot), indent=2, ensure_ascii=False) + "\n"
    text = _UNSAFE_IN_FILE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
    directory = target.parent if str(target.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read a snapshot file; every problem is a :class:`SnapshotError` that starts with the path."""
    where = escape(str(path))
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"{where}: no such file") from None
    except OSError as error:
        raise SnapshotError(f"{where}: cannot read: {escape(error.strerror or str(error))}") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte order mark, as Windows editors write one, is allowed
    except UnicodeDecodeError as error:
        raise SnapshotError(f"{where}: not UTF-8: byte {error.start} cannot be decoded") from None
    try:
        return snapshot_from_json(parse_json(text))
    except SnapshotError as error:
        raise SnapshotError(f"{where}: {error.message}") from None


class _NotStrict(ValueError):
    """JSON that ``json.loads`` would take but a snapshot file may not hold."""


def parse_json(text: str) -> Any:
    """Strict JSON: no NaN or Infinity, no key twice in an object, no integer too long to parse,
    no nesting too deep to decode.  Raises :class:`SnapshotError`."""
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer)
    except json.JSONDecodeError as error:
        raise SnapshotError(f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except _NotStrict as error:
        raise SnapshotError(f"not valid JSON: {error}") from None
    except RecursionError:
        raise SnapshotError("not valid JSON: nested too deeply") from None
    except ValueError as error:  # pragma: no cover - json.loads raises nothing else, but never a traceback
        raise SnapshotError(f"not valid JSON: {escape(str(error))}") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotStrict(f"key {shown(key)} appears twice in one object")
            seen.add(key)
    return value


def _constant(name: str) -> Any:
    raise _NotStrict(f"{name} is not a JSON value")


_MAX_DIGITS = 4000
"""Longer integers are refused before ``int()`` refuses them (Python converts at most 4300 digits)."""


def _integer(digits: str) -> int:
    if len(digits) > _MAX_DIGITS:
        raise _NotStrict(f"a number of {len(digits)} digits")
    return int(digits)


class SnapshotFileSource:
    """A :class:`~syncd.source.Source` that replays a snapshot file as it was captured.

    It asks Graph nothing: the evidence a file holds (``deletedUserIds``, disabled users,
    ``failures``) is all a replay has.
    """

    feed: MirrorFeed | None = None

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def read(self, managed: Managed) -> Snapshot:
        return read_snapshot(self.path)
