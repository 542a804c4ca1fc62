"""The store's state after a plan was applied in full, worked out without reading it again.

A process that keeps the state between runs (the daemon) would otherwise read every user, team and
membership again after each run that changed anything.  :func:`state_after` replays the plan's
change records on the state it was planned against; the local ids of created users and teams come
from the store.  It is used only when every change of the plan was applied, and a property test
holds it equal to what the store loads.

Pure: imports only :mod:`syncd.model` and :mod:`syncd.changes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .changes import (
    AddMember,
    AdoptUser,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    DeleteTeam,
    Plan,
    ReactivateUser,
    RemoveMember,
    RenameTeam,
    ReplaceTeam,
    UpdateUser,
)
from .model import StoreState, StoreTeam, StoreUser

_CORE_FIELDS = ("email", "name", "user_type")


def state_after(state: StoreState, plan: Plan, user_ids: Mapping[str, int], team_ids: Mapping[str, int]) -> StoreState:
    """``state`` with every change of ``plan`` applied; ``user_ids`` and ``team_ids`` give the local
    id of each user and team the plan created (by Entra id)."""
    users = {user.id: user for user in state.users}
    teams = {team.id: team for team in state.teams}
    members = {team.id: set(team.member_ids) for team in state.teams}
    user_by_entra = {user.entra_id: user.id for user in state.users if user.entra_id}
    team_by_entra = {team.entra_id: team.id for team in state.teams if team.entra_id}
    for change in plan.changes:
        if isinstance(change, CreateUser):
            local = user_ids[change.entra_id]
            users[local] = StoreUser(
                local,
                change.email,
                change.name,
                change.user_type,
                True,
                change.entra_id,
                None,
                dict(change.attributes),
            )
            user_by_entra[change.entra_id] = local
        elif isinstance(change, AdoptUser):
            users[change.user_id] = replace(users[change.user_id], entra_id=change.entra_id)
            user_by_entra[change.entra_id] = change.user_id
        elif isinstance(change, ReactivateUser):
            users[change.user_id] = replace(users[change.user_id], active=True, inactive_reason=None)
        elif isinstance(change, DeactivateUser):
            users[change.user_id] = replace(users[change.user_id], active=False, inactive_reason=change.reason)
        elif isinstance(change, UpdateUser):
            users[change.user_id] = _updated(users[change.user_id], change)
        elif isinstance(change, DeleteTeam):
            teams.pop(change.team_id, None)
            members.pop(change.team_id, None)
        elif isinstance(change, RenameTeam):
            teams[change.team_id] = replace(teams[change.team_id], name=change.name)
        elif isinstance(change, ReplaceTeam):
            teams[change.team_id] = replace(teams[change.team_id], entra_id=change.entra_id)
            team_by_entra[change.entra_id] = change.team_id
        elif isinstance(change, CreateTeam):
            local = team_ids[change.entra_id]
            teams[local] = StoreTeam(local, change.name, change.entra_id, frozenset())
            members[local] = set()
            team_by_entra[change.entra_id] = local
        elif isinstance(change, RemoveMember):
            members[change.team_id].discard(change.user_id)
        elif isinstance(change, AddMember):
            members[team_by_entra[change.team_entra_id]].add(user_by_entra[change.user_entra_id])
    return StoreState(
        users=tuple(users[local] for local in sorted(users)),
        teams=tuple(replace(teams[local], member_ids=frozenset(members[local])) for local in sorted(teams)),
    )


def _updated(user: StoreUser, change: UpdateUser) -> StoreUser:
    core: dict[str, object] = {name: new for name, _, new in change.changes if name in _CORE_FIELDS}
    attributes = {name: new for name, _, new in change.changes if name not in _CORE_FIELDS}
    if attributes:
        core["attributes"] = {**user.attributes, **attributes}
    return replace(user, **core)  # type: ignore[arg-type]
