"""A settled store: what lets a run that finds nothing new skip loading the store and planning.

A run that read the whole application completely and whose plan changed nothing leaves a record
(:data:`SETTLED_KEY`, written in its apply transaction): the store's generations after it, a
fingerprint of the rest of what its plan depended on (the policy and the settings of the read),
the app roles it read, the users whose absence it asked Graph about, and the plan's problems.

The next run of a process that keeps nothing between runs (cron, the timer, ``syncd sync``) checks
the record against the store's generations and its own configuration, loads the mirror without
its users' properties, and reads one delta round.  When the round touches nothing of the
application (:func:`syncd.mirror.touches`) and the app roles are the same, the snapshot is the one
the record's plan was made from and the store is the one it was made against, so planning again
would give that same plan: the run takes it, and advances the delta links as any run does.
Anything else makes a run of its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .changes import Plan
from .config import Config
from .model import AppRole, Policy
from .records import RecordError, plan_from_record, plan_record
from .store.protocol import Generations

SETTLED_KEY = "settled"


@dataclass(frozen=True, slots=True)
class Settled:
    generations: Generations
    """The store's generations once the settling run committed."""
    fingerprint: str
    """Of the policy and the settings of the read (:func:`fingerprint`)."""
    app_roles: str
    """The app roles the plan was made with (:func:`roles_text`)."""
    watched: frozenset[str]
    """Users outside the scope whose changes matter: those whose absence the run asked Graph about."""
    plan: Plan
    """The plan: no changes, its problems (errors, warnings, held changes)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "generations": [self.generations.state, self.generations.mirror],
                "fingerprint": self.fingerprint,
                "app_roles": self.app_roles,
                "watched": sorted(self.watched),
                "plan": plan_record(self.plan),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Settled | None:
        """The record, or None for none or one that cannot be read (the run then plans in full)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            state, mirror = data["generations"]
            plan = plan_from_record(data["plan"])
            settled = cls(
                Generations(str(state), str(mirror)),
                str(data["fingerprint"]),
                str(data["app_roles"]),
                frozenset(str(user_id) for user_id in data["watched"]),
                plan,
            )
        except (ValueError, TypeError, KeyError, RecordError):
            return None
        return None if settled.plan.changes else settled


def fingerprint(config: Config, policy: Policy) -> str:
    """Everything besides the snapshot and the store that a plan depends on."""
    text = repr((policy, config.sync, config.roles, config.scope, config.graph.service_principal_id))
    return hashlib.sha256(text.encode()).hexdigest()


def roles_text(app_roles: tuple[AppRole, ...]) -> str:
    return repr(sorted(app_roles, key=lambda role: role.id))
