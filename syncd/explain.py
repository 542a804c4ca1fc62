"""``syncd explain``: every reason syncd has for one user's or one group's state, in order.

An explanation is built from a snapshot (the store's mirror of the last read, or a fresh on-demand
read), the store's state, the plan syncd would make from them, the last refused run's plan, and the
audit.  Each step is one line a person can read (``syncd explain``) and one object a script can
(``--json``).

Pure: it reads only the values it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .changes import Change, Plan, Problem
from .errors import CODES
from .model import (
    DEFAULT_ACCESS_ROLE_ID,
    Policy,
    Snapshot,
    SourceGroup,
    SourceUser,
    StoreState,
    StoreUser,
    normalise_name,
    user_email,
    user_name,
)
from .roles import choose_user_type, role_user_types, scope_of
from .scope_rules import decide


@dataclass(frozen=True, slots=True)
class Step:
    topic: str
    """``identity``, ``assignment``, ``enabled``, ``scope``, ``type``, ``name``, ``email``, ``team``,
    ``member``, ``problem``, ``pending``, ``refused``, ``audit``, ``store``, ``unknown``."""
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Explanation:
    kind: str
    """``user``, ``group`` or ``unknown``."""
    key: str
    """What was asked about."""
    entra_id: str | None
    steps: tuple[Step, ...]
    source: str
    """Where the Graph side came from: ``mirror`` (the last read), ``live`` (read now) or ``none``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "entra_id": self.entra_id,
            "source": self.source,
            "steps": [{"topic": step.topic, "text": step.text, **dict(step.data)} for step in self.steps],
        }

    def to_text(self) -> str:
        head = {"user": "User", "group": "Group", "unknown": "Unknown"}[self.kind]
        lines = [f"{head} {self.key}" + (f" [{self.entra_id}]" if self.entra_id else "") + f" (from {self.source})"]
        lines.extend(f"  {step.topic:<10} {step.text}" for step in self.steps)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Facts:
    """What an explanation is made from."""

    snapshot: Snapshot | None
    state: StoreState
    policy: Policy
    plan: Plan | None = None
    refused: Plan | None = None
    """The plan of the last run, when it was refused by a safety limit."""
    refused_message: str = ""
    audit: Sequence[Mapping[str, Any]] = ()
    source: str = "mirror"


def find_user(facts: Facts, key: str) -> tuple[SourceUser | None, StoreUser | None]:
    """The Graph user and the store row a key names: an Entra id, a UPN or an email (any case)."""
    wanted = key.strip().lower()
    graph_user = None
    if facts.snapshot is not None:
        for candidate in facts.snapshot.users:
            names = {
                candidate.id.lower(),
                (candidate.user_principal_name or "").lower(),
                (candidate.mail or "").lower(),
            }
            if wanted in names or wanted == (user_email(candidate, facts.policy.email_attribute) or ""):
                graph_user = candidate
                break
    row = None
    for stored in facts.state.users:
        if (
            (stored.entra_id or "").lower() == wanted
            or stored.email == wanted
            or (graph_user is not None and stored.entra_id == graph_user.id)
        ):
            row = stored
            break
    if graph_user is None and row is not None and row.entra_id and facts.snapshot is not None:
        graph_user = next((u for u in facts.snapshot.users if u.id == row.entra_id), None)
    return graph_user, row


def find_group(facts: Facts, key: str) -> tuple[SourceGroup | None, Any]:
    wanted = key.strip()
    group = None
    if facts.snapshot is not None:
        group = next(
            (g for g in facts.snapshot.groups if g.id.lower() == wanted.lower() or g.display_name == wanted), None
        )
    team = next(
        (
            t
            for t in facts.state.teams
            if (t.entra_id or "").lower() == wanted.lower()
            or t.name == wanted
            or (group is not None and t.entra_id == group.id)
        ),
        None,
    )
    if group is None and team is not None and team.entra_id and facts.snapshot is not None:
        group = next((g for g in facts.snapshot.groups if g.id == team.entra_id), None)
    return group, team


def explain(facts: Facts, key: str) -> Explanation:
    graph_user, row = find_user(facts, key)
    if graph_user is not None or row is not None:
        return _explain_user(facts, key, graph_user, row)
    group, team = find_group(facts, key)
    if group is not None or team is not None:
        return _explain_group(facts, key, group, team)
    how = (
        "it is in neither syncd's last read of the application nor the store. If it exists in Entra ID, "
        "assign it (or a group it is a direct member of) to the application and run `syncd sync`; "
        "`syncd explain --live` asks Graph now"
    )
    return Explanation("unknown", key, None, (Step("unknown", f"syncd has never seen {key}: {how}"),), facts.source)


# --------------------------------------------------------------------------- users


def _role_name(snapshot: Snapshot, role_id: str) -> str:
    if role_id == DEFAULT_ACCESS_ROLE_ID:
        return "Default Access"
    role = next((r for r in snapshot.app_roles if r.id == role_id), None)
    return (role.display_name or role.value or role_id) if role is not None else role_id


