"""The Graph sources: the whole application, or one principal on demand (see :mod:`syncd.source`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ..config import Config
from ..errors import GraphError, SyncdError
from ..evidence import users_to_ask_about
from ..mirror import Mirror, MirrorFeed, feed_between
from ..model import Managed, Snapshot
from . import fetch, incremental
from .client import GraphStats
from .delta import selection
from .fetch import Progress

log = logging.getLogger("syncd")


class ApplicationSource:
    """Every assignment of the application, with what Graph says about managed users it left out.

    The application is read as one delta round over the store's mirror of it when the mirror can
    be continued, or in full (:mod:`~syncd.graph.incremental`): when there is no mirror yet, the
    selected user properties changed, the last full read is older than ``sync.full_every_hours``,
    ``full`` is asked for, or Graph no longer honours the delta links.  What the read changes in the
    mirror is :attr:`feed`, which the run writes with its changes, so the links advance only with
    a run that is applied.

    After the read, the managed users whose absence only Graph can explain
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
        mirror: Mirror | None = None,
        full: bool = False,
        now: datetime | None = None,
        preread: incremental.PreRead | None = None,
        wanted: incremental.Wanted | None = None,
    ) -> None:
        self.config = config
        self.progress = progress
        self.stats = stats
        self.cancel = cancel
        self.mirror = mirror
        self.full = full
        self.now = now
        self.preread = preread
        """A delta round read already from the mirror's links, folded instead of read again."""
        self.wanted = wanted
        """Given, ``mirror`` is the stored mirror's outline, and the round is read over it
        (:func:`~syncd.graph.incremental.partial_delta_read_async`)."""
        self.loaded: frozenset[str] | None = None
        """After a read over the outline: the only users the snapshot holds (see ``wanted``)."""
        self.mirror_before: Mirror | None = None
        """After a read over the outline: the stored mirror with those users."""
        self.feed: MirrorFeed | None = None
        self.mirror_after: Mirror | None = None
        """The mirror as :attr:`feed` leaves it."""
        self.incremental = False
        self.asked: frozenset[str] = frozenset()
        """The managed users whose absence the read asked Graph about."""

    def full_read_reason(self) -> str | None:
        """Why this run reads the application in full; None when it continues the mirror."""
        sync = self.config.sync
        if not incremental.tracks(sync):
            return "sync.scope is all or sync.nested_groups is on: every run reads in full"
        if self.full:
            return "a full read was asked for (--full)"
        mirror = self.mirror
        if mirror is None or mirror.cursor is None:
            return "there is no mirror of Graph yet"
        if mirror.cursor.selection != selection(self.config.graph):
            return "the selected user properties changed"
        now = self.now or datetime.now(UTC)
        if now - mirror.cursor.full_at > timedelta(hours=sync.full_every_hours):
            return f"the last full read is more than {sync.full_every_hours:g} hours old"
        return None

    def read(self, managed: Managed) -> Snapshot:
        reason = self.full_read_reason()
        if reason is not None:
            log.info("reading the application in full: %s", reason)
        reading = incremental.read_whole_application(
            self.config.graph,
            self.config.sync,
            None if reason is not None else self.mirror,
            progress=self.progress,
            stats=self.stats,
            cancel=self.cancel,
            preread=self.preread,
            wanted=self.wanted if reason is None else None,
        )
        snapshot = reading.snapshot
        self.incremental = reading.incremental
        self.loaded, self.mirror_before = reading.loaded, reading.before
        before = reading.before if reading.loaded is not None else self.mirror
        if reading.mirror is not None:
            self.feed = feed_between(before or Mirror(), reading.mirror, incremental=reading.incremental)
            self.mirror_after = reading.mirror
        if reading.loaded is not None and self.wanted is not None:
            # the snapshot holds these users only: the rest are in scope, as the store has them
            managed = replace(managed, users=self.wanted.managed(reading.loaded))
        unexplained = users_to_ask_about(snapshot, managed, self.config.sync.email_attribute)
        self.asked = frozenset(unexplained)
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
    feed: MirrorFeed | None = None

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
