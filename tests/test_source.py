"""The source seam: a source returns a snapshot that already carries the evidence, so a run plans once."""

from __future__ import annotations

import pytest

import syncd.reconcile
from syncd.config import load as load_config
from syncd.evidence import Evidence, users_to_ask_about
from syncd.model import Managed, ManagedUser
from syncd.reconcile import RunOptions, run_once
from syncd.simulator import Simulator, generate_tenant
from syncd.store import SqlStore
from tests.builders import assigned, group, snapshot, state, stored_user, user

TOKEN = "source-test-token-0123456789"

ada, bob, cy = user("ada"), user("bob"), user("cy")


def managed(*users: tuple[str, str, bool, str | None]) -> Managed:
    return Managed(users={entra_id: ManagedUser(email, active, reason) for entra_id, email, active, reason in users})


# ------------------------------------------------------------------ whom to ask about


def test_an_active_managed_user_the_snapshot_does_not_mention_is_asked_about():
    seen = snapshot(users=[ada], assignments=[assigned(ada)])
    store = managed((ada.id, "ada@contoso.com", True, None), (bob.id, "bob@contoso.com", True, None))
    assert users_to_ask_about(seen, store) == [bob.id]


def test_inactive_users_and_users_graph_answered_for_are_not_asked_about():
    seen = snapshot(users=[ada], assignments=[assigned(ada)], deleted=[cy.id])
    store = managed(
        (ada.id, "ada@contoso.com", True, None),
        (bob.id, "bob@contoso.com", False, "unassigned"),
        (cy.id, "cy@contoso.com", True, None),
    )
    assert users_to_ask_about(seen, store) == []


def test_the_inactive_holder_of_an_email_a_newcomer_claims_is_asked_about_unless_known_deleted():
    newcomer = user("ada2", user_principal_name="bob@contoso.com")
    seen = snapshot(users=[newcomer], assignments=[assigned(newcomer)])
    assert users_to_ask_about(seen, managed((bob.id, "bob@contoso.com", False, "unassigned"))) == [bob.id]
    assert users_to_ask_about(seen, managed((bob.id, "bob@contoso.com", False, "deleted"))) == []


def test_a_disabled_claimant_asks_about_nobody():
    newcomer = user("ada2", user_principal_name="bob@contoso.com", account_enabled=False)
    seen = snapshot(users=[newcomer], assignments=[assigned(newcomer)])
    assert users_to_ask_about(seen, managed((bob.id, "bob@contoso.com", False, "unassigned"))) == []


@pytest.mark.parametrize("fields", [{"scope": "all"}, {"partial": True, "subjects": frozenset()}])
def test_a_listing_of_everyone_or_an_on_demand_read_asks_about_nobody(fields):
    seen = snapshot(users=[ada], assignments=[assigned(ada)], **fields)
    assert users_to_ask_about(seen, managed((bob.id, "bob@contoso.com", True, None))) == []


def test_managed_is_what_the_store_manages_by_entra_id():
    local = stored_user(1, "local@contoso.com")
    kept = stored_user(2, "bob@contoso.com", source=bob, active=False, inactive_reason="disabled")
    known = Managed.of(state([local, kept]))
    assert dict(known.users) == {bob.id: ManagedUser("bob@contoso.com", False, "disabled")}
    assert known.user_with_email(" BOB@contoso.com") == bob.id
    assert known.user_with_email("local@contoso.com") is None


# ------------------------------------------------------------------ what absence means


def test_absence_is_evidence_only_in_a_complete_read_or_about_an_on_demand_subject():
    sales = group("Sales", [ada])
    complete = Evidence(snapshot(users=[ada], groups=[sales], assignments=[assigned(sales)]))
    assert complete.knows(bob.id) and complete.departure(bob.id) == "unassigned"
    broken = Evidence(snapshot(users=[ada], failures=[syncd.model.FetchFailure("GRAPH_UNAVAILABLE", "down")]))
    assert not broken.knows(bob.id) and broken.departure(bob.id) is None
    on_demand = Evidence(snapshot(partial=True, subjects=frozenset({bob.id})))
    assert on_demand.knows(bob.id) and not on_demand.knows(cy.id)


def test_positive_evidence_counts_even_in_an_incomplete_read():
    disabled = user("bob", account_enabled=False)
    broken = Evidence(
        snapshot(
            users=[disabled],
            deleted=[cy.id],
            failures=[syncd.model.FetchFailure("GRAPH_UNAVAILABLE", "down")],
        )
    )
    assert broken.departure(bob.id) == "disabled"
    assert broken.departure(cy.id) == "deleted"


# ------------------------------------------------------------------ one plan per run


@pytest.fixture
def synced(tmp_path):
    tenant = generate_tenant(seed=11, users=30, groups=2, direct_assignments=8)
    with Simulator(tenant, token=TOKEN) as simulator:
        token = tmp_path / "token"
        token.write_text(TOKEN)
        path = tmp_path / "config.toml"
        path.write_text(
            f'[store]\nurl = "{tmp_path / "syncd.db"}"\n\n'
            f'[graph]\nauth = "token_file"\ntoken_file = "{token}"\n'
            f'base_url = "{simulator.base_url}"\nservice_principal_id = "{tenant.service_principal_id}"\n'
            "max_retries = 1\n"
        )
        config = load_config(str(path))
        run_once(config, RunOptions(trigger="test"))
        yield tenant, config


def test_a_sync_that_must_ask_graph_why_users_left_plans_once(synced, monkeypatch):
    tenant, config = synced
    direct = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User"]
    in_groups = {
        member
        for a in tenant.list_assignments()
        if a["principalType"] == "Group"
        for member in tenant.member_ids(a["principalId"])
    }
    leavers = [user_id for user_id in direct if user_id not in in_groups and tenant.get_user(user_id)["accountEnabled"]]
    disabled, deleted, unassigned = leavers[:3]
    tenant.update_user(disabled, accountEnabled=False)
    tenant.unassign(disabled)
    tenant.delete_user(deleted)
    tenant.unassign(unassigned)
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    real = syncd.reconcile.diff
    monkeypatch.setattr(syncd.reconcile, "diff", counted)
    result = run_once(config, RunOptions(trigger="test"))
    assert len(calls) == 1
    reasons = {c.entra_id: c.reason for c in result.plan.changes if c.op == "deactivate_user"}
    assert reasons == {disabled: "disabled", deleted: "deleted", unassigned: "unassigned"}
    with SqlStore(config.store.url) as store:
        stored = {row["entra_id"]: row["inactive_reason"] for row in store.reports.users() if not row["active"]}
    assert stored == reasons