def _explain_user(facts: Facts, key: str, graph_user: SourceUser | None, row: StoreUser | None) -> Explanation:
    entra_id = graph_user.id if graph_user is not None else (row.entra_id if row is not None else None)
    steps: list[Step] = []
    snapshot = facts.snapshot
    if graph_user is not None and snapshot is not None:
        steps.extend(_graph_user_steps(facts, snapshot, graph_user))
    elif row is not None and row.entra_id:
        steps.append(
            Step(
                "assignment",
                "not in syncd's last read of the application: not assigned, directly or through an assigned group "
                "(or deleted in Entra ID)",
            )
        )
    steps.extend(_store_steps(facts, row))
    steps.extend(_plan_steps(facts, entra_id, row))
    steps.extend(_audit_steps(facts))
    return Explanation("user", key, entra_id, tuple(steps), facts.source)


def _graph_user_steps(facts: Facts, snapshot: Snapshot, user: SourceUser) -> list[Step]:
    steps = [
        Step(
            "identity",
            f"Entra user {user.user_principal_name or '?'} ({user.display_name or 'no display name'})",
            {"user_principal_name": user.user_principal_name, "mail": user.mail, "display_name": user.display_name},
        )
    ]
    scope = scope_of(snapshot)
    direct = [a.app_role_id for a in snapshot.assignments if a.principal_type == "User" and a.principal_id == user.id]
    group_roles: dict[str, list[str]] = {}
    for assignment in snapshot.assignments:
        if assignment.principal_type == "Group":
            group_roles.setdefault(assignment.principal_id, []).append(assignment.app_role_id)
    via = [
        (group, group_roles.get(group.id, [DEFAULT_ACCESS_ROLE_ID]))
        for group in sorted(snapshot.groups, key=lambda g: g.display_name)
        if user.id in (group.member_ids or ()) and group.id in group_roles
    ]
    for role_id in direct:
        steps.append(
            Step("assignment", f"assigned directly, role {_role_name(snapshot, role_id)}", {"role_id": role_id})
        )
    for group, roles in via:
        names = ", ".join(_role_name(snapshot, role_id) for role_id in roles)
        steps.append(
            Step(
                "assignment",
                f"a direct member of assigned group {group.display_name!r}, role {names}",
                {"group_id": group.id, "group": group.display_name, "role_ids": list(roles)},
            )
        )
    if not direct and not via:
        steps.append(Step("assignment", "not assigned, directly or through an assigned group: not in scope"))
    enabled = user.account_enabled is not False
    steps.append(
        Step("enabled", "account enabled" if enabled else "account disabled in Entra ID", {"enabled": enabled})
    )
    decision = decide(facts.policy.scope_rules, user.attributes)
    steps.append(
        Step(
            "scope",
            ("in scope: " if decision.in_scope else "out of scope: ") + decision.reason,
            {"in_scope": decision.in_scope, "rule": decision.rule},
        )
    )
    held_roles = scope.user_roles.get(user.id, set())
    if held_roles:
        types = role_user_types(snapshot, facts.policy)
        offered = {role_id: types.get(role_id) for role_id in sorted(held_roles)}
        known = [t for t in offered.values() if t is not None]
        chosen = choose_user_type(known, facts.policy)
        described = "; ".join(
            f"{_role_name(snapshot, role_id)} gives {kind or 'no type (unknown role)'}"
            for role_id, kind in offered.items()
        )
        order = " > ".join(facts.policy.precedence)
        steps.append(
            Step(
                "type",
                f"{described}; {chosen!r} wins by roles.precedence ({order})",
                {"types": {k: v for k, v in offered.items()}, "user_type": chosen},
            )
        )
    email = user_email(user, facts.policy.email_attribute)
    attribute = facts.policy.email_attribute
    raw = user.mail if attribute == "mail" else user.user_principal_name
    if email is None:
        steps.append(Step("email", f"no usable email in {attribute} ({raw!r})", {"email": None, "from": attribute}))
    else:
        steps.append(
            Step("email", f"{email} (from {attribute} {raw!r}, lowercased)", {"email": email, "from": attribute})
        )
        name = user_name(user, email)
        how = (
            "unchanged"
            if normalise_name(user.display_name) == (user.display_name or "")
            else "special characters removed"
        )
        steps.append(
            Step(
                "name",
                f"{user.display_name!r} -> {name!r} ({how})",
                {"display_name": user.display_name, "name": name},
            )
        )
    return steps


def _store_steps(facts: Facts, row: StoreUser | None) -> list[Step]:
    if row is None:
        return [Step("store", "not in the store")]
    status = "active" if row.active else f"inactive ({row.inactive_reason})"
    managed = "managed by Entra" if row.entra_id else "a local user (no Entra id): syncd never touches it"
    steps = [
        Step(
            "store",
            f"store row {row.id}: {row.email}, {status}, type {row.user_type}; {managed}",
            {"active": row.active, "user_type": row.user_type, "inactive_reason": row.inactive_reason},
        )
    ]
    groups = {g.id: g for g in facts.snapshot.groups} if facts.snapshot is not None else {}
    for team in sorted(facts.state.teams, key=lambda t: t.name):
        if row.id not in team.member_ids:
            continue
        if team.entra_id is None:
            why = "a local team"
        elif team.entra_id in groups and row.entra_id in (groups[team.entra_id].member_ids or ()):
            why = f"a member of its group {groups[team.entra_id].display_name!r}"
        else:
            why = "its group no longer lists the user: the next sync removes it"
        steps.append(Step("team", f"in team {team.name!r}: {why}", {"team": team.name}))
    return steps


