"""Reviewed plans: a plan saved by ``syncd plan --out FILE`` and applied, exactly, by ``syncd apply FILE``.

The file is one JSON object:

* ``format`` ``"syncd-plan"`` and ``version`` 1;
* ``created_at``: when the plan was made (UTC, ISO 8601);
* ``store_fingerprint``: a SHA-256 of the store's users, teams and memberships as the plan saw
  them; ``syncd apply`` refuses the plan (``PLAN_STALE``) when the store no longer matches it, or
  when the plan is older than ``safety.plan_max_age_minutes``;
* ``plan``: what ``syncd plan --json`` prints, for the reviewer;
* ``records``: the change records themselves (:mod:`syncd.records`), which ``syncd apply`` carries
  out;
* ``checksum``: a SHA-256 of everything else, so a file edited after it was made is refused
  (``PLAN_INVALID``) rather than applied.

Pure but for :func:`write` and :func:`read`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .changes import Plan
from .errors import SyncdError
from .model import StoreState
from .records import RecordError, plan_from_record, plan_record

FORMAT = "syncd-plan"
VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedPlan:
    plan: Plan
    store_fingerprint: str
    created_at: datetime
    path: str


def fingerprint(state: StoreState) -> str:
    """A SHA-256 of every user, team and membership the store holds."""
    users = [
        [u.id, u.email, u.name, u.user_type, u.active, u.entra_id, u.inactive_reason, sorted(u.attributes.items())]
        for u in sorted(state.users, key=lambda user: user.id)
    ]
    teams = [[t.id, t.name, t.entra_id, sorted(t.member_ids)] for t in sorted(state.teams, key=lambda team: team.id)]
    return hashlib.sha256(_canonical({"users": users, "teams": teams}).encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def _checksum(document: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in document.items() if k != "checksum"}).encode()).hexdigest()


def document(plan: Plan, shown: dict[str, Any], store_fingerprint: str, created_at: datetime) -> dict[str, Any]:
    """The saved plan: ``shown`` is what ``syncd plan --json`` prints for it; ``store_fingerprint``
    the :func:`fingerprint` of the state it was made against."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": created_at.astimezone(UTC).isoformat(),
        "store_fingerprint": store_fingerprint,
        "plan": shown,
        "records": plan_record(plan),
    }
    doc["checksum"] = _checksum(doc)
    return doc


def write(path: str, doc: dict[str, Any]) -> None:
    """Write the file whole or not at all (a temporary file beside it, then renamed), readable by its owner."""
    target = Path(path)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(doc, file, ensure_ascii=True, indent=1)
            file.write("\n")
        os.replace(temporary, target)
    except OSError as error:
        raise SyncdError(f"cannot write the plan to {path}: {error.strerror or error}", code="INVALID_INPUT") from None


def _invalid(path: str, why: str) -> SyncdError:
    return SyncdError(f"{path} is not a plan syncd can apply: {why}", code="PLAN_INVALID")


def read(path: str) -> SavedPlan:
    """The saved plan at ``path``; SyncdError(PLAN_INVALID) for anything else, an edited plan included."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _invalid(path, f"cannot read it ({getattr(error, 'strerror', None) or error})") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid(path, "it is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _invalid(path, f'it is not a syncd plan (no "format": "{FORMAT}")')
    if doc.get("version") != VERSION:
        raise _invalid(path, f"version {doc.get('version')!r} is not {VERSION}")
    if doc.get("checksum") != _checksum(doc):
        raise _invalid(path, "it was changed after it was made (its checksum does not match)")
    try:
        created_at = datetime.fromisoformat(str(doc["created_at"]))
        if created_at.tzinfo is None:
            raise ValueError(created_at)
        plan = plan_from_record(doc["records"])
        store_fingerprint = str(doc["store_fingerprint"])
    except (KeyError, ValueError, RecordError) as error:
        raise _invalid(path, str(error)) from None
    return SavedPlan(plan, store_fingerprint, created_at, path)
