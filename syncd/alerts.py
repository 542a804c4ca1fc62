"""Notifications to people: a message when provisioning needs someone, and one when it recovers.

``[notify] urls`` are Apprise URLs (e-mail, Microsoft Teams, Slack, ntfy, JSON webhooks and about a
hundred others), so none is written here by hand.  After every run, one-shot or a daemon cycle, the
run's outcome moves a small state kept in the store (``notify.state``): the *condition* of
provisioning, one of

==============  ===========================================================================
condition       when
==============  ===========================================================================
``refused``     the last run was refused by a safety limit
``failed``      the last run failed (nothing applied)
``incomplete``  ``incomplete_after`` runs in a row could not read Graph in full
``stale``       no successful run for longer than ``stale_after_minutes``
``ok``          anything else
==============  ===========================================================================

A message goes out only when the condition changes (one per change of state, not one per cycle),
and only for the events ``[notify] events`` names (all of them by default); going back to ``ok`` is
the ``recovered`` event.  The text says what happened, the counts, and the command to run next.

Secrets in URLs (tokens, passwords) are registered with :mod:`syncd.redaction` before anything is
logged, and a failure to deliver is logged without the URL; a notification never fails a run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .redaction import register_secret

log = logging.getLogger("syncd")

EVENTS = ("refused", "failed", "incomplete", "stale", "recovered")
STATE_KEY = "notify.state"
_SEVERITY = {"refused": 4, "failed": 3, "incomplete": 2, "stale": 1, "ok": 0}


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    urls: tuple[str, ...] = field(default=(), repr=False)
    events: tuple[str, ...] = EVENTS
    incomplete_after: int = 2
    stale_after_minutes: float = 180.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run tells the notifications: its status and counts, from any kind of run."""

    status: str
    run_id: int | None = None
    changes: int = 0
    errors: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    event: str
    title: str
    body: str


class StateStore(Protocol):
    def get_state(self, key: str) -> str | None: ...

    def set_state(self, key: str, value: str) -> None: ...


def register_url_secrets(urls: Sequence[str]) -> None:
    """Every credential-like part of the URLs (user, password, path segments, query values) is masked
    wherever syncd logs or prints."""
    for url in urls:
        register_secret(url)
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        for value in (parts.username, parts.password, *parts.path.split("/"), *parts.query.split("&")):
            token = unquote((value or "").split("=", 1)[-1])
            if len(token) >= 8:
                register_secret(token)


def condition_after(
    previous: dict[str, Any], outcome: Outcome, config: NotifyConfig, last_success: datetime | None, now: datetime
) -> dict[str, Any]:
    """The notify state after a run (pure): the condition, the incomplete streak, what was last said."""
    before = str(previous.get("condition", "ok"))
    streak = int(previous.get("incomplete_streak", 0)) + 1 if outcome.status == "incomplete" else 0
    if outcome.status in ("refused", "failed"):
        condition = outcome.status
    elif outcome.status == "incomplete":
        if streak >= config.incomplete_after:
            condition = "incomplete"
        else:  # one hiccup pages nobody
            condition = before if before in ("incomplete", "stale") else "ok"
    elif outcome.status in ("success", "partial", "paused"):
        condition = "ok"
    else:  # a run that could not start (another holds the lock): only time says something is wrong
        condition = before
    long_ago = last_success is None or now - last_success > timedelta(minutes=config.stale_after_minutes)
    if condition == "ok" and outcome.status not in ("success", "partial", "paused") and long_ago:
        condition = "stale"
    return {"condition": condition, "incomplete_streak": streak, "notified": previous.get("notified", "ok")}


def message_for(condition: str, notified: str, outcome: Outcome, config: NotifyConfig) -> Message | None:
    """The message a change of condition calls for, or None (no change, or an event not wanted)."""
    if condition == notified:
        return None
    event = "recovered" if condition == "ok" else condition
    if event not in config.events:
        return None
    run = f"run {outcome.run_id}" if outcome.run_id is not None else "the last run"
    counts = f"{outcome.changes} changes applied, {outcome.errors} errors"
    detail = f"\n\n{outcome.message}" if outcome.message else ""
    texts = {
        "refused": (
            "syncd: a sync was refused by a safety limit",
            f"{run} was refused: nothing was applied.{detail}\n\nReview it with `syncd plan` and `syncd log "
            f"--run {outcome.run_id}`; if it is intended, run `syncd sync --allow-deletes` (or --allow CATEGORY).",
        ),
        "failed": (
            "syncd: provisioning failed",
            f"{run} failed and applied nothing.{detail}\n\nRun `syncd check` and `syncd status`; "
            "the next run tries again.",
        ),
        "incomplete": (
            f"syncd: Graph could not be read in full {config.incomplete_after} times in a row",
            f"{run} was incomplete ({counts}); nobody was deprovisioned by absence.{detail}\n\n"
            "Run `syncd check`; `syncd explain USER` shows what holds a user back.",
        ),
        "stale": (
            f"syncd: no successful run for more than {config.stale_after_minutes:g} minutes",
            f"The last run: {outcome.status} ({counts}).{detail}\n\nRun `syncd status` and `syncd history`.",
        ),
        "recovered": (
            "syncd: provisioning recovered",
            f"{run} ended {outcome.status} ({counts}) after the earlier {notified} condition.",
        ),
    }
    title, body = texts[event]
    return Message(event, title, body)


class Notifier:
    """Sends messages through Apprise to ``[notify] urls``."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        register_url_secrets(config.urls)

    def send(self, message: Message) -> bool:
        if not self.config.urls:
            return False
        try:
            import apprise
        except ImportError:  # pragma: no cover - a dependency of syncd
            log.error("notification not sent: the apprise library is missing")
            return False
        logging.getLogger("apprise").setLevel(logging.ERROR)
        sender = apprise.Apprise()
        added = sum(1 for url in self.config.urls if sender.add(url))
        if added < len(self.config.urls):
            missing = len(self.config.urls) - added
            log.error(
                "notify.urls: %d of %d URLs are not Apprise URLs; they get nothing", missing, len(self.config.urls)
            )
        if not added:
            return False
        try:
            sent = bool(sender.notify(title=message.title, body=message.body))
        except Exception as error:
            log.error("notification %r not sent (%s)", message.event, type(error).__name__)
            return False
        if not sent:
            log.error("notification %r could not be delivered to every URL", message.event)
        return sent


def after_run(
    config: NotifyConfig,
    store: StateStore,
    outcome: Outcome,
    last_success: datetime | None,
    now: datetime,
    notifier: Notifier | None = None,
) -> Message | None:
    """Move the notify state kept in the store by one run, and send the message it calls for.

    A message that could not be delivered is tried again after the next run; an event not wanted
    (``[notify] events``) counts as said.
    """
    if not config.urls:
        return None
    try:
        previous = json.loads(store.get_state(STATE_KEY) or "{}")
    except ValueError:
        previous = {}
    state = condition_after(previous if isinstance(previous, dict) else {}, outcome, config, last_success, now)
    message = None
    if state["condition"] != state["notified"]:
        message = message_for(state["condition"], state["notified"], outcome, config)
        if message is None or (notifier or Notifier(config)).send(message):
            state["notified"] = state["condition"]
    store.set_state(STATE_KEY, json.dumps(state, sort_keys=True))
    return message
