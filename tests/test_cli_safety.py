"""The brakes on the command line: refusals that are recorded runs, --allow per category, the last
admin, and reviewed plans (``syncd plan --out`` then ``syncd apply``)."""

from __future__ import annotations

import json
import time

import pytest

from tests.builders import ADMIN, MEMBER, uid
from tests.test_cli import ALICE, BOB, SALES, snapshot_doc
from tests.test_cli import syncd as syncd  # the fixture, re-exported for pytest

CAROL, DAN, ERIN = uid("carol"), uid("dan"), uid("erin")


def people(*ids: str) -> list[dict]:
    names = {ALICE: "alice", BOB: "bob", CAROL: "carol", DAN: "dan", ERIN: "erin"}
    return [
        {
            "id": i,
            "userPrincipalName": f"{names[i]}@contoso.com",
            "displayName": names[i].title(),
            "accountEnabled": True,
        }
        for i in ids
    ]


def team_of(*members: str) -> list[dict]:
    return [{"id": SALES, "displayName": "Sales", "members": list(members)}]


def tenant(*ids: str, admin: str | None = ALICE, members: tuple[str, ...] | None = None) -> dict:
    """Everyone in ``ids`` assigned directly (``admin`` with the Admin role), and the Sales team."""
    assignments = [
        {"principalId": i, "principalType": "User", "appRoleId": ADMIN if i == admin else MEMBER} for i in ids
    ]
    assignments.append({"principalId": SALES, "principalType": "Group", "appRoleId": MEMBER})
    return snapshot_doc(
        users=people(*ids), groups=team_of(*(members if members is not None else ids)), assignments=assignments
    )


@pytest.fixture
def five(syncd):
    """Five users provisioned (alice the admin), all in Sales; max_deactivations is 1 in this config."""
    syncd.config.write_text(syncd.config.read_text().replace("max_deactivations = 1", "max_deactivations = 100"))
    syncd.write(tenant(ALICE, BOB, CAROL, DAN, ERIN))
    code, _, err = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert code == 0, err
    return syncd


def sync(syncd, *args: str):
    return syncd("sync", *args, "--from-snapshot", str(syncd.snapshot))


# ------------------------------------------------------------------ refusals are recorded runs with a readable plan


def test_a_refused_run_is_recorded_and_its_plan_can_be_read(five):
    five.write(tenant(ALICE, members=(ALICE,)))  # four of five unassigned at once
    code, _, err = sync(five)
    assert code == 4
    assert "SAFETY_DEACTIVATIONS" in err and "syncd sync --allow deactivations" in err
    run = five.json("history")[0]
    assert run["status"] == "refused"
    rows = five.json("log", "--run", str(run["id"]))
    assert sorted(row["target"] for row in rows if row["op"] == "deactivate_user") == [
        "bob@contoso.com",
        "carol@contoso.com",
        "dan@contoso.com",
        "erin@contoso.com",
    ]
    assert {row["status"] for row in rows} == {"refused"}
    code, out, _ = five("log", "--run", str(run["id"]))
    assert code == 0 and "refused" in out and "deactivate_user" in out
    assert all(user["active"] for user in five.json("users")), "nothing of a refused plan is applied"


def test_allow_lifts_one_category_and_the_others_still_hold(five):
    five.write(tenant(ALICE, members=(ALICE,)))
    code, _, err = sync(five, "--allow", "deactivations")
    assert code == 4 and "SAFETY_MEMBER_REMOVALS" in err and "SAFETY_DEACTIVATIONS" not in err
    code, _, err = sync(five, "--allow", "deactivations", "--allow", "member_removals")
    assert code == 0, err
    assert sum(not user["active"] for user in five.json("users")) == 4


def test_an_unknown_category_is_a_usage_error(five):
    code, _, err = sync(five, "--allow", "everything")
    assert code == 2 and "everything" in err


# ------------------------------------------------------------------ the last admin


def test_the_last_admin_unassigned_is_held_back_reported_and_audited(five):
    five.write(tenant(BOB, CAROL, DAN, ERIN, admin=None, members=(BOB, CAROL, DAN, ERIN)))
    code, _, err = sync(five)
    assert code == 3 and "LAST_ADMIN" in err and "--allow-last-admin" in err
    users = {user["email"]: user for user in five.json("users")}
    assert users["alice@contoso.com"]["active"] and users["alice@contoso.com"]["user_type"] == "admin"
    assert any(row["error_code"] == "LAST_ADMIN" for row in five.json("log"))
    code, _, err = sync(five)
    assert code == 3 and "LAST_ADMIN" in err, "reported every run"
    code, _, err = sync(five, "--allow-last-admin")
    assert code == 0, err
    assert not {user["email"]: user for user in five.json("users")}["alice@contoso.com"]["active"]


