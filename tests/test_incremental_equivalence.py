"""A store kept by incremental runs is always the store full reads keep: a Hypothesis state machine.

Random tenant changes (assign, unassign, rename, disable, enable, delete, role change, membership
moves, group rename, assignment and deletion, deletion to the deleted items and restore, new users
and groups, userPrincipalNames moved or freed and taken by a rehire) with a run after every step:
one store (SQLite) is kept by incremental one-shot runs, which read only Graph's changes through
the mirror and plan only what they concern once the store is settled; one (in memory) by the
cycles of one daemon, which keeps the state, the mirror and the settled snapshot between them; the
third (in memory) by full reads (``--full``).  After every step the three stores hold the same
users and teams and report the same problems, and a full read of the incremental store finds
nothing left to do.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from syncd.changes import Plan
from syncd.reconcile import RunMemory, RunOptions, run_once
from syncd.runs import RunStatus
from syncd.simulator import Simulator, generate_tenant
from syncd.store import MemoryStore, SqlStore
from tests.test_incremental import TOKEN, configure

OK = (RunStatus.SUCCESS, RunStatus.PARTIAL)


def problems(plan: Plan) -> set[tuple[str, str, str]]:
    return {(problem.code, problem.target, problem.message) for problem in (*plan.errors, *plan.warnings)}


class TenantChanges(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        tenant = generate_tenant(seed=8, users=30, groups=4, direct_assignments=8)
        self.sim = Simulator(tenant, token=TOKEN)
        self.sim.start()
        self.folder = Path(tempfile.mkdtemp(prefix="syncd-equivalence-"))
        self.config = configure(self.sim, self.folder, f"sqlite:///{self.folder / 'incremental.db'}")
        self.incremental = SqlStore(self.config.store.url)
        self.incremental.ensure_schema()
        self.full = MemoryStore()
        self.daemon = MemoryStore()
        self.memory = RunMemory()
        self.roles = [role["id"] for role in tenant.app_roles()]
        self.counter = 0
        self.freed: list[str] = []
        """userPrincipalNames a deleted or renamed user left free (a rehire may take one)."""

    @property
    def tenant(self) -> Any:
        return self.sim.tenant

    def teardown(self) -> None:
        self.incremental.close()
        self.sim.stop()

    # ------------------------------------------------------------------ helpers

    def users(self) -> list[str]:
        return sorted(self.tenant.user_ids())

    def groups(self) -> list[str]:
        return sorted(self.tenant.group_ids())

    def assigned(self, kind: str) -> list[str]:
        return sorted({a["principalId"] for a in self.tenant.list_assignments() if a["principalType"] == kind})

    def pick(self, data: st.DataObject, items: list[str]) -> str:
        return data.draw(st.sampled_from(items))

    # ------------------------------------------------------------------ tenant changes

    @rule(data=st.data())
    def assign_a_user(self, data: st.DataObject) -> None:
        role = data.draw(st.sampled_from([None, *self.roles]))
        user = self.pick(data, self.users())
        if role is None:
            self.tenant.assign(user)
        else:
            self.tenant.assign(user, role)

    @precondition(lambda self: self.assigned("User"))
    @rule(data=st.data())
    def unassign_a_user(self, data: st.DataObject) -> None:
        self.tenant.unassign(self.pick(data, self.assigned("User")))

    @precondition(lambda self: self.assigned("User"))
    @rule(data=st.data())
    def change_a_role(self, data: st.DataObject) -> None:
        user = self.pick(data, self.assigned("User"))
        self.tenant.unassign(user)
        self.tenant.assign(user, self.pick(data, self.roles))

    @rule(data=st.data(), name=st.sampled_from(["Ann Lee", "Bo Chen (Sales)", "Zoë Ødegaard", "   "]))
    def rename_a_user(self, data: st.DataObject, name: str) -> None:
        self.tenant.update_user(self.pick(data, self.users()), display_name=name, job_title=name[:5] or None)

    @rule(data=st.data(), enabled=st.booleans())
    def disable_or_enable_a_user(self, data: st.DataObject, enabled: bool) -> None:
        self.tenant.update_user(self.pick(data, self.users()), account_enabled=enabled)

    @precondition(lambda self: len(self.tenant.user_ids()) > 5)
    @rule(data=st.data(), for_good=st.booleans())
    def delete_a_user(self, data: st.DataObject, for_good: bool) -> None:
        user = self.pick(data, self.users())
        if for_good:
            self.tenant.delete_user(user)
        else:
            self.tenant.soft_delete_user(user)

    @precondition(lambda self: self.tenant.deleted_items)
    @rule(data=st.data(), restore=st.booleans())
    def restore_or_purge_a_deleted_user(self, data: st.DataObject, restore: bool) -> None:
        user = self.pick(data, sorted(self.tenant.deleted_items))
        if restore:
            try:
                self.tenant.restore_user(user)
            except ValueError:  # its userPrincipalName is taken by now
                self.tenant.purge_user(user)
        else:
            self.tenant.purge_user(user)

    @rule(data=st.data())
    def move_a_upn(self, data: st.DataObject) -> None:
        """A user takes a new userPrincipalName: a fresh one, or one another user left free."""
        user = self.pick(data, self.users())
        old = str(self.tenant.users[user].props["userPrincipalName"])
        self.counter += 1
        upn = data.draw(st.sampled_from([f"moved{self.counter}@contoso.com", *self.freed]))
        try:
            self.tenant.update_user(user, userPrincipalName=upn)
        except ValueError:  # taken by now
            return
        self.freed = [*(free for free in self.freed if free.lower() != upn.lower()), old]

    @precondition(lambda self: len(self.tenant.user_ids()) > 5)
    @rule(data=st.data())
    def delete_a_user_for_good_and_free_its_upn(self, data: st.DataObject) -> None:
        user = self.pick(data, self.users())
        self.freed.append(str(self.tenant.users[user].props["userPrincipalName"]))
        self.tenant.delete_user(user)

    @precondition(lambda self: self.freed)
    @rule(data=st.data(), assign=st.booleans())
    def rehire(self, data: st.DataObject, assign: bool) -> None:
        """A new account with a userPrincipalName another user left free."""
        upn = data.draw(st.sampled_from(self.freed))
        try:
            new = self.tenant.add_user(upn, "Rehired Person")
        except ValueError:
            return
        self.freed.remove(upn)
        if assign:
            self.tenant.assign(new, self.pick(data, self.roles))

    @rule()
    def nothing_changes(self) -> None:
        """A quiet step: the next incremental run may take the last settled plan."""

    @rule()
    def create_a_user(self) -> None:
        self.counter += 1
        self.tenant.add_user(f"new{self.counter}@contoso.com", f"New Person {self.counter}")

    @precondition(lambda self: self.tenant.group_ids())
    @rule(data=st.data())
    def move_a_member(self, data: st.DataObject) -> None:
        source, target = self.pick(data, self.groups()), self.pick(data, self.groups())
        members = [member for member in self.tenant.member_ids(source) if member in self.tenant.users]
        if members:
            member = self.pick(data, members)
            self.tenant.remove_member(source, member)
            self.tenant.add_member(target, member)
        else:
            self.tenant.add_member(target, self.pick(data, self.users()))

    @precondition(lambda self: self.tenant.group_ids())
    @rule(data=st.data(), name=st.sampled_from(["Sales", "Ops Team", "Marketing", "Engineering"]))
    def rename_a_group(self, data: st.DataObject, name: str) -> None:
        self.tenant.rename_group(self.pick(data, self.groups()), name)

    @precondition(lambda self: self.tenant.group_ids())
    @rule(data=st.data(), assign=st.booleans())
    def assign_or_unassign_a_group(self, data: st.DataObject, assign: bool) -> None:
        group = self.pick(data, self.groups())
        if assign:
            self.tenant.assign(group, self.pick(data, self.roles))
        else:
            self.tenant.unassign(group)

    @precondition(lambda self: self.tenant.group_ids())
    @rule(data=st.data())
    def delete_a_group(self, data: st.DataObject) -> None:
        self.tenant.delete_group(self.pick(data, self.groups()))

    @rule(data=st.data())
    def create_and_assign_a_group(self, data: st.DataObject) -> None:
        self.counter += 1
        members = data.draw(st.lists(st.sampled_from(self.users()), max_size=4, unique=True))
        group = self.tenant.add_group(f"Group {self.counter}", members=members)
        self.tenant.assign(group)

    # ------------------------------------------------------------------ the invariant

    @invariant()
    def incremental_runs_keep_the_store_full_reads_keep(self) -> None:
        # the brakes and the last admin's rule act alike on both; lifted, every step is applied
        incremental = run_once(self.config, RunOptions(allow_deletes=True), store=self.incremental)
        full = run_once(self.config, RunOptions(full=True, allow_deletes=True), store=self.full)
        cycle = run_once(self.config, RunOptions(allow_deletes=True, memory=self.memory), store=self.daemon)
        assert incremental.status in OK, incremental.message
        assert full.status in OK, full.message
        assert cycle.status in OK, cycle.message
        assert self.incremental.reports.users() == self.full.reports.users()
        assert self.incremental.reports.teams() == self.full.reports.teams()
        assert problems(incremental.plan) == problems(full.plan), "the same errors and warnings, settled or not"
        assert self.daemon.reports.users() == self.full.reports.users(), "a daemon's cycles keep the same store"
        assert self.daemon.reports.teams() == self.full.reports.teams()
        assert problems(cycle.plan) == problems(full.plan)
        again = run_once(self.config, RunOptions(dry_run=True, full=True), store=self.incremental)
        assert again.plan.changes == (), "a full read finds nothing left to do"


TenantChanges.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_incremental_runs_keep_the_store_full_reads_keep = TenantChanges.TestCase
