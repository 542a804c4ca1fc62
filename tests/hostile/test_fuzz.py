"""Hypothesis against the edges where the wire comes in: whatever arrives, syncd answers with a value
or its own error, never another exception, and never deprovisions on evidence it did not get.

* random snapshot documents (missing fields, wrong types, odd Unicode, huge numbers, deep nesting)
  through the snapshot reader: a Snapshot or a SnapshotError;
* random JSON objects through the Graph decoders: a value or BadResponse;
* random tenants with odd strings, unread users and failed reads through the planner: every value
  a plan would write can be stored, every problem can be stored and printed, an unread user is
  never touched, and an incomplete snapshot deprovisions nothing by absence.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.changes import AddMember, CreateTeam, CreateUser, DeactivateUser, DeleteTeam, RemoveMember, RenameTeam
from syncd.errors import SnapshotError
from syncd.graph import decode
from syncd.graph.snapshot_file import parse_json, read_snapshot, snapshot_from_json
from syncd.model import (
    EMAIL_LENGTH,
    ENTRA_ID_LENGTH,
    NAME_LENGTH,
    TITLE_LENGTH,
    USER_TYPE_LENGTH,
    Assignment,
    FetchFailure,
    Snapshot,
    SourceGroup,
    SourceUser,
    StoreState,
    unstorable,
)
from syncd.plan import diff
from tests.builders import ROLES, stored_team, stored_user

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Modest: the whole file runs in seconds on a 2-core machine."""
PLANNER = settings(max_examples=100, deadline=None)

