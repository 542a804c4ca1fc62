"""Safety brakes: a plan that would deprovision too much is refused whole, before anything is written.

Each refusal says what it saw, why it stopped, and the exact command that proceeds anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from .changes import Plan


@dataclass(frozen=True, slots=True)
class Limits:
    """``[safety]``: the most deprovisioning one plan may do without ``--allow-deletes``."""

    max_deactivations: int = 500
    max_team_deletions: int = 50


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str


def check(plan: Plan, limits: Limits, *, allow_deletes: bool = False) -> list[Refusal]:
    """The refusals this plan earns; empty when it may be applied."""
    if allow_deletes:
        return []
    brakes = (
        (
            "SAFETY_DEACTIVATIONS",
            "deactivate_user",
            "deactivates",
            "users",
            "max_deactivations",
            limits.max_deactivations,
        ),
        ("SAFETY_TEAM_DELETIONS", "delete_team", "deletes", "teams", "max_team_deletions", limits.max_team_deletions),
    )
    refusals = []
    for code, op, verb, noun, key, limit in brakes:
        count = plan.count(op)
        if count > limit:
            refusals.append(
                Refusal(
                    code,
                    f"the plan {verb} {count} {noun}, more than safety.{key} = {limit}; nothing was applied. "
                    "Review it with `syncd plan`, then run `syncd sync --allow-deletes` to apply it anyway.",
                )
            )
    return refusals
