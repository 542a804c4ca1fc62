"""Safety brakes: a plan that would deprovision too much is refused whole, before anything is written.

Each refusal says what it saw, why it stopped, and the exact command that proceeds anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from .changes import Plan


@dataclass(frozen=True, slots=True)
class Limits:
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
    refusals = []
    deactivations = plan.count("deactivate_user")
    if deactivations > limits.max_deactivations:
        refusals.append(
            Refusal(
                "SAFETY_DEACTIVATIONS",
                f"the plan deactivates {deactivations} users, more than safety.max_deactivations = "
                f"{limits.max_deactivations}; nothing was applied. Review it with `syncd plan`, then run "
                "`syncd sync --allow-deletes` to apply it anyway.",
            )
        )
    deletions = plan.count("delete_team")
    if deletions > limits.max_team_deletions:
        refusals.append(
            Refusal(
                "SAFETY_TEAM_DELETIONS",
                f"the plan deletes {deletions} teams, more than safety.max_team_deletions = "
                f"{limits.max_team_deletions}; nothing was applied. Review it with `syncd plan`, then run "
                "`syncd sync --allow-deletes` to apply it anyway.",
            )
        )
    return refusals
