"""The command line against the Graph simulator: check, sync, on-demand, snapshots, failures, demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from syncd.simulator import Simulator, Tenant, generate_tenant
from tests.cli_runner import CliRunner

TOKEN = "cli-test-token-0123456789"


class Graphed(CliRunner):
    def __init__(self, tmp_path, capsys, tenant: Tenant, simulator: Simulator) -> None:
        self.tmp_path = tmp_path
        self.capsys = capsys
        self.tenant = tenant
        self.sim = simulator
        self.token_file = tmp_path / "token"
        self.token_file.write_text(TOKEN)
        self.config = tmp_path / "config.toml"
        self.write_config()

    def write_config(self, extra: str = "") -> None:
        self.config.write_text(
            f'[store]\nurl = "{self.tmp_path / "syncd.db"}"\n\n'
            f'[graph]\nauth = "token_file"\ntoken_file = "{self.token_file}"\n'
            f'base_url = "{self.sim.base_url}"\nservice_principal_id = "{self.tenant.service_principal_id}"\n'
            f"max_retries = 1\n{extra}"
        )


@pytest.fixture
def graphed(tmp_path, capsys):
    tenant = generate_tenant(seed=3, users=40, groups=3, direct_assignments=6)
    with Simulator(tenant, token=TOKEN) as simulator:
        yield Graphed(tmp_path, capsys, tenant, simulator)


def in_scope_enabled_users(tenant: Tenant) -> set[str]:
    assignments = tenant.list_assignments()
    ids = {a["principalId"] for a in assignments if a["principalType"] == "User"}
    for a in assignments:
        if a["principalType"] == "Group":
            ids.update(tenant.member_ids(a["principalId"]))
    return {i for i in ids if i in set(tenant.user_ids()) and tenant.get_user(i)["accountEnabled"]}


def test_check_reports_every_step_ok(graphed):
    code, out, _ = graphed("check")
    assert code == 0, out
    assert out.count("OK") >= 5 and "FAIL" not in out


def test_check_names_the_missing_permission(graphed):
    graphed.tenant.set_permissions({"Application.Read.All", "User.Read.All"})
    code, out, _ = graphed("check")
    assert code == 1
    assert "FAIL" in out and "GroupMember.Read.All" in out


def test_sync_from_graph_provisions_every_enabled_user_in_scope(graphed):
    code, _out, err = graphed("sync")
    assert code in (0, 3), err
    managed = {u["entra_id"] for u in graphed.json("users") if u["managed"] and u["active"]}
    assert managed == in_scope_enabled_users(graphed.tenant)
    assert graphed.json("plan")["changes"] == []


def test_503_on_one_groups_members_deprovisions_nothing_and_exits_non_zero(graphed):
    graphed("sync")
    before = graphed.json("teams")
    group_id = next(a["principalId"] for a in graphed.tenant.list_assignments() if a["principalType"] == "Group")
    for member in graphed.tenant.member_ids(group_id):
        graphed.tenant.remove_member(group_id, member)
    graphed.sim.fail(rf"/groups/{group_id}/(transitiveM|m)embers", status=503, times=None)
    code, _, err = graphed("sync", "--full")
    assert code == 3
    assert "GRAPH_UNAVAILABLE" in err or "503" in err
    assert graphed.json("teams") == before
    assert all(u["active"] for u in graphed.json("users") if u["managed"])


def test_wrong_token_is_graph_auth_and_never_shows_the_token(graphed):
    graphed.token_file.write_text("not-the-right-token-987")
    code, out, err = graphed("sync")
    assert code == 1
    assert "GRAPH_AUTH" in err
    assert "not-the-right-token-987" not in out + err and "Traceback" not in err


ALL_PERMISSIONS = frozenset({"Application.Read.All", "User.Read.All", "GroupMember.Read.All"})


@pytest.mark.parametrize("missing", sorted(ALL_PERMISSIONS))
def test_a_missing_permission_is_named_and_the_cycle_is_incomplete_and_deprovisions_nobody(graphed, missing):
    graphed("sync")
    users_before, teams_before = graphed.json("users"), graphed.json("teams")
    direct = [a["principalId"] for a in graphed.tenant.list_assignments() if a["principalType"] == "User"]
    for user_id in direct[:2]:  # people who left, whom an incomplete read must not see by their absence
        graphed.tenant.unassign(user_id)
    graphed.tenant.set_permissions(ALL_PERMISSIONS - {missing})
    code, out, _ = graphed("check")
    assert code == 1 and "FAIL" in out and missing in out
    code, _, err = graphed("sync")
    assert code == 3, err
    assert "GRAPH_PERMISSION" in err and missing in err
    assert graphed.json("users") == users_before and graphed.json("teams") == teams_before
    assert graphed.json("status")["last_run"]["status"] == "incomplete"


def test_a_upn_starting_with_a_dollar_syncs_on_demand(graphed):
    user_id = graphed.tenant.add_user(upn="$desk@contoso.com", display_name="Front Desk")
    graphed.tenant.assign(user_id)
    code, _, err = graphed("sync", "--user", "$desk@contoso.com")
    assert code == 0, err
    (user,) = [u for u in graphed.json("users") if u["entra_id"] == user_id]
    assert user["active"] and user["email"] == "$desk@contoso.com"


def test_unknown_service_principal_is_graph_not_found(graphed):
    graphed.config.write_text(
        graphed.config.read_text().replace(graphed.tenant.service_principal_id, "11111111-2222-3333-4444-555555555555")
    )
    code, _, err = graphed("sync")
    assert code == 1 and "GRAPH_NOT_FOUND" in err


def test_sync_user_on_demand_provisions_only_that_user(graphed):
    user_id = next(
        a["principalId"]
        for a in graphed.tenant.list_assignments()
        if a["principalType"] == "User" and graphed.tenant.get_user(a["principalId"])["accountEnabled"]
    )
    upn = graphed.tenant.get_user(user_id)["userPrincipalName"]
    code, _out, err = graphed("sync", "--user", upn)
    assert code in (0, 3), err
    users = graphed.json("users")
    assert [u["entra_id"] for u in users] == [user_id]
    assert graphed.json("history")[0]["trigger"] == "on-demand"


def test_sync_group_on_demand_provisions_its_team_and_members(graphed):
    group_id = next(a["principalId"] for a in graphed.tenant.list_assignments() if a["principalType"] == "Group")
    name = graphed.tenant.get_group(group_id)["displayName"]
    code, _, err = graphed("sync", "--group", name)
    assert code in (0, 3), err
    teams = graphed.json("teams")
    assert [t["name"] for t in teams] == [name]
    enabled = {
        m
        for m in graphed.tenant.member_ids(group_id)
        if m in set(graphed.tenant.user_ids()) and graphed.tenant.get_user(m)["accountEnabled"]
    }
    assert {u["entra_id"] for u in graphed.json("users")} == enabled


def test_on_demand_for_an_unknown_user_is_not_found(graphed):
    code, _, err = graphed("sync", "--user", "nobody@contoso.com")
    assert code == 2 and "NOT_FOUND" in err


def test_snapshot_replays_offline_to_the_same_plan(graphed, tmp_path):
    out_file = tmp_path / "captured.json"
    code, _, err = graphed("snapshot", "--out", str(out_file))
    assert code == 0, err
    from_graph = graphed.json("plan")
    replayed = graphed.json("plan", "--from-snapshot", str(out_file))
    assert replayed["changes"] == from_graph["changes"]


def test_scope_all_warns_and_takes_everyone(graphed):
    graphed.write_config('\n[sync]\nscope = "all"\n')
    _code, _, err = graphed("plan")
    assert 'sync.scope is "all": every user and group in the directory is provisioned' in err
    plan = graphed.json("plan")
    created = {c["entra_id"] for c in plan["changes"] if c["op"] == "create_user"}
    assert created > in_scope_enabled_users(graphed.tenant)


def test_demo_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "+ create user" in result.stdout
    assert "~ rename team" in result.stdout
    assert "(unassigned)" in result.stdout
    assert "Traceback" not in result.stderr


def first_direct_user(tenant: Tenant) -> str:
    return next(
        a["principalId"]
        for a in tenant.list_assignments()
        if a["principalType"] == "User" and tenant.get_user(a["principalId"])["accountEnabled"]
    )


def user_row(graphed, entra_id):
    return next(u for u in graphed.json("users") if u["entra_id"] == entra_id)


def test_incomplete_run_still_deactivates_a_user_graph_says_is_deleted(graphed):
    graphed("sync")
    leaving = first_direct_user(graphed.tenant)
    graphed.tenant.delete_user(leaving)
    group_id = next(a["principalId"] for a in graphed.tenant.list_assignments() if a["principalType"] == "Group")
    graphed.sim.fail(rf"/groups/{group_id}/(transitiveM|m)embers", status=503, times=None)
    code, _, _ = graphed("sync", "--full")
    assert code == 3
    row = user_row(graphed, leaving)
    assert (row["active"], row["inactive_reason"]) == (False, "deleted")
    assert sum(1 for u in graphed.json("users") if not u["active"]) == 1


def test_sync_user_on_demand_deactivates_an_unassigned_user(graphed):
    graphed("sync")
    leaving = first_direct_user(graphed.tenant)
    upn = graphed.tenant.get_user(leaving)["userPrincipalName"]
    in_groups = any(
        leaving in graphed.tenant.member_ids(a["principalId"])
        for a in graphed.tenant.list_assignments()
        if a["principalType"] == "Group"
    )
    graphed.tenant.unassign(leaving)
    code, _, err = graphed("sync", "--user", upn)
    assert code == 0, err
    row = user_row(graphed, leaving)
    assert row["active"] is in_groups
    if not in_groups:
        assert row["inactive_reason"] == "unassigned"


def test_sync_user_on_demand_deactivates_a_deleted_user_named_by_email(graphed):
    graphed("sync")
    leaving = first_direct_user(graphed.tenant)
    email = user_row(graphed, leaving)["email"]
    graphed.tenant.delete_user(leaving)
    code, _, err = graphed("sync", "--user", email)
    assert code == 0, err
    row = user_row(graphed, leaving)
    assert (row["active"], row["inactive_reason"]) == (False, "deleted")


@pytest.mark.parametrize("length", [120, 200])
def test_a_group_is_found_by_a_name_longer_than_graph_matches_plainly(graphed, length):
    """Graph matches at most 120 characters with eq unless the query is an advanced one."""
    group_id = next(a["principalId"] for a in graphed.tenant.list_assignments() if a["principalType"] == "Group")
    name = ("Long-named team " * 20)[:length]
    graphed.tenant.rename_group(group_id, name)
    code, _, err = graphed("sync", "--group", name)
    assert code in (0, 3), err
    assert [t["name"] for t in graphed.json("teams")] == [name]


def test_a_user_is_found_by_a_mail_longer_than_graph_matches_plainly(graphed):
    mail = ("very.long.mailbox.name." * 6) + "x@contoso.com"
    assert len(mail) > 120
    user_id = graphed.tenant.add_user("short@contoso.com", "Short Name", mail=mail)
    graphed.tenant.assign(user_id)
    code, _, err = graphed("sync", "--user", mail)
    assert code in (0, 3), err
    assert [u["entra_id"] for u in graphed.json("users")] == [user_id]


def test_sync_group_on_demand_removes_members_and_deletes_an_unassigned_groups_team(graphed):
    graphed("sync")
    group_id = next(a["principalId"] for a in graphed.tenant.list_assignments() if a["principalType"] == "Group")
    name = graphed.tenant.get_group(group_id)["displayName"]
    team = next(t for t in graphed.json("teams") if t["entra_id"] == group_id)
    email = team["members"][0]
    leaving = next(u["entra_id"] for u in graphed.json("users") if u["email"] == email)
    graphed.tenant.remove_member(group_id, leaving)
    code, _, err = graphed("sync", "--group", name)
    assert code == 0, err
    team = next(t for t in graphed.json("teams") if t["entra_id"] == group_id)
    assert email not in team["members"]
    graphed.tenant.unassign(group_id)
    code, _, err = graphed("sync", "--group", name)
    assert code == 0, err
    assert group_id not in {t["entra_id"] for t in graphed.json("teams")}


def test_sigterm_ends_a_one_shot_sync_like_ctrl_c_and_records_it(graphed):
    import signal
    import time

    graphed.sim.delay(30, path_regex="appRoleAssignedTo", times=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "--config", str(graphed.config), "sync"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    from syncd.store import SqlStore

    deadline = time.monotonic() + 20
    with SqlStore(f"sqlite:///{graphed.tmp_path / 'syncd.db'}") as store:
        while time.monotonic() < deadline:  # the run is recorded before Graph is read
            if store.schema_revision() and (store.reports.last_run() or {}).get("status") == "running":
                break
            time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert "Stopped: nothing of it was applied" in err and "Traceback" not in err
    last = graphed.json("history")[0]
    assert last["status"] == "failed" and "interrupted" in last["message"]
    assert graphed.json("users") == []


def test_status_says_how_graph_is_read(graphed):
    assert graphed.json("status")["reads"] == {
        "mode": "full",
        "last_full_at": None,
        "last_incremental_at": None,
        "settled": False,
    }
    graphed("sync")
    reads = graphed.json("status")["reads"]
    assert reads["mode"] == "incremental" and reads["last_full_at"] and reads["last_incremental_at"] is None
    assert reads["settled"] is True, "the sync applied its whole plan"
    graphed("sync")
    assert graphed.json("status")["reads"]["last_incremental_at"]
    code, out, _ = graphed("status")
    assert code == 0 and "Graph reads: incremental; last full read" in out and "Store: settled" in out
    assert graphed("users", "create", "local@contoso.com", "--name", "Local Person")[0] == 0
    assert graphed.json("status")["reads"]["settled"] is False, "a local change unsettles the store"
    code, out, _ = graphed("status")
    assert "Store: not settled" in out


def test_full_reads_the_whole_application_and_cannot_be_combined_with_an_on_demand_read(graphed):
    graphed("sync")
    graphed.sim.reset_counts()
    code, _, err = graphed("sync", "--full")
    assert code == 0, err
    assert graphed.sim.count("appRoleAssignedTo") >= 1
    code, _, err = graphed("sync", "--full", "--user", "someone@contoso.com")
    assert code == 2 and "--full" in err
    code, _, err = graphed("plan", "--full", "--from-snapshot", "x.json")
    assert code == 2 and "--full" in err


def test_status_says_the_store_is_not_settled_when_a_full_read_is_due(graphed):
    import time

    graphed.config.write_text(graphed.config.read_text() + "\n[sync]\nfull_every_hours = 0.0001\n")
    code, _, err = graphed("sync")
    assert code in (0, 3), err
    assert graphed.json("status")["reads"]["last_full_at"] is not None
    time.sleep(0.5)  # the last full read is now older than full_every_hours
    assert graphed.json("status")["reads"]["settled"] is False
