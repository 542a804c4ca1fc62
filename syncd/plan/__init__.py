"""The planner: ``diff(snapshot, state, policy) -> Plan``.  Pure: no I/O, no clock.

A :class:`~syncd.changes.Plan` is inert data, an ordered tuple of frozen change records plus
per-object errors and warnings.  ``syncd plan`` renders it (``render.py``) and ``syncd sync``
applies it (``apply.py``); both read the same object, so the dry run cannot lie.

The rules mirror monday.com's SCIM provisioning.  This is the README's semantics table, one row
name per row; the stages cite these names where they implement a row.  Identity is the Entra
object id, never a name or an email.

==============  ===================================================================================
row             Entra state -> effect on the store
==============  ===================================================================================
[assigned]      user assigned (directly, or a direct member of an assigned group), enabled -> active;
                created if new; a local user with its email and no Entra id is adopted
[changed]       displayName / UPN / jobTitle / role changes -> name / email / title / type updated
[departed]      unassigned, removed from every assigned group, disabled or deleted -> inactive, never
                deleted, the reason kept
[disabled-new]  assigned but disabled, never provisioned -> not created
[scoped]        assigned, but no [[scope.rules]] rule admits the user -> never created; deactivated
                (out_of_scope) if provisioned
[not-read]      in scope, but Graph returned no user object -> USER_NOT_READ, left exactly as it is
[returned]      an inactive managed user back in scope -> the same row reactivated
[rehire]        a new account with the email of a deleted account's row -> takes that row over
[group]         group assigned -> a team whose members are the group's active direct user members
[renamed]       group renamed -> team renamed (same row)
[members]       member added to / removed from the group -> added to / removed from the team
[group-gone]    group unassigned or deleted -> team deleted; the audit keeps what it was
[takeover]      group named like a team no group manages -> takes it over; renamed into one -> conflict
[last-admin]    the last active admin unassigned or demoted -> held back (LAST_ADMIN); disabled or
                deleted in Entra -> deactivated all the same (NO_ADMIN_LEFT)
[local]         local users and teams -> never touched
==============  ===================================================================================

The stages, each a function returning a frozen value, in the order data flows through them:

1. :func:`~syncd.roles.scope_of` - who is in scope, with which app roles;
2. :func:`~syncd.plan.desired.desired_users` - each user in scope as the store should hold it, or
   the error that leaves its row as it is;
3. :func:`~syncd.plan.users.user_changes` - the user changes, and the users as they will be;
4. :func:`~syncd.plan.teams.team_changes` - the team changes, and which team each group fills;
5. :func:`~syncd.plan.members.membership_changes` - the members to add and remove.

Whether absence is evidence about an object is asked of one value,
:class:`~syncd.evidence.Evidence`, and nowhere else.  [local] holds because every stage acts only
on rows with an Entra id, or on the one row a group takes over or a user adopts.

Nothing from the wire is trusted.  A user in scope whose object the snapshot lacks is an error
(``USER_NOT_READ``), never a sign that it left; a user or group with a value the store cannot hold
(:func:`~syncd.model.unstorable`) is an error (``USER_INVALID``, ``USER_NO_EMAIL``,
``TEAM_INVALID``).  Either way that one object is left exactly as it is and everything else is
planned as usual, so every value a plan carries can be written on every backend: the plan is what
sync applies.  Problems quote what Graph sent escaped (:func:`~syncd.plan.problems.problem`).

Invariants, proved by property tests: planning is deterministic, and applying a plan then
planning again against the same snapshot yields no changes.
"""

from __future__ import annotations

from ..changes import OPS, Plan
from ..evidence import Evidence
from ..model import Policy, Snapshot, StoreState
from ..roles import scope_of
from .desired import DesiredUser, desired_users
from .members import membership_changes
from .problems import problem
from .teams import team_changes
from .users import user_changes

SEMANTICS_ROWS = (
    "assigned",
    "changed",
    "departed",
    "disabled-new",
    "scoped",
    "not-read",
    "returned",
    "rehire",
    "group",
    "renamed",
    "members",
    "group-gone",
    "takeover",
    "last-admin",
    "local",
)
"""The row names of the semantics table, in its order (a test holds the README and the stages to them)."""

_ORDER = {op: index for index, op in enumerate(OPS)}


def diff(snapshot: Snapshot, state: StoreState, policy: Policy | None = None) -> Plan:
    """The changes that make ``state`` match ``snapshot`` under ``policy``."""
    policy = policy or Policy()
    evidence = Evidence(snapshot)
    scope = scope_of(snapshot)
    desired = desired_users(snapshot, state, policy, scope, evidence)
    users = user_changes(desired, state, policy, evidence)
    teams = team_changes(scope, state, evidence)
    members = membership_changes(snapshot, state, users, teams, evidence)
    changes = users.changes + teams.changes + members
    ordered = sorted(enumerate(changes), key=lambda item: (_ORDER[item[1].op], item[0]))
    return Plan(
        changes=tuple(change for _, change in ordered),
        errors=desired.errors + users.errors + teams.errors,
        warnings=users.warnings,
        complete=snapshot.complete,
        held=users.held,
    )


__all__ = ["SEMANTICS_ROWS", "DesiredUser", "diff", "problem"]
