"""Stage 3: the team changes, and which team each group's members go into.

Rows [group], [renamed], [group-gone] and [takeover] of the semantics table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..changes import Change, CreateTeam, DeleteTeam, Problem, RenameTeam, ReplaceTeam
from ..evidence import Evidence
from ..model import ENTRA_ID_LENGTH, NAME_LENGTH, SourceGroup, StoreState, StoreTeam, shown, unstorable
from ..roles import Scope
from .problems import problem


@dataclass(frozen=True, slots=True)
class Placement:
    """A group whose team's members this plan decides: the team it has now (None: created by the
    plan) under the name it will have."""

    group: SourceGroup
    team: StoreTeam | None
    name: str


@dataclass(frozen=True, slots=True)
class Teams:
    """The outcome of stage 3."""

    changes: tuple[Change, ...]
    errors: tuple[Problem, ...]
    placements: tuple[Placement, ...]
    """In plan order; stage 4 makes each team's members the group's."""
    deleted: frozenset[int]
    """Local ids of the teams the plan deletes."""


def team_changes(scope: Scope, state: StoreState, evidence: Evidence) -> Teams:
    """What to create, rename, take over and delete so each group in scope has exactly one team."""
    teams_by_entra = {team.entra_id: team for team in state.teams if team.entra_id}
    unmanaged_by_name: dict[str, list[StoreTeam]] = defaultdict(list)
    for team in state.teams:
        if team.entra_id is None:
            unmanaged_by_name[team.name].append(team)
    errors: list[Problem] = []
    changes: list[Change] = []
    placements: list[Placement] = []

    def conflict(group_id: str, name: str, message: str) -> None:
        """The group is skipped: its team (if any) stays exactly as it is."""
        errors.append(problem("TEAM_NAME_CONFLICT", "group", group_id, name, message))

    names: dict[str, list[SourceGroup]] = defaultdict(list)
    for group in sorted(scope.groups.values(), key=lambda g: g.id):
        name = group.display_name.strip()
        why = _group_problem(group.id, name)
        if why is not None:
            # a group with a name or id the store cannot hold: its team stays exactly as it is
            message = f"{why}; its team is left as it is"
            errors.append(problem("TEAM_INVALID", "group", group.id, name or group.id, message))
            continue
        names[name].append(group)
    wanted: dict[str, tuple[SourceGroup, str]] = {}
    for name, groups in sorted(names.items()):
        if len(groups) > 1:
            for group in sorted(groups, key=lambda g: g.id):
                conflict(group.id, name, f"{len(groups)} assigned groups are named {name!r}")
            continue
        wanted[groups[0].id] = (groups[0], name)

    # [group-gone] group unassigned or deleted -> team deprovisioned; the audit keeps what it was
    users_by_id = {user.id: user for user in state.users}
    leaving: set[int] = set()
    for team in sorted(teams_by_entra.values(), key=lambda t: (t.name, t.id)):
        assert team.entra_id is not None
        if team.entra_id in scope.groups or team.entra_id in scope.unknown_groups:
            continue
        if not evidence.knows(team.entra_id):
            continue
        members = tuple(sorted(users_by_id[m].email for m in team.member_ids if m in users_by_id))
        changes.append(DeleteTeam(team.id, team.entra_id, team.name, members))
        leaving.add(team.id)

    # [takeover] a group renamed to a local team's name keeps its team under the old name (a conflict)
    blocked = {
        group_id
        for group_id, (_group, name) in wanted.items()
        if group_id in teams_by_entra and teams_by_entra[group_id].name != name and unmanaged_by_name.get(name)
    }
    staying_names = {
        team.name: team
        for team in teams_by_entra.values()
        if team.id not in leaving and (team.entra_id not in wanted or team.entra_id in blocked)
    }
    creates: list[Change] = []
    for group_id, (group, name) in sorted(wanted.items(), key=lambda item: (item[1][1], item[0])):
        managed_team = teams_by_entra.get(group_id)
        other = staying_names.get(name)
        if other is not None:
            conflict(group_id, name, f"team {name!r} is managed by group {other.entra_id}")
            continue
        if managed_team is not None:
            if group_id in blocked:
                conflict(
                    group_id,
                    name,
                    f"group renamed to {name!r}, the name of a local team; its team keeps the name "
                    f"{managed_team.name!r} until one of them is renamed",
                )
                continue
            if managed_team.name != name:
                # [renamed] group renamed -> team renamed (same row)
                changes.append(RenameTeam(managed_team.id, group_id, managed_team.name, name))
            placements.append(Placement(group, managed_team, name))
            continue
        takeover = unmanaged_by_name.get(name, [])
        if len(takeover) > 1:
            conflict(group_id, name, f"{len(takeover)} local teams are named {name!r}")
            continue
        if takeover and group.member_ids is None:
            continue  # taken over once its members can be read, since they replace the team's
        if takeover:
            # [takeover] a group named like a team no group manages takes that team over
            changes.append(ReplaceTeam(takeover[0].id, group_id, name))
            placements.append(Placement(group, takeover[0], name))
            continue
        # [group] group assigned -> team created with the group's members
        creates.append(CreateTeam(group_id, name))
        placements.append(Placement(group, None, name))
    changes.extend(creates)
    return Teams(tuple(changes), tuple(errors), tuple(placements), frozenset(leaving))


def _group_problem(group_id: str, name: str) -> str | None:
    """Why a group's team cannot be stored (its id, or its name after trimming); None when it can."""
    why = unstorable(group_id, ENTRA_ID_LENGTH)
    if why is not None:
        return f"id {shown(group_id)} {why}"
    if not name:
        return "displayName is empty"
    why = unstorable(name, NAME_LENGTH)
    return None if why is None else f"displayName {shown(name)} {why}"