ODD = ["\udfff", "\ud800", "\x00", "\x1b[2J", "\n", "\t", "\x85", "\x7f", "\u202e", "\u2066", "\u200b", "é", "李", " "]
odd_text = st.lists(st.sampled_from(ODD) | st.text(max_size=4), max_size=5).map("".join) | st.sampled_from(
    ["x" * 300, "y" * (NAME_LENGTH + 1), "a@b.c", "Sales", ""]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | odd_text
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3), max_leaves=12
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right shape most of the time, anything JSON at other times."""
    return st.one_of(strategy, strategy, json_values)


ids = st.sampled_from(["u1", "u2", "g1", "g2", "r1", "\udfff", "\x00", "z" * 80])
user_docs = st.fixed_dictionaries(
    {"id": maybe(ids)},
    optional={
        "userPrincipalName": maybe(odd_text | st.sampled_from(["a@x.com", "b@x.com"])),
        "mail": maybe(odd_text),
        "displayName": maybe(odd_text),
        "jobTitle": maybe(odd_text),
        "accountEnabled": maybe(st.booleans() | st.none()),
    },
)
group_docs = st.fixed_dictionaries(
    {"id": maybe(ids), "displayName": maybe(odd_text)},
    optional={"members": maybe(st.none() | st.lists(maybe(ids), max_size=3))},
)
assignment_docs = st.fixed_dictionaries(
    {"principalId": maybe(ids), "principalType": maybe(st.sampled_from(["User", "Group", "Device"]))},
    optional={"appRoleId": maybe(ids)},
)
VERSIONS = [1, 2, 0, -1, 1.0, "1", True]


def documents(versions: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"format": st.sampled_from(["syncd-snapshot", "syncd-snapshot", "other"])},
        optional={
            "version": maybe(st.sampled_from(versions)),
            "scope": maybe(st.sampled_from(["assigned", "all"])),
            "appRoles": maybe(st.lists(maybe(st.fixed_dictionaries({"id": maybe(ids)})), max_size=3)),
            "assignments": maybe(st.lists(maybe(assignment_docs), max_size=4)),
            "groups": maybe(st.lists(maybe(group_docs), max_size=3)),
            "users": maybe(st.lists(maybe(user_docs), max_size=4)),
            "deletedUserIds": maybe(st.lists(maybe(ids), max_size=2)),
            "failures": maybe(
                st.lists(st.fixed_dictionaries({"code": maybe(st.just("GRAPH_UNAVAILABLE"))}), max_size=2)
            ),
            "partial": maybe(st.booleans()),
            "subjects": maybe(st.lists(maybe(ids), max_size=2)),
        },
    )


def snapshot_or_error(read: Any, argument: Any) -> Snapshot | SnapshotError:
    try:
        return read(argument)
    except SnapshotError as error:
        assert error.code == "SNAPSHOT_INVALID"
        return error


@FAST
@given(documents([*VERSIONS, 10**5000]))  # an int no str() can show
def test_any_document_is_a_snapshot_or_snapshot_invalid(document):
    assert isinstance(snapshot_or_error(snapshot_from_json, document), Snapshot | SnapshotError)


def _text(document: Any) -> str:
    return json.dumps(document, allow_nan=True)


@FAST
@given(
    documents(VERSIONS),
    st.sampled_from(["as is", "truncated", "nested", "huge number", "duplicate key", "bom"]),
    st.integers(0, 10**6),
)
def test_any_file_is_a_snapshot_or_snapshot_invalid(tmp_path_factory, document, damage, seed):
    text = _text(document)
    if damage == "truncated":
        text = text[: seed % (len(text) + 1)]
    elif damage == "nested":
        depth = (10, 900, 5000, 100_000)[seed % 4]
        text = text[:-1] + ', "note": ' + "[" * depth + "]" * depth + "}"
    elif damage == "huge number":
        text = text[:-1] + ', "note": ' + "7" * (seed % 9000 + 1) + "}"
    elif damage == "duplicate key":
        text = text[:-1] + ', "format": "syncd-snapshot"}'
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate written raw: not UTF-8
    if damage == "bom":
        data = b"\xef\xbb\xbf" + data
    path = tmp_path_factory.mktemp("fuzz") / "snapshot.json"
    path.write_bytes(data)
    assert isinstance(snapshot_or_error(read_snapshot, path), Snapshot | SnapshotError)


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_are_a_snapshot_or_snapshot_invalid(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "snapshot.json"
    path.write_bytes(data)
    assert isinstance(snapshot_or_error(read_snapshot, path), Snapshot | SnapshotError)


def test_parse_json_refuses_what_json_loads_would_crash_on():
    for text in ("[" * 100_000, "1" * 5000, '{"a": NaN}'):
        with pytest.raises(SnapshotError):
            parse_json(text)


# --------------------------------------------------------------------------- Graph decoders

GRAPH_KEYS = [
    "id",
    "value",
    "@odata.type",
    "@odata.nextLink",
    "responses",
    "status",
    "headers",
    "body",
    "appRoles",
    "appId",
    "principalType",
    "principalId",
    "appRoleId",
    "displayName",
    "userPrincipalName",
    "mail",
    "jobTitle",
    "accountEnabled",
]
graph_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | odd_text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(GRAPH_KEYS) | odd_text, inner, max_size=4)
    ),
    max_leaves=15,
)
graph_objects = st.dictionaries(st.sampled_from(GRAPH_KEYS), graph_values, max_size=8)
DECODERS = [
    decode.decode_user,
    decode.decode_member,
    decode.decode_group,
    decode.decode_assignment,
    decode.decode_service_principal,
    decode.decode_page,
    decode.decode_batch_response,
]


@FAST
@given(item=graph_objects)
def test_graph_decoders_return_a_value_or_bad_response(item):
    for decoder in DECODERS:
        with contextlib.suppress(decode.BadResponse):
            decoder(item)


@FAST
@given(st.binary(max_size=200) | graph_objects.map(lambda item: json.dumps(item).encode("utf-8", "surrogatepass")))
def test_graph_json_loader_returns_an_object_or_bad_response(data):
    with contextlib.suppress(decode.BadResponse):
        decode.load_object(data)


def test_a_deeply_nested_graph_answer_is_a_bad_response():
    with pytest.raises(decode.BadResponse):
        decode.load_object(b"[" * 100_000 + b"]" * 100_000)
    assert decode.decode_error(b'{"error":' * 100_000) == ("", "")


# --------------------------------------------------------------------------- the planner

POOL = ["u1", "u2", "u3", "u4", "\udfff", "u\x00", "v" * 70]
GROUPS = ["g1", "g2", "g\x1b"]
ROLE_IDS = [role.id for role in ROLES]


@st.composite
def worlds(draw: Any, *, failures: bool | None = None) -> tuple[Snapshot, StoreState]:
    """A tenant with odd strings, member ids that name no user, and a store sharing its ids."""
    users = [
        SourceUser(
            user_id,
            draw(st.sampled_from([f"{user_id[:2]}@x.com", "dup@x.com", None]) | odd_text),
            None,
            draw(st.none() | odd_text),
            draw(st.sampled_from([True, True, False, None])),
            {"jobTitle": draw(st.none() | odd_text)},
        )
        for user_id in draw(st.lists(st.sampled_from(POOL), unique=True))
    ]
    groups = [
        SourceGroup(
            group_id,
            draw(st.sampled_from(["Sales", "Ops"]) | odd_text),
            draw(st.none() | st.lists(st.sampled_from(POOL), unique=True, max_size=4).map(tuple)),
        )
        for group_id in draw(st.lists(st.sampled_from(GROUPS), unique=True))
    ]
    assignments = [
        Assignment(u, "User", draw(st.sampled_from(ROLE_IDS))) for u in draw(st.lists(st.sampled_from(POOL)))
    ]
    assignments += [Assignment(g.id, "Group") for g in groups if draw(st.booleans())]
    has_failures = draw(st.booleans()) if failures is None else failures
    snapshot = Snapshot(
        scope=draw(st.sampled_from(["assigned", "assigned", "all"])),
        app_roles=ROLES,
        assignments=tuple(dict.fromkeys(assignments)),
        groups=tuple(groups),
        users=tuple(users),
        deleted_user_ids=frozenset(draw(st.lists(st.sampled_from(POOL), max_size=2))),
        failures=(FetchFailure("GRAPH_UNAVAILABLE", "503", "/groups/g1/members"),) if has_failures else (),
    )
    stored = [
        stored_user(
            local_id,
            f"{name}@x.com",
            entra_id=entra_id,
            active=draw(st.booleans()),
            title=draw(st.sampled_from([None, "Eng"])),
        )
        for local_id, (name, entra_id) in enumerate(
            draw(
                st.lists(
                    st.sampled_from([("a", "u1"), ("b", "u2"), ("c", "u3"), ("d", None)]), unique_by=lambda p: p[0]
                )
            ),
            start=1,
        )
    ]
    stored = list({u.entra_id or u.email: u for u in stored}.values())
    local_ids = [u.id for u in stored]
    teams = [
        stored_team(
            local_id,
            draw(st.sampled_from(["Sales", "Ops", "Club"])),
            draw(st.lists(st.sampled_from(local_ids), unique=True)) if local_ids else [],
            entra_id=entra_id,
        )
        for local_id, entra_id in enumerate(draw(st.lists(st.sampled_from(["g1", "g2", None]), max_size=3)), start=1)
    ]
    teams = [t for t in teams if t.entra_id is None] + list({t.entra_id: t for t in teams if t.entra_id}.values())
    return snapshot, StoreState(tuple(stored), tuple(teams))


def written_values(change: Any) -> list[tuple[str | None, int]]:
    """The strings a change writes to the store, with the length of their column."""
    if isinstance(change, CreateUser):
        return [
            (change.email, EMAIL_LENGTH),
            (change.name, NAME_LENGTH),
            (change.title, TITLE_LENGTH),
            (change.user_type, USER_TYPE_LENGTH),
            (change.entra_id, ENTRA_ID_LENGTH),
        ]
    if isinstance(change, CreateTeam | RenameTeam):
        return [(change.name, NAME_LENGTH), (change.entra_id, ENTRA_ID_LENGTH)]
    if isinstance(change, AddMember):
        return [(change.team_entra_id, ENTRA_ID_LENGTH), (change.user_entra_id, ENTRA_ID_LENGTH)]
    limits = {"email": EMAIL_LENGTH, "name": NAME_LENGTH, "title": TITLE_LENGTH, "user_type": USER_TYPE_LENGTH}
    return [(new, limits.get(name, ENTRA_ID_LENGTH)) for name, _old, new in change.fields if isinstance(new, str)]


@PLANNER
@given(worlds())
def test_every_value_a_plan_writes_and_every_problem_can_be_stored(world):
    snapshot, state = world
    plan = diff(snapshot, state)
    for change in plan.changes:
        for value, limit in written_values(change):
            assert value is None or unstorable(value, limit) is None, (change, value)
    for problem in (*plan.errors, *plan.warnings):
        assert unstorable(problem.entra_id, ENTRA_ID_LENGTH) is None
        assert unstorable(problem.target, EMAIL_LENGTH) is None
        assert unstorable(problem.message, 10**6) is None


@PLANNER
@given(worlds())
def test_a_user_in_scope_that_was_not_read_is_never_touched(world):
    snapshot, state = world
    plan = diff(snapshot, state)
    read = {user.id for user in snapshot.users} | snapshot.deleted_user_ids
    in_scope = {a.principal_id for a in snapshot.assignments if a.principal_type == "User"}
    assigned_groups = {a.principal_id for a in snapshot.assignments if a.principal_type == "Group"}
    for group in snapshot.groups:
        if group.id in assigned_groups or snapshot.scope == "all":
            in_scope.update(group.member_ids or ())
    unread = in_scope - read
    untouchable = {user.id for user in state.users if user.entra_id in unread}
    for change in plan.changes:
        assert getattr(change, "user_id", None) not in untouchable, change
        assert getattr(change, "entra_id", None) not in unread or isinstance(change, CreateTeam | RenameTeam)
    reported = {problem.entra_id for problem in plan.errors if problem.code == "USER_NOT_READ"}
    assert reported == {problem_id(entra_id) for entra_id in unread}


def problem_id(entra_id: str) -> str:
    from syncd.plan import problem

    return problem("X", "user", entra_id, "", "").entra_id


@PLANNER
@given(worlds(failures=True))
def test_an_incomplete_snapshot_deprovisions_nothing_by_absence(world):
    snapshot, state = world
    plan = diff(snapshot, state)
    disabled = {user.id for user in snapshot.users if user.account_enabled is False}
    deactivated = set()
    for change in plan.changes:
        assert not isinstance(change, DeleteTeam), change
        if isinstance(change, DeactivateUser):
            evidence = {"deleted": snapshot.deleted_user_ids, "disabled": disabled}.get(change.reason, set())
            assert change.entra_id in evidence, change
            deactivated.add(change.user_id)
    inactive = {user.id for user in state.users if not user.active}
    for change in plan.changes:
        if isinstance(change, RemoveMember):
            assert change.user_id in deactivated | inactive, change
