"""One bad string is one object's error: the run goes on, on SQLite and PostgreSQL alike.

Graph's JSON can carry anything a string can: a lone surrogate (``"\\udfff"``), NUL, terminal
escapes, C1 controls, bidirectional overrides, values longer than the store's columns.  The one
rule of :func:`syncd.model.unstorable` decides what the store can hold; the planner refuses the
rest for that one user (``USER_INVALID``, ``USER_NO_EMAIL``) or group (``TEAM_INVALID``), so
everything else proceeds, the plan is exactly what sync applies, and both backends agree.  What the
command line prints from Graph or the store shows control characters as escapes.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from syncd.apply import apply_plan
from syncd.changes import DeactivateUser
from syncd.errors import GraphError
from syncd.model import (
    EMAIL_LENGTH,
    ENTRA_ID_LENGTH,
    NAME_LENGTH,
    TITLE_LENGTH,
    USER_TYPE_LENGTH,
    AppRole,
    SourceGroup,
    SourceUser,
    escape,
    normalise_name,
    unstorable,
    user_email,
)
from syncd.plan import diff
from syncd.store import schema
from tests.builders import ROLES, assigned, group, snapshot, state, stored_team, stored_user, uid, user
from tests.test_cli import Syncd, snapshot_doc


@pytest.fixture
def store(sql_store):
    """These tests look beneath the store contract: SQLite and PostgreSQL only."""
    return sql_store


BAD = {
    "lone surrogate": "\udfff",
    "NUL": "\x00",
    "escape sequence": "\x1b[31m",
    "newline": "\n",
    "C1 control": "\x85",
    "DEL": "\x7f",
    "too long": "x" * 400,
}
RAW_CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + ["\u202e", "\u2066", "\udfff"]


def has_raw_control(text: str) -> bool:
    return any(char in text for char in RAW_CONTROLS)


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("value", "limit", "stored"),
    [
        ("Zoë O'Brien", NAME_LENGTH, True),
        ("Sales \u202eevil", NAME_LENGTH, True),  # storable; shown escaped
        ("x" * NAME_LENGTH, NAME_LENGTH, True),
        ("x" * (NAME_LENGTH + 1), NAME_LENGTH, False),
        ("a\udfffb", NAME_LENGTH, False),
        ("a\x00b", NAME_LENGTH, False),
        ("a\tb", NAME_LENGTH, False),
        ("a\x9bb", NAME_LENGTH, False),
    ],
)
def test_one_rule_says_what_the_store_can_hold(value, limit, stored):
    assert (unstorable(value, limit) is None) is stored


def test_the_store_columns_are_the_limits_of_the_rule():
    columns = schema.users.c
    assert columns.email.type.length == EMAIL_LENGTH
    assert columns.name.type.length == schema.teams.c.name.type.length == NAME_LENGTH
    assert columns.title.type.length == TITLE_LENGTH
    assert columns.entra_id.type.length == schema.teams.c.entra_id.type.length == ENTRA_ID_LENGTH
    assert columns.user_type.type.length == USER_TYPE_LENGTH


@pytest.mark.parametrize(
    "upn",
    [
        "a\x1b[2J@contoso.com",
        "a\x00b@contoso.com",
        "a\u202eb@contoso.com",
        "a\u2066b@contoso.com",
        "a\u200bb@contoso.com",
        "a b@contoso.com",
        "a\tb@contoso.com",
        "a\u00a0b@contoso.com",
        "a\x85b@contoso.com",
        "a\udfff@contoso.com",
        "a\n@contoso.com",
        "x" * EMAIL_LENGTH + "@contoso.com",
    ],
)
def test_the_email_rule_refuses_controls_nul_bidi_overrides_and_whitespace(upn):
    assert user_email(SourceUser("x", user_principal_name=upn)) is None


@pytest.mark.parametrize("upn", ["zoë@contoso.com", "o'neil+tag@contoso.com", "ALICE@Contoso.com"])
def test_the_email_rule_keeps_real_addresses(upn):
    assert user_email(SourceUser("x", user_principal_name=upn)) == upn.lower()


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_a_normalised_name_can_always_be_stored(bad):
    name = normalise_name(f"Ann {bad} Lee {bad}")
    assert unstorable(name, NAME_LENGTH) is None
    assert name.startswith("Ann")


def test_escape_shows_control_characters_visibly():
    assert escape("a\x1b[31mb\x00\n\u202e\udfff\x9b") == "a\\x1b[31mb\\x00\\x0a\\u202e\\udfff\\x9b"
    assert escape("Zoë O’Brien 李") == "Zoë O’Brien 李"


@pytest.mark.parametrize("role_name", ["²", "٣", "1" * 40])
def test_a_role_named_with_odd_digits_is_an_unknown_role_not_a_crash(role_name):
    odd = AppRole("aaaaaaaa-0000-0000-0000-0000000000ff", role_name, None)
    ann = user("ann")
    tenant = replace(snapshot(users=[ann], assignments=[assigned(ann, odd.id)]), app_roles=(*ROLES, odd))
    plan = diff(tenant, state())
    assert plan.changes[0].user_type == "member"
    assert [w.code for w in plan.warnings] == ["ROLE_UNKNOWN"]


# --------------------------------------------------------------------------- on both backends


def tenant(bad: str):
    """Users and groups each bad in one value, beside good ones, and a user to deprovision."""
    title = user("tia", job_title=f"Le{bad}ad")
    upn = user("uma", user_principal_name=f"um{bad}a@contoso.com")
    bad_id = user("ida", id=uid("ida") + bad)
    name = user("nia", display_name=f"Nia {bad} Ray")
    bob = user("bob")
    ops = group("Ops", [title, bob])
    sales = SourceGroup(uid("group:Sales"), f"Sa{bad}les", (bob.id,))
    odd = SourceGroup(uid("group:Odd") + bad, "Odd", (bob.id,))
    tenant = snapshot(
        users=[title, upn, bad_id, name, bob],
        groups=[ops, sales, odd],
        assignments=[
            assigned(title),
            assigned(upn),
            assigned(bad_id),
            assigned(name),
            *map(assigned, (ops, sales, odd)),
        ],
    )
    before = state(
        [
            stored_user(1, "tia@contoso.com", source=title, name="Tia", title="Lead"),
            stored_user(2, "carol@contoso.com", entra_id=uid("carol")),
        ],
        [stored_team(1, "Ops", [1], entra_id=ops.id), stored_team(2, "Sales", [1], entra_id=sales.id)],
    )
    return tenant, before


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_bad_strings_are_per_object_errors_and_the_plan_is_what_sync_applies(bad, store, seed):
    tenant_snapshot, before = tenant(bad)
    seed(store, before)
    plan = diff(tenant_snapshot, store.load_state())

    codes = sorted((error.code, error.kind) for error in plan.errors)
    assert codes == [
        ("TEAM_INVALID", "group"),
        ("TEAM_INVALID", "group"),
        ("USER_INVALID", "user"),
        ("USER_INVALID", "user"),
        ("USER_NO_EMAIL", "user"),
    ]
    for problem in (*plan.errors, *plan.warnings):
        assert not has_raw_control(problem.target + problem.entra_id + problem.message)
        assert len(problem.entra_id) <= ENTRA_ID_LENGTH
    # the unrelated deprovisioning is not blocked
    assert DeactivateUser(2, uid("carol"), "carol@contoso.com", "unassigned") in plan.changes

    run_id = store.begin_run("test")
    result = apply_plan(store, plan, run_id)
    assert result.failed == []
    assert result.applied == len(plan.changes)
    assert len(store.reports.audit(run_id)) == len(plan.changes) + len(plan.errors) + len(plan.warnings)
    assert diff(tenant_snapshot, store.load_state()).changes == ()  # planned == applied

    after = store.load_state()
    users = {u.email: u for u in after.users}
    assert users["tia@contoso.com"] == before.users[0]  # frozen: no change, still active
    assert not users["carol@contoso.com"].active
    assert users["bob@contoso.com"].active
    assert unstorable(users["nia@contoso.com"].name, NAME_LENGTH) is None
    teams = {t.entra_id: t for t in after.teams}
    assert teams[uid("group:Sales")].name == "Sales"  # its group's name cannot be stored: untouched
    assert teams[uid("group:Sales")].member_ids == {1}
    assert teams[uid("group:Ops")].member_ids == {1, users["bob@contoso.com"].id}
    assert len(after.teams) == 2


def test_a_long_display_name_is_cut_to_the_column_with_a_warning(store):
    long = user("lea", display_name="Lea " + "x" * 400)
    plan = diff(snapshot(users=[long], assignments=[assigned(long)]), store.load_state())
    assert len(plan.changes[0].name) == NAME_LENGTH
    assert [w.code for w in plan.warnings] == ["NAME_NORMALISED"]
    result = apply_plan(store, plan, store.begin_run("test"))
    assert result.failed == [] and result.applied == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_lone_surrogate_in_one_title_does_not_block_unrelated_deprovisioning(
    backend, tmp_path, capsys, monkeypatch, request
):
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    syncd = Syncd(tmp_path, capsys, monkeypatch, url)
    syncd.write(snapshot_doc())
    assert syncd("sync", "--from-snapshot", str(syncd.snapshot))[0] == 0
    doc = snapshot_doc(groups=[])  # bob leaves with Sales: one deactivation
    doc["users"][0]["jobTitle"] = "Eng\udfff"
    doc["users"][0]["displayName"] = "Alice \x1b[2J\udfff"
    syncd.write(doc)
    code, out, err = syncd("plan", "--json", "--from-snapshot", str(syncd.snapshot))
    planned = json.loads(out)
    assert code == 3, err
    code, out, err = syncd("sync", "--json", "--from-snapshot", str(syncd.snapshot))
    synced = json.loads(out)
    assert code == 3, err
    assert synced["changes"] == planned["changes"] and synced["summary"] == planned["summary"]
    assert synced["summary"]["deactivate_user"] == 1 and synced["failed"] == []
    assert [e["code"] for e in synced["errors"]] == ["USER_INVALID"]
    assert "\\udfff" in synced["errors"][0]["message"]
    assert "\udfff" not in out and "\x1b" not in out
    users = {row["email"]: row for row in syncd.json("users")}
    assert users["alice@contoso.com"]["title"] == "Eng" and users["alice@contoso.com"]["active"]
    assert not users["bob@contoso.com"]["active"]


# --------------------------------------------------------------------------- what the command line prints


@pytest.fixture
def odd_store(tmp_path, capsys, monkeypatch):
    """A store synced from a tenant whose storable values carry bidi overrides, plus local objects
    with terminal escapes written by some other tool."""
    syncd = Syncd(tmp_path, capsys, monkeypatch)
    doc = snapshot_doc(groups=[{"id": uid("group:Sales"), "displayName": "Sales\u202eevil", "members": [uid("bob")]}])
    doc["users"][0]["jobTitle"] = "Eng\u2066"
    doc["users"][1]["displayName"] = "Bob\u202e"
    syncd.write(doc)
    assert syncd("sync", "--from-snapshot", str(syncd.snapshot))[0] == 0
    from syncd.store import SqlStore

    with SqlStore.open(f"sqlite:///{tmp_path / 'syncd.db'}") as store, store.transaction() as connection:
        now = schema.utc_now()
        connection.execute(
            schema.teams.insert().values(name="Evil\x1b]0;owned\x07\nteam", created_at=now, updated_at=now)
        )
        connection.execute(
            schema.users.insert().values(
                email="e\x1b[2j@local",
                name="E\x1b[31mvil\x00",
                user_type="member",
                active=True,
                created_at=now,
                updated_at=now,
            )
        )
    return syncd


@pytest.mark.parametrize("command", [("users",), ("teams",), ("log",), ("history",), ("status",)])
def test_text_output_from_the_store_escapes_control_characters(odd_store, command):
    code, out, err = odd_store(*command)
    assert code == 0, err
    assert not has_raw_control(out.replace("\n", "").replace("\t", "")), out
    if command in (("users",), ("teams",)):  # one line per row and a summary: no value breaks a line
        assert len(out.splitlines()) == len(odd_store.json(*command)) + 1


def test_teams_and_users_show_the_escapes(odd_store):
    _, out, _ = odd_store("teams")
    assert "Evil\\x1b]0;owned\\x07\\x0ateam" in out and "Sales\\u202eevil" in out
    _, out, _ = odd_store("users")
    assert "e\\x1b[2j@local\tE\\x1b[31mvil\\x00" in out


@pytest.mark.parametrize("command", [("users",), ("teams",), ("log",), ("history",), ("status",)])
def test_json_output_escapes_control_characters_and_round_trips(odd_store, command):
    code, out, err = odd_store(*command, "--json")
    assert code == 0, err
    assert not has_raw_control(out.replace("\n", ""))
    assert out.isascii()
    json.loads(out)


def test_plan_text_escapes_names_and_messages(tmp_path, capsys, monkeypatch):
    syncd = Syncd(tmp_path, capsys, monkeypatch)
    doc = snapshot_doc(groups=[{"id": uid("group:Sales"), "displayName": "Sa\u202eles", "members": [uid("bob")]}])
    doc["users"][0]["userPrincipalName"] = "alice\x1b[2J@contoso.com"
    doc["users"][1]["jobTitle"] = "Boss\u2067"
    syncd.write(doc)
    code, out, err = syncd("plan", "--from-snapshot", str(syncd.snapshot))
    assert code == 3, err
    assert not has_raw_control(out.replace("\n", "")), out
    assert "Sa\\u202eles" in out and "Boss\\u2067" in out and "alice\\x1b[2J@contoso.com" in out


def test_error_messages_escape_what_the_file_said(tmp_path, capsys, monkeypatch):
    syncd = Syncd(tmp_path, capsys, monkeypatch)
    doc = snapshot_doc()
    doc["users"][1]["id"] = doc["users"][0]["id"] = "\x1b]0;x\x07\udfff"
    syncd.write(doc)
    code, out, err = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 1 and "SNAPSHOT_INVALID" in err
    assert not has_raw_control(err.replace("\n", "")) and "\\x1b]0;x\\x07\\udfff" in err
    code, out, _ = syncd("history")
    assert code == 0 and not has_raw_control(out.replace("\n", "").replace("\t", ""))


@pytest.mark.parametrize(
    "args",
    [
        ("users", "create", "a\x00b@contoso.com", "--name", "A"),
        ("users", "create", "a\u202eb@contoso.com", "--name", "A"),
        ("users", "create", "a@contoso.com", "--name", "A", "--type", "²"),
        ("teams", "create", "Sales\x00"),
        ("teams", "create", "Sales\udfff"),
        ("teams", "create", "x" * 300),
        ("teams", "create", "Sales", "--member", "a\x00@contoso.com"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_local_objects_the_store_cannot_hold_are_refused_alike_on_both_backends(
    args, backend, tmp_path, capsys, monkeypatch, request
):
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    syncd = Syncd(tmp_path, capsys, monkeypatch, url)
    code, _out, err = syncd(*args)
    assert code == 2, err
    assert "INVALID_INPUT" in err and not has_raw_control(err.replace("\n", ""))


def test_an_error_message_carrying_what_graph_sent_can_be_recorded_on_both_backends(store):
    error = GraphError("group 'Sa\x00les\udfff\x1b[2J' is gone", code="GRAPH_NOT_FOUND")
    assert unstorable(error.message, 10**6) is None
    run_id = store.begin_run("test")
    store.finish_run(run_id, "failed", changes=0, errors=1, summary={}, message=f"{error.code}: {error}")
    assert store.reports.run(run_id)["message"] == "GRAPH_NOT_FOUND: group 'Sa\\x00les\\udfff\\x1b[2J' is gone"