def _mentions(change: Change, entra_id: str | None, row: StoreUser | None) -> bool:
    user_entra = getattr(change, "user_entra_id", None) or change.entra_id
    return (entra_id is not None and user_entra == entra_id) or (
        row is not None and getattr(change, "user_id", None) == row.id
    )


def _problem_step(problem: Problem) -> Step:
    remedy = CODES[problem.code].remedy if problem.code in CODES else ""
    return Step(
        "problem",
        f"[{problem.code}] {problem.message}" + (f" (what to do: {remedy})" if remedy else ""),
        {"code": problem.code, "remedy": remedy},
    )


def _plan_steps(facts: Facts, entra_id: str | None, row: StoreUser | None) -> list[Step]:
    steps: list[Step] = []
    plan = facts.plan
    if plan is not None:
        for problem in (*plan.errors, *plan.warnings):
            if entra_id is not None and problem.entra_id == entra_id:
                steps.append(_problem_step(problem))
        pending = [change for change in plan.changes if _mentions(change, entra_id, row)]
        for change in pending:
            steps.append(Step("pending", f"the next sync would {change.op.replace('_', ' ')} {change.target}"))
        for change in plan.held:
            if _mentions(change, entra_id, row):
                steps.append(Step("pending", f"held back: {change.op.replace('_', ' ')} {change.target}"))
        if not pending and not steps:
            steps.append(Step("pending", "nothing: the store already holds what Graph says"))
    if facts.refused is not None:
        refused = [change for change in facts.refused.changes if _mentions(change, entra_id, row)]
        for change in refused:
            steps.append(
                Step(
                    "refused",
                    f"the last run was refused by a safety limit and held back: {change.op.replace('_', ' ')} "
                    f"{change.target} ({facts.refused_message})",
                )
            )
    return steps


def _audit_steps(facts: Facts) -> list[Step]:
    return [
        Step(
            "audit",
            f"{row.get('at')} run {row.get('run_id')}: {row.get('op')} {row.get('status')}"
            + (f" [{row.get('error_code')}]" if row.get("error_code") else ""),
            {"audit": dict(row)},
        )
        for row in facts.audit
    ]


# --------------------------------------------------------------------------- groups


def _explain_group(facts: Facts, key: str, group: SourceGroup | None, team: Any) -> Explanation:
    entra_id = group.id if group is not None else (team.entra_id if team is not None else None)
    steps: list[Step] = []
    snapshot = facts.snapshot
    if group is not None and snapshot is not None:
        roles = [
            a.app_role_id for a in snapshot.assignments if a.principal_type == "Group" and a.principal_id == group.id
        ]
        if roles:
            names = ", ".join(_role_name(snapshot, role_id) for role_id in roles)
            steps.append(Step("assignment", f"assigned to the application, role {names}", {"role_ids": roles}))
        else:
            steps.append(Step("assignment", "not assigned to the application: its team is not provisioned"))
        users = {user.id: user for user in snapshot.users}
        rows = {stored.entra_id: stored for stored in facts.state.users if stored.entra_id}
        for member_id in group.member_ids or ():
            member = users.get(member_id)
            label = (member.user_principal_name if member is not None else None) or member_id
            stored = rows.get(member_id)
            if member is not None and member.account_enabled is False:
                why = "left out: the account is disabled"
            elif stored is None:
                why = (
                    "not in the store yet (the next sync provisions it)" if member is not None else "left out: not read"
                )
            elif not stored.active:
                why = f"left out: inactive in the store ({stored.inactive_reason})"
            else:
                why = "a member of the team"
            steps.append(Step("member", f"{label}: {why}", {"member_id": member_id}))
        steps.append(
            Step(
                "member",
                "only the group's direct user members count: nested groups, devices, contacts and service "
                "principals are left out",
            )
        )
    elif team is not None and team.entra_id:
        steps.append(Step("assignment", "not in syncd's last read: unassigned or deleted in Entra ID"))
    if team is not None:
        managed = "managed by the group" if team.entra_id else "a local team: syncd never touches it"
        steps.append(
            Step("team", f"team {team.name!r} with {len(team.member_ids)} members; {managed}", {"team": team.name})
        )
    else:
        steps.append(Step("team", "no team yet"))
    if facts.plan is not None and entra_id is not None:
        for problem in (*facts.plan.errors, *facts.plan.warnings):
            if problem.entra_id == entra_id:
                steps.append(_problem_step(problem))
        for change in facts.plan.changes:
            if getattr(change, "team_entra_id", None) == entra_id or change.entra_id == entra_id:
                steps.append(Step("pending", f"the next sync would {change.op.replace('_', ' ')} {change.target}"))
    steps.extend(_audit_steps(facts))
    return Explanation("group", key, entra_id, tuple(steps), facts.source)
