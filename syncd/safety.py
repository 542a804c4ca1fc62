"""Safety brakes: a plan that would deprovision too much is refused whole, before anything is written.

Four categories are braked, each by an absolute limit and by a proportion of the managed objects of
its kind:

==================  ===========================================  ==================================
category            counts                                       in proportion to
==================  ===========================================  ==================================
deactivations       users deactivated                            the active managed users
team_deletions      teams deleted                                the managed teams
member_removals     members removed from teams                   the memberships of managed teams
type_downgrades     user types changed to one ranked lower in    the active managed users
                    ``roles.precedence``
==================  ===========================================  ==================================

A category is over its limit when its count is more than ``max_<category>``; or, from
:data:`PROPORTION_FLOOR` changes on, more than ``max_percent`` percent of its kind; or when it would
change every object of its kind at once: every active user deactivated (a complete read that
suddenly finds nobody assigned is refused on a tenant of any size), or every team, membership or
typed user when there are at least two.  Over any limit the whole plan is refused, one code per category;
each refusal says what it saw, why it stopped, and the command that proceeds anyway:
``--allow CATEGORY`` lifts one category, ``--allow-deletes`` all of them.

Pure: imports only :mod:`syncd.model` and :mod:`syncd.changes`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from .changes import Plan, UpdateUser
from .model import DEFAULT_PRECEDENCE, Policy, StoreState, is_custom_role_id

PROPORTION_FLOOR = 3
"""Fewer changes than this are never refused for their proportion alone (only for being all)."""

CATEGORIES = ("deactivations", "team_deletions", "member_removals", "type_downgrades")


@dataclass(frozen=True, slots=True)
class Limits:
    """``[safety]``: the most one plan may do without ``--allow`` or ``--allow-deletes``."""

    max_deactivations: int = 500
    max_team_deletions: int = 50
    max_member_removals: int = 1000
    max_type_downgrades: int = 100
    max_percent: float = 30.0
    plan_max_age_minutes: float = 60.0
    """How long a saved plan (``syncd plan --out``) may wait for ``syncd apply``."""


@dataclass(frozen=True, slots=True)
class Bases:
    """How many managed objects of each kind the store holds: what the proportions are of."""

    users: int = 0
    teams: int = 0
    memberships: int = 0

    @classmethod
    def of(cls, state: StoreState) -> Bases:
        return cls(
            users=sum(1 for user in state.users if user.entra_id and user.active),
            teams=sum(1 for team in state.teams if team.entra_id),
            memberships=sum(len(team.member_ids) for team in state.teams if team.entra_id),
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str
    category: str = ""


@dataclass(frozen=True, slots=True)
class _Brake:
    category: str
    code: str
    verb: str
    noun: tuple[str, str]
    kind: str
    all_from: int
    """The smallest count at which changing every object of the kind is refused."""


_BRAKES = (
    _Brake("deactivations", "SAFETY_DEACTIVATIONS", "deactivates", ("user", "users"), "active managed users", 1),
    _Brake("team_deletions", "SAFETY_TEAM_DELETIONS", "deletes", ("team", "teams"), "managed teams", 2),
    _Brake(
        "member_removals",
        "SAFETY_MEMBER_REMOVALS",
        "removes",
        ("membership", "memberships"),
        "memberships of managed teams",
        2,
    ),
    _Brake(
        "type_downgrades",
        "SAFETY_TYPE_DOWNGRADES",
        "downgrades the type of",
        ("user", "users"),
        "active managed users",
        2,
    ),
)


def type_rank(user_type: str, precedence: tuple[str, ...]) -> int:
    """Where a user type ranks in ``roles.precedence`` (0 is highest; a custom role id ranks as "custom")."""
    ranks = [*precedence, *(rank for rank in DEFAULT_PRECEDENCE if rank not in precedence)]
    key = "custom" if is_custom_role_id(user_type) else user_type
    return ranks.index(key) if key in ranks else len(ranks)


def counts(plan: Plan, policy: Policy) -> dict[str, int]:
    """How many changes of each braked category the plan makes."""
    downgrades = 0
    for change in plan.changes:
        if isinstance(change, UpdateUser):
            for name, old, new in change.changes:
                if name == "user_type" and type_rank(str(new), policy.precedence) > type_rank(
                    str(old), policy.precedence
                ):
                    downgrades += 1
    held = sum(1 for change in plan.held if change.op == "deactivate_user")
    return {
        "deactivations": plan.count("deactivate_user") + held,
        "team_deletions": plan.count("delete_team"),
        "member_removals": plan.count("remove_member"),
        "type_downgrades": downgrades,
    }


def check(
    plan: Plan,
    limits: Limits,
    *,
    bases: Bases | None = None,
    policy: Policy | None = None,
    allow: Collection[str] = (),
    allow_deletes: bool = False,
    command: str = "syncd sync",
) -> list[Refusal]:
    """The refusals this plan earns; empty when it may be applied.

    ``command`` is what the operator runs to proceed (``syncd sync`` or ``syncd apply FILE``).
    """
    if allow_deletes:
        return []
    bases = bases or Bases()
    made = counts(plan, policy or Policy())
    of_kind = {
        "deactivations": bases.users,
        "team_deletions": bases.teams,
        "member_removals": bases.memberships,
        "type_downgrades": bases.users,
    }
    refusals = []
    for brake in _BRAKES:
        if brake.category in allow:
            continue
        count, base = made[brake.category], of_kind[brake.category]
        absolute = getattr(limits, f"max_{brake.category}")
        why = _over(count, base, absolute, limits.max_percent, brake)
        if why is None:
            continue
        refusals.append(
            Refusal(
                brake.code,
                f"the plan {brake.verb} {count} {brake.noun[count != 1]}{_share(count, base, brake)}: {why}; "
                "nothing was applied. Review it with `syncd plan`, then run "
                f"`{command} --allow {brake.category}` to apply it anyway (`--allow-deletes` lifts every limit).",
                brake.category,
            )
        )
    return refusals


def _share(count: int, base: int, brake: _Brake) -> str:
    return f" of {base} {brake.kind} ({100 * count / base:.0f}%)" if base else ""


def _over(count: int, base: int, absolute: int, percent: float, brake: _Brake) -> str | None:
    if count > absolute:
        return f"more than safety.max_{brake.category} = {absolute}"
    if count >= brake.all_from and base and count >= base:
        return f"all of them at once (safety.max_{brake.category} = {absolute}, safety.max_percent = {percent:g})"
    if count >= PROPORTION_FLOOR and base and count > base * percent / 100:
        return f"more than safety.max_percent = {percent:g}% of them (safety.max_{brake.category} = {absolute})"
    return None
