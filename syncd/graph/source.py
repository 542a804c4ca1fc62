"""The Graph sources: the whole application, or one principal on demand (see :mod:`syncd.source`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from ..config import Config
from ..errors import GraphError, SyncdError
from ..evidence import users_to_ask_about
from ..model import Managed, Snapshot
from . import fetch
from .client import GraphStats
from .fetch import Progress

log = logging.getLogger("syncd")


class ApplicationSource:
    """Every assignment of the application, with what Graph says about managed users it left out.

    After the full read, the managed users whose absence only Graph can explain
    (:func:`~syncd.evidence.users_to_ask_about`) are looked up by id: a 404 is recorded as deleted,
    a disabled account as disabled.  When that lookup fails the snapshot goes on without it, and
    those users count as unassigned.
    """

    def __init__(
        self,
        config: Config,
        *,
        progress: Progress | None = None,
        stats: GraphStats | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.progress = progress
        self.stats = stats
        self.cancel = cancel

    def read(self, managed: Managed) -> Snapshot:
        snapshot = fetch.fetch_snapshot(
            self.config.graph, self.config.sync, progress=self.progress, stats=self.stats, cancel=self.cancel
        )
        unexplained = users_to_ask_about(snapshot, managed, self.config.sync.email_attribute)
        return self.explain(snapshot, unexplained) if unexplained else snapshot

    def explain(self, snapshot: Snapshot, user_ids: list[str]) -> Snapshot:
        """Add what Graph says about ``user_ids`` (disabled, or 404: deleted) to the snapshot."""
        try:
            users, deleted = fetch.lookup_users(self.config.graph, user_ids, stats=self.stats, cancel=self.cancel)
        except GraphError as error:
            if error.code == "GRAPH_AUTH":
                raise
            log.warning(
                "could not learn why %d users left scope [%s]: %s; recording them as unassigned",
                len(user_ids),
                error.code,
                error,
            )
            return snapshot
        known = {user.id for user in snapshot.users}
        return replace(
            snapshot,
            users=snapshot.users + tuple(user for user in users if user.id not in known),
            deleted_user_ids=snapshot.deleted_user_ids | deleted,
        )


class PrincipalSource:
    """One user (id, UPN or mail) or one group (id or name), on demand: a partial snapshot.

    A name Graph no longer knows is looked up by the Entra id the store holds for that email or
    team name, which tells a deleted principal (404 by id: deprovisioned) from a mistyped one.
    """

    def __init__(
        self,
        config: Config,
        *,
        user: str | None = None,
        group: str | None = None,
        stats: GraphStats | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.user = user
        self.group = group
        self.stats = stats
        self.cancel = cancel

    def read(self, managed: Managed) -> Snapshot:
        try:
            return self._fetch(self.user, self.group)
        except SyncdError as error:
            if error.code != "NOT_FOUND":
                raise
            if self.user:
                known = managed.user_with_email(self.user)
                if known is None:
                    raise
                return self._fetch(known, None)
            known = managed.team_named(self.group or "")
            if known is None:
                raise
            return self._fetch(None, known)

    def _fetch(self, user: str | None, group: str | None) -> Snapshot:
        return fetch.fetch_principal(
            self.config.graph, self.config.sync, user=user, group=group, stats=self.stats, cancel=self.cancel
        )
