"""Stage 4: the membership changes.

Rows [group], [members] and [departed] of the semantics table: a team's members become exactly its
group's members that are active after the plan, and a user who leaves leaves the managed teams the
plan did not otherwise look at.
"""

from __future__ import annotations

from ..changes import AddMember, Change, RemoveMember
from ..evidence import Evidence
from ..model import Snapshot, StoreState, StoreUser
from .teams import Placement, Teams
from .users import Users


def membership_changes(
    snapshot: Snapshot, state: StoreState, users: Users, teams: Teams, evidence: Evidence
) -> tuple[Change, ...]:
    """The members to remove and add, team by team in the order of ``teams.placements``."""
    users_by_id = {user.id: user for user in state.users}
    changes: list[Change] = []
    for placement in teams.placements:
        changes.extend(_members(placement, users_by_id, snapshot, users, evidence))
    changes.extend(_leavers(snapshot, state, users, teams, evidence))
    return tuple(changes)


def _members(
    placement: Placement, users_by_id: dict[int, StoreUser], snapshot: Snapshot, users: Users, evidence: Evidence
) -> list[Change]:
    """[members] Members become exactly the group's members that are active in the store."""
    group, team, name = placement.group, placement.team, placement.name
    if group.member_ids is None:
        return []  # the member list could not be read: leave the team as it is
    changes: list[Change] = []
    target: dict[str, str] = {}  # entra id -> email after the plan
    for member_id in group.member_ids:
        after = users.active_after.get(member_id)
        if after is not None and after.id not in users.frozen:
            target[member_id] = users.email_after.get(member_id, after.email)
    current = [users_by_id[i] for i in (team.member_ids if team else ()) if i in users_by_id]
    in_team = set()
    for user in sorted(current, key=lambda u: (u.email, u.id)):
        entra_id = users.adopted.get(user.id, user.entra_id)
        if entra_id in target:
            in_team.add(entra_id)
            continue
        if user.id in users.frozen:
            continue
        evidence_of_leaving = user.id in users.deactivated or not user.active
        if snapshot.partial:
            evidence_of_leaving = evidence_of_leaving or entra_id in evidence.users
        if evidence.knows(group.id) or evidence_of_leaving:
            assert team is not None
            changes.append(RemoveMember(team.id, group.id, name, user.id, user.email))
    for member_id, email in sorted(target.items(), key=lambda item: (item[1], item[0])):
        if member_id not in in_team:
            changes.append(AddMember(group.id, name, member_id, email))
    return changes


def _leavers(snapshot: Snapshot, state: StoreState, users: Users, teams: Teams, evidence: Evidence) -> list[Change]:
    """[departed] Users deactivated now leave the managed teams this plan did not otherwise look at
    (teams of groups with a conflict or outside a partial snapshot): their members must be active.

    So does the user an on-demand snapshot was taken for: it holds every assigned group the user
    belongs to, so a managed team whose group it lacks is one the user has left.
    """
    looked_at = {placement.team.id for placement in teams.placements if placement.team is not None}
    leaving = set(users.deactivated)
    if snapshot.partial and snapshot.complete:
        known = evidence.users.keys() | snapshot.deleted_user_ids
        subjects = snapshot.subjects & known
        leaving |= {
            u.id for u in state.users if users.adopted.get(u.id, u.entra_id) in subjects and u.id not in users.frozen
        }
    users_by_id = {user.id: user for user in state.users}
    changes: list[Change] = []
    for team in sorted(state.teams, key=lambda t: (t.name, t.id)):
        if team.entra_id is None or team.id in teams.deleted or team.id in looked_at:
            continue
        for user_id in sorted(team.member_ids & leaving):
            email = users_by_id[user_id].email
            changes.append(RemoveMember(team.id, team.entra_id, team.name, user_id, email))
    return changes
