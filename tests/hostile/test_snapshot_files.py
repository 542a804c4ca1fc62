"""Every malformed snapshot file is SNAPSHOT_INVALID naming the key, never an internal error.

The reader takes strict JSON only (no NaN, no key twice, no integer too long to parse, no nesting
too deep to decode), refuses ids that appear twice, and keeps odd but well-formed strings for the
planner to judge one object at a time.  The writer's files read back to the same snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.errors import SnapshotError
from syncd.graph.snapshot_file import read_snapshot, snapshot_from_json, snapshot_to_json, write_snapshot
from syncd.model import AppRole, Assignment, Snapshot, SourceGroup, SourceUser
from tests.test_cli import Syncd, snapshot_doc

MINIMAL = '{"format": "syncd-snapshot", "version": 1, %s}'


def read_text(tmp_path: Path, text: str | bytes) -> Snapshot:
    path = tmp_path / "snapshot.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return read_snapshot(path)


def refused(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(SnapshotError) as raised:
        read_text(tmp_path, text)
    assert raised.value.code == "SNAPSHOT_INVALID"
    return raised.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL % ('"users": ' + "[" * 100_000 + "]" * 100_000), "nested too deeply"),
        ('{"format": "syncd-snapshot", "version": ' + "9" * 5000 + "}", "a number of 5000 digits"),
        (MINIMAL % ('"note": ' + "1" * 5000), "a number of 5000 digits"),
        (MINIMAL % '"partial": NaN', "NaN is not a JSON value"),
        (MINIMAL % '"note": -Infinity', "-Infinity is not a JSON value"),
        (MINIMAL % '"users": [{"id": "u1", "id": "u2"}]', "key 'id' appears twice"),
        (MINIMAL % '"users": [], "users": [{"id": "u1"}]', "key 'users' appears twice"),
        (
            MINIMAL % '"groups": [{"id": "g1", "displayName": "A"}, {"id": "g1", "displayName": "B"}]',
            "groups[1].id: 'g1' appears twice (also groups[0])",
        ),
        (MINIMAL % '"appRoles": [{"id": "r1"}, {"id": "r1"}]', "appRoles[1].id: 'r1' appears twice"),
        (MINIMAL % '"users": [{"id": "u1"}, {"id": "u1"}]', "users[1].id: 'u1' appears twice"),
        (
            MINIMAL % '"assignments": [{"principalId": "u1", "principalType": "User", "appRoleId": "r"}, '
            '{"principalId": "u1", "principalType": "User", "appRoleId": "r"}]',
            "assignments[1]: principal 'u1' holds app role 'r' twice (also assignments[0])",
        ),
        (
            MINIMAL
            % '"assignments": [{"principalId": "x", "principalType": "User"}, {"principalId": "x", "principalType": '
            '"Group", "appRoleId": "r"}]',
            "assignments[1].principalType: principal 'x' is assigned as a User elsewhere",
        ),
        (MINIMAL % '"failures": [{"code": "\\u001b[2J"}]', "failures[0].code: must be an error code"),
        (MINIMAL % '"version": 1', "key 'version' appears twice"),
        ("[]", "must hold one JSON object"),
        ('"\\udfff"', "must hold one JSON object"),
        ("", "not valid JSON"),
    ],
)
def test_malformed_files_are_snapshot_invalid_naming_the_key(tmp_path, text, message):
    assert message in refused(tmp_path, text)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("version", 1.0, "version: must be a whole number"),
        ("version", "1", "version: must be a whole number"),
        ("version", True, "version: must be a whole number"),
        ("version", 10**4000, "version: a very large number is newer"),
        ("scope", 7, "scope: must be a string"),
        ("appRoles", "Admin", "appRoles: must be a list"),
        ("assignments", [{"principalId": 5, "principalType": "User"}], "assignments[0].principalId: must be a string"),
        ("assignments", [{"principalId": "u1", "principalType": None}], "assignments[0].principalType: must be"),
        ("groups", [{"id": "g1"}], "groups[0].displayName: required"),
        ("groups", [{"id": "g1", "displayName": ["Sales"]}], "groups[0].displayName: must be a string"),
        ("groups", [{"id": "g1", "displayName": "S", "members": {"u1": 1}}], "groups[0].members: must be a list"),
        ("groups", [{"id": "", "displayName": "S"}], "groups[0].id: must not be empty"),
        ("users", [{"id": "u1", "jobTitle": 5}], "users[0].jobTitle: must be a string or null"),
        ("users", [{"id": "u1", "accountEnabled": 1}], "users[0].accountEnabled: must be true, false or null"),
        ("users", [None], "users[0]: must be an object"),
        ("deletedUserIds", "u1", "deletedUserIds: must be a list of ids"),
        ("deletedUserIds", [["u1"]], "deletedUserIds[0]: must be a string"),
        ("failures", [{"code": 5}], "failures[0].code: must be a string"),
        ("partial", None, "partial: must be true or false"),
        ("subjects", [1], "subjects[0]: must be a string"),
    ],
)
def test_wrong_types_name_the_key(key, value, message):
    document = {"format": "syncd-snapshot", "version": 1, key: value}
    with pytest.raises(SnapshotError) as raised:
        snapshot_from_json(document)
    assert message in raised.value.message


def test_invalid_utf8_is_refused_with_its_position(tmp_path):
    text = (MINIMAL % '"users": [{"id": "u1", "displayName": "Zo\xc3"}]').encode("latin-1")
    assert "not UTF-8: byte" in refused(tmp_path, text)


def test_a_byte_order_mark_is_allowed(tmp_path):
    snapshot = read_text(tmp_path, b"\xef\xbb\xbf" + (MINIMAL % '"users": [{"id": "u1"}]').encode())
    assert snapshot.users == (SourceUser("u1", attributes={"jobTitle": None}),)


def test_a_folder_is_not_a_file(tmp_path):
    (tmp_path / "snapshot.json").mkdir()
    with pytest.raises(SnapshotError, match="cannot read"):
        read_snapshot(tmp_path / "snapshot.json")


def test_messages_escape_the_values_they_quote(tmp_path):
    message = refused(tmp_path, MINIMAL % '"users": [{"id": "\\u001b[2J\\udfff"}, {"id": "\\u001b[2J\\udfff"}]')
    assert "\x1b" not in message and "\udfff" not in message
    assert "\\x1b[2J\\udfff" in message


def test_odd_strings_are_kept_for_the_planner_and_written_back_the_same(tmp_path):
    odd = "\x00\x1b[2J\x7f\x85\u202e\u2028\udfff"
    snapshot = Snapshot(
        app_roles=(AppRole("r" + odd, "Role" + odd, odd),),
        assignments=(Assignment("u" + odd, "User", "r" + odd), Assignment("g" + odd, "Group")),
        groups=(SourceGroup("g" + odd, "Sales" + odd, ("u" + odd,)),),
        users=(SourceUser("u" + odd, odd + "@x", odd, odd, None, {"jobTitle": odd}),),
        deleted_user_ids=frozenset({"d" + odd}),
    )
    path = tmp_path / "snapshot.json"
    write_snapshot(snapshot, path)
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # valid UTF-8: a lone surrogate is written as \udfff
    assert not any(char in text for char in ("\x00", "\x1b", "\x7f", "\x85", "\u202e", "\u2028"))
    assert "\\udfff" in text and "\\u202e" in text
    assert read_snapshot(path) == snapshot


def test_a_written_snapshot_is_accepted_by_the_reader(tmp_path):
    document = snapshot_doc()
    snapshot = snapshot_from_json(json.loads(json.dumps(document)))
    path = tmp_path / "snapshot.json"
    write_snapshot(snapshot, path)
    assert snapshot_to_json(read_snapshot(path)) == snapshot_to_json(snapshot)


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL % ('"users": ' + "[" * 50_000 + "]" * 50_000),
        '{"format": "syncd-snapshot", "version": ' + "1" * 5000 + "}",
        MINIMAL % '"groups": [{"id": "g", "displayName": "A"}, {"id": "g", "displayName": "B"}]',
    ],
    ids=["deep nesting", "huge version", "duplicate group ids"],
)
def test_the_command_line_reports_snapshot_invalid_not_an_internal_error(tmp_path, capsys, monkeypatch, text):
    syncd = Syncd(tmp_path, capsys, monkeypatch)
    syncd.snapshot.write_text(text)
    for command in ("plan", "sync"):
        code, _, err = syncd(command, "--from-snapshot", str(syncd.snapshot))
        assert code == 1 and "[SNAPSHOT_INVALID]" in err, err
        assert "internal error" not in err
