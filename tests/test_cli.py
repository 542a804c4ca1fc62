"""The command line, end to end from snapshot files: every command and every exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import ADMIN, ROLES, uid
from tests.cli_runner import CliRunner

ALICE, BOB, CAROL = uid("alice"), uid("bob"), uid("carol")
SALES = uid("group:Sales")


def snapshot_doc(*, users=None, groups=None, assignments=None, **extra):
    users = (
        users
        if users is not None
        else [
            {
                "id": ALICE,
                "userPrincipalName": "Alice@Contoso.com",
                "displayName": "Alice (Ops)",
                "jobTitle": "Eng",
                "accountEnabled": True,
            },
            {"id": BOB, "userPrincipalName": "bob@contoso.com", "displayName": "Bob", "accountEnabled": True},
        ]
    )
    groups = groups if groups is not None else [{"id": SALES, "displayName": "Sales", "members": [ALICE, BOB]}]
    assignments = (
        assignments
        if assignments is not None
        else [
            {"principalId": SALES, "principalType": "Group", "appRoleId": "00000000-0000-0000-0000-000000000000"},
            {"principalId": ALICE, "principalType": "User", "appRoleId": ADMIN},
        ]
    )
    return {
        "format": "syncd-snapshot",
        "version": 1,
        "scope": "assigned",
        "appRoles": [{"id": r.id, "displayName": r.display_name, "value": r.value} for r in ROLES],
        "assignments": assignments,
        "groups": groups,
        "users": users,
        **extra,
    }


class Syncd(CliRunner):
    """Runs the CLI in-process against one config file and database."""

    def __init__(self, folder: Path, capsys, monkeypatch, store_url: str | None = None) -> None:
        self.folder = folder
        self.capsys = capsys
        self.config = folder / "config.toml"
        url = store_url or f"sqlite:///{folder / 'syncd.db'}"
        self.config.write_text(f'[store]\nurl = "{url}"\n\n[safety]\nmax_deactivations = 1\n')
        self.snapshot = folder / "snapshot.json"
        monkeypatch.delenv("SYNCD_CONFIG", raising=False)

    def write(self, doc: dict) -> Path:
        self.snapshot.write_text(json.dumps(doc))
        return self.snapshot


@pytest.fixture
def syncd(tmp_path, capsys, monkeypatch):
    return Syncd(tmp_path, capsys, monkeypatch)


def test_plan_shows_the_diff_and_writes_nothing(syncd):
    syncd.write(snapshot_doc())
    code, out, _ = syncd("plan", "--from-snapshot", str(syncd.snapshot))
    assert code == 0
    assert "+ create user alice@contoso.com" in out
    assert "+ create team 'Sales'" in out
    assert "+ add member bob@contoso.com to team 'Sales'" in out
    assert out.strip().splitlines()[-1].startswith("Plan: 2 create user, 1 create team, 2 add member")
    assert syncd.json("users") == []


def test_plan_json_has_the_documented_keys(syncd):
    syncd.write(snapshot_doc())
    data = syncd.json("plan", "--from-snapshot", str(syncd.snapshot))
    assert set(data) >= {"changes", "errors", "summary"}
    first = data["changes"][0]
    assert first["op"] == "create_user"
    assert first["target"] == "alice@contoso.com"
    assert first["entra_id"] == ALICE
    assert first["fields"]["name"] == [None, "Alice Ops"]
    assert first["fields"]["user_type"] == [None, "admin"]
    assert data["summary"] == {"create_user": 2, "create_team": 1, "add_member": 2}


def test_sync_applies_then_a_second_sync_has_nothing_to_do(syncd):
    syncd.write(snapshot_doc())
    code, out, _ = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 0, out
    assert "applied 5 changes" in out
    users = syncd.json("users")
    assert [(u["email"], u["name"], u["user_type"], u["active"], u["managed"]) for u in users] == [
        ("alice@contoso.com", "Alice Ops", "admin", True, True),
        ("bob@contoso.com", "Bob", "member", True, True),
    ]
    assert users[0]["entra_id"] == ALICE and users[0]["title"] == "Eng"
    teams = syncd.json("teams")
    assert teams == [
        {"name": "Sales", "entra_id": SALES, "managed": True, "members": ["alice@contoso.com", "bob@contoso.com"]}
    ]
    again = syncd.json("plan", "--from-snapshot", str(syncd.snapshot))
    assert again["changes"] == []


def test_sync_dry_run_changes_nothing(syncd):
    syncd.write(snapshot_doc())
    code, out, _ = syncd("sync", "--dry-run", "--from-snapshot", str(syncd.snapshot))
    assert code == 0 and "+ create user" in out
    assert syncd.json("users") == []


def test_status_history_and_log_describe_the_last_run(syncd):
    syncd.write(snapshot_doc())
    syncd("sync", "--from-snapshot", str(syncd.snapshot))
    status = syncd.json("status")
    assert status["paused"] is False
    assert status["active_users"] == 2 and status["inactive_users"] == 0 and status["teams"] == 1
    last = status["last_run"]
    assert {"id", "status", "started_at", "finished_at", "changes"} <= set(last)
    assert last["status"] == "success" and last["changes"] == 5
    history = syncd.json("history")
    assert history[0]["id"] == last["id"]
    log = syncd.json("log", "--run", str(last["id"]))
    assert sorted(row["op"] for row in log if row["status"] == "applied") == [
        "add_member",
        "add_member",
        "create_team",
        "create_user",
        "create_user",
    ]
    code, out, _ = syncd("log")
    assert code == 0 and "create_user" in out


def test_deactivation_is_counted_out_of_seats_and_keeps_the_reason(syncd):
    syncd.write(snapshot_doc())
    syncd("sync", "--from-snapshot", str(syncd.snapshot))
    doc = snapshot_doc(groups=[{"id": SALES, "displayName": "Sales", "members": [ALICE]}])
    syncd.write(doc)
    code, out, _ = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 0, out
    bob = next(u for u in syncd.json("users") if u["email"] == "bob@contoso.com")
    assert bob["active"] is False and bob["inactive_reason"] == "unassigned"
    assert syncd.json("status")["active_users"] == 1


def test_safety_limit_refuses_whole_plan_with_exit_4_unless_allowed(syncd):
    syncd.write(snapshot_doc())
    syncd("sync", "--from-snapshot", str(syncd.snapshot))
    syncd.write(snapshot_doc(users=[], groups=[], assignments=[]))
    code, _out, err = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 4
    assert "safety.max_deactivations" in err and "--allow-deletes" in err
    assert all(u["active"] for u in syncd.json("users"))
    assert syncd("plan", "--from-snapshot", str(syncd.snapshot))[0] == 4
    # the last admin is braked on its own: --allow-deletes lifts the limits, not that rule
    code, _, _ = syncd("sync", "--allow-deletes", "--allow-last-admin", "--from-snapshot", str(syncd.snapshot))
    assert code == 0
    assert not any(u["active"] for u in syncd.json("users"))
    assert syncd.json("teams") == []


def test_per_object_errors_exit_3_and_the_rest_proceeds(syncd):
    doc = snapshot_doc(
        users=[
            {"id": ALICE, "userPrincipalName": "alice@contoso.com", "displayName": "Alice"},
            {"id": BOB, "userPrincipalName": None, "displayName": "Bob"},
        ],
        groups=[],
        assignments=[{"principalId": ALICE, "principalType": "User"}, {"principalId": BOB, "principalType": "User"}],
    )
    syncd.write(doc)
    code, _out, err = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 3
    assert "USER_NO_EMAIL" in err
    assert [u["email"] for u in syncd.json("users")] == ["alice@contoso.com"]
    log = syncd.json("log")
    assert any(row["status"] == "error" and row["error_code"] == "USER_NO_EMAIL" for row in log)


def test_pause_makes_sync_change_nothing_and_exit_0(syncd):
    syncd.write(snapshot_doc())
    assert syncd("pause")[0] == 0
    assert syncd.json("status")["paused"] is True
    code, out, _ = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 0 and "paused" in out.lower()
    assert syncd.json("users") == []
    assert syncd("resume")[0] == 0
    assert syncd.json("status")["paused"] is False
    assert syncd("sync", "--from-snapshot", str(syncd.snapshot))[0] == 0
    assert len(syncd.json("users")) == 2


def test_local_users_and_teams_are_created_unmanaged_and_adopted_by_sync(syncd):
    assert syncd("users", "create", "Alice@Contoso.com", "--name", "Alice A")[0] == 0
    assert syncd("users", "create", "zed@contoso.com", "--name", "Zed", "--type", "viewer")[0] == 0
    assert syncd("teams", "create", "Sales", "--member", "zed@contoso.com")[0] == 0
    users = syncd.json("users")
    assert [(u["email"], u["managed"], u["entra_id"]) for u in users] == [
        ("alice@contoso.com", False, None),
        ("zed@contoso.com", False, None),
    ]
    assert syncd.json("teams")[0]["managed"] is False
    syncd.write(snapshot_doc())
    code, out, _ = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 0, out
    users = {u["email"]: u for u in syncd.json("users")}
    assert users["alice@contoso.com"]["managed"] is True and users["alice@contoso.com"]["entra_id"] == ALICE
    assert users["zed@contoso.com"]["managed"] is False and users["zed@contoso.com"]["active"] is True
    teams = syncd.json("teams")
    assert teams == [
        {"name": "Sales", "entra_id": SALES, "managed": True, "members": ["alice@contoso.com", "bob@contoso.com"]}
    ]


def test_creating_a_duplicate_local_user_is_a_clear_error(syncd):
    syncd("users", "create", "a@contoso.com", "--name", "A")
    code, _, err = syncd("users", "create", "A@contoso.com", "--name", "A")
    assert code == 2 and "a@contoso.com" in err and "Traceback" not in err


def test_team_with_unknown_member_is_refused_and_nothing_is_written(syncd):
    code, _, err = syncd("teams", "create", "Ops", "--member", "nobody@contoso.com")
    assert code == 2 and "nobody@contoso.com" in err
    assert syncd.json("teams") == []


def test_bad_user_type_is_a_usage_error(syncd):
    code, _, err = syncd("users", "create", "a@contoso.com", "--name", "A", "--type", "boss")
    assert code == 2 and "--type" in err


def test_errors_lists_every_code(syncd):
    from syncd.errors import CODES

    code, out, _ = syncd("errors")
    assert code == 0
    for name in CODES:
        assert name in out
    assert {row["code"] for row in syncd.json("errors")} == set(CODES)


def test_unknown_command_and_option_exit_2(syncd):
    assert syncd("frobnicate")[0] == 2
    assert syncd("plan", "--bogus")[0] == 2


def test_missing_config_file_exits_78(syncd, tmp_path):
    syncd.config = tmp_path / "absent.toml"
    code, _, err = syncd("status")
    assert code == 78 and "no such file" in err and "Traceback" not in err


def test_malformed_config_exits_78_with_every_problem(syncd):
    syncd.config.write_text('[sync]\nscope = "everyone"\nbogus = 1\n[store\n')
    code, _, err = syncd("status")
    assert code == 78 and "not valid TOML" in err
    syncd.config.write_text('[sync]\nscope = "everyone"\nbogus = 1\n')
    code, _, err = syncd("status")
    assert code == 78
    assert 'sync.scope: must be "assigned" or "all"' in err and "sync.bogus: unknown key" in err


def test_config_check_validates(syncd):
    assert syncd("config", "check")[0] == 0


def test_plan_without_graph_or_snapshot_is_a_config_error(syncd):
    code, _, err = syncd("plan")
    assert code == 78 and "--from-snapshot" in err


def test_unreachable_database_is_a_clear_error(syncd):
    syncd.config.write_text('[store]\nurl = "postgresql+psycopg://nobody:secretpw@127.0.0.1:1/none"\n')
    code, _, err = syncd("status")
    assert code == 1 and "STORE_UNREACHABLE" in err
    assert "secretpw" not in err and "Traceback" not in err


def test_database_in_missing_folder_is_a_clear_error(syncd, tmp_path):
    syncd.config.write_text(f'[store]\nurl = "{tmp_path / "no" / "such" / "dir" / "x.db"}"\n')
    code, _, err = syncd("status")
    assert code == 1 and "STORE_UNREACHABLE" in err and "Traceback" not in err


def test_bad_snapshot_file_is_a_clear_error(syncd):
    syncd.snapshot.write_text("{not json")
    code, _, err = syncd("plan", "--from-snapshot", str(syncd.snapshot))
    assert code == 1 and "SNAPSHOT_INVALID" in err and "Traceback" not in err
    code, _, err = syncd("plan", "--from-snapshot", str(syncd.folder / "absent.json"))
    assert code in (1, 2) and "Traceback" not in err


def test_db_upgrade_reports_the_revision(syncd):
    code, out, _ = syncd("db", "upgrade")
    assert code == 0 and "revision" in out


def test_every_command_has_help():
    from syncd.cli import cli

    def walk(group, prefix):
        for name, command in group.commands.items():
            yield [*prefix, name]
            if hasattr(command, "commands"):
                yield from walk(command, [*prefix, name])

    for args in walk(cli, []):
        result = subprocess.run([sys.executable, "-m", "syncd", *args, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, args
        assert "Usage:" in result.stdout


def test_quiet_sync_prints_nothing_when_all_went_well_but_still_reports_problems(syncd):
    syncd.write(snapshot_doc())
    code, out, err = syncd("-q", "sync", "--from-snapshot", str(syncd.snapshot))
    assert (code, out) == (0, "")
    assert "INFO" not in err and "create user" not in err  # warnings only (a name was normalised)
    syncd.write(
        snapshot_doc(
            users=[{"id": ALICE, "userPrincipalName": None}],
            groups=[],
            assignments=[{"principalId": ALICE, "principalType": "User"}],
        )
    )
    code, out, err = syncd("-q", "sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 3 and "USER_NO_EMAIL" in err