def test_the_last_admin_disabled_in_entra_is_deactivated_and_the_run_says_no_admin_is_left(five):
    doc = tenant(ALICE, BOB, CAROL, DAN, ERIN)
    doc["users"][0]["accountEnabled"] = False
    five.write(doc)
    code, _, err = sync(five)
    assert code == 3 and "NO_ADMIN_LEFT" in err
    users = {user["email"]: user for user in five.json("users")}
    assert (users["alice@contoso.com"]["active"], users["alice@contoso.com"]["inactive_reason"]) == (False, "disabled")


# ------------------------------------------------------------------ reviewed plans


def test_a_saved_plan_is_applied_exactly_as_reviewed(five):
    plan_file = five.folder / "reviewed.json"
    five.write(tenant(ALICE, BOB, CAROL, DAN))
    code, out, err = five("plan", "--json", "--out", str(plan_file), "--from-snapshot", str(five.snapshot))
    assert code == 0, err
    saved = json.loads(plan_file.read_text())
    assert saved["format"] == "syncd-plan" and saved["plan"] == json.loads(out)
    assert saved["store_fingerprint"] and saved["created_at"]
    code, _, err = five("apply", str(plan_file))
    assert code == 0, err
    run = five.json("history")[0]
    assert run["trigger"] == "apply" and run["status"] == "success"
    applied = [(row["op"], row["target"]) for row in five.json("log")]
    planned = [(change["op"], change["target"]) for change in saved["plan"]["changes"]]
    assert applied == planned
    code, _, err = five("apply", str(plan_file))
    assert code == 4 and "PLAN_STALE" in err, "the store changed: the plan applied once is stale"


def test_a_saved_plan_is_refused_when_the_store_changed_since(five):
    plan_file = five.folder / "reviewed.json"
    five.write(tenant(ALICE, BOB, CAROL, DAN))
    assert five("plan", "--out", str(plan_file), "--from-snapshot", str(five.snapshot))[0] == 0
    five("users", "create", "frank@contoso.com", "--name", "Frank")
    code, _, err = five("apply", str(plan_file))
    assert code == 4 and "PLAN_STALE" in err and "syncd plan --out" in err
    assert five.json("history")[0]["status"] == "refused"
    assert all(user["active"] for user in five.json("users"))


def test_a_saved_plan_older_than_the_limit_is_refused(five):
    five.config.write_text(five.config.read_text() + "plan_max_age_minutes = 0.0001\n")
    plan_file = five.folder / "reviewed.json"
    five.write(tenant(ALICE, BOB, CAROL, DAN))
    assert five("plan", "--out", str(plan_file), "--from-snapshot", str(five.snapshot))[0] == 0
    time.sleep(0.05)
    code, _, err = five("apply", str(plan_file))
    assert code == 4 and "PLAN_STALE" in err and "plan_max_age_minutes" in err


@pytest.mark.parametrize(
    "edit",
    [
        lambda doc: doc["records"]["changes"][0].update(email="mallory@evil.example"),
        lambda doc: doc.update(store_fingerprint="0" * 64),
        lambda doc: doc.update(created_at="2099-01-01T00:00:00+00:00"),
        lambda doc: doc["records"]["changes"].append(doc["records"]["changes"][0]),
    ],
    ids=["a change", "the fingerprint", "the time", "a change added"],
)
def test_an_edited_plan_is_invalid_and_nothing_is_applied(five, edit):
    plan_file = five.folder / "reviewed.json"
    five.write(tenant(ALICE, BOB, CAROL, DAN))
    assert five("plan", "--out", str(plan_file), "--from-snapshot", str(five.snapshot))[0] == 0
    doc = json.loads(plan_file.read_text())
    edit(doc)
    plan_file.write_text(json.dumps(doc))
    code, _, err = five("apply", str(plan_file))
    assert code == 2 and "PLAN_INVALID" in err
    assert all(user["active"] for user in five.json("users"))


@pytest.mark.parametrize("content", ["not json", '{"format": "syncd-snapshot"}', "[]", ""])
def test_a_file_that_is_not_a_plan_is_invalid(five, content):
    plan_file = five.folder / "other.json"
    plan_file.write_text(content)
    code, _, err = five("apply", str(plan_file))
    assert code == 2 and "PLAN_INVALID" in err and "Traceback" not in err
    assert five("apply", str(five.folder / "missing.json"))[0] == 2


def test_a_saved_plan_is_held_to_the_safety_limits(five):
    plan_file = five.folder / "reviewed.json"
    five.write(tenant(ALICE, members=(ALICE,)))
    assert five("plan", "--out", str(plan_file), "--from-snapshot", str(five.snapshot))[0] == 4
    code, _, err = five("apply", str(plan_file))
    assert code == 4 and "SAFETY_DEACTIVATIONS" in err and f"syncd apply {plan_file}" in err
    code, _, err = five("apply", str(plan_file), "--allow-deletes")
    assert code == 0, err
    assert sum(not user["active"] for user in five.json("users")) == 4
