"""The source seam: where a run's desired state comes from.

A :class:`Source` is told what the store already manages (:class:`~syncd.model.Managed`) and
returns a :class:`~syncd.model.Snapshot` that already carries the evidence about those objects -
which are disabled, which Graph answered 404 for, which could not be read - so the planner runs
once, on a snapshot it never has to send back for more.

Three sources exist: the whole application from Microsoft Graph
(:class:`~syncd.graph.source.ApplicationSource`), one principal on demand
(:class:`~syncd.graph.source.PrincipalSource`), and a snapshot file
(:class:`~syncd.graph.snapshot_file.SnapshotFileSource`).  :func:`source_for` picks one for a run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .config import Config
from .mirror import Mirror, MirrorFeed
from .model import Managed, Snapshot

if TYPE_CHECKING:
    from .graph.client import GraphStats
    from .graph.incremental import PreRead, Wanted

Progress = Callable[[str, int, int], None]


class Source(Protocol):
    """Reads the desired state of one run."""

    feed: MirrorFeed | None
    """After :meth:`read`: what the read changes in the store's mirror of Graph, written with the
    run's changes (None: nothing, as for a file, an on-demand read or an incomplete read)."""

    def read(self, managed: Managed) -> Snapshot:
        """The snapshot, with the evidence about ``managed`` objects it needs.

        Raises :class:`~syncd.errors.SyncdError` when nothing can be trusted (credentials, a
        missing application, an unreadable file); what merely could not be read is listed in
        ``Snapshot.failures``.
        """
        ...


def source_for(
    config: Config,
    *,
    snapshot_path: str | None = None,
    user: str | None = None,
    group: str | None = None,
    progress: Progress | None = None,
    stats: GraphStats | None = None,
    cancel: threading.Event | None = None,
    mirror: Mirror | None = None,
    full: bool = False,
    preread: PreRead | None = None,
    wanted: Wanted | None = None,
) -> Source:
    """The source of a run: a snapshot file, one user or group on demand, or the whole application."""
    if snapshot_path:
        from .graph.snapshot_file import SnapshotFileSource

        return SnapshotFileSource(snapshot_path)
    config.graph.require_application("(or pass --from-snapshot FILE)")
    from .graph.source import ApplicationSource, PrincipalSource

    if user or group:
        return PrincipalSource(config, user=user, group=group, stats=stats, cancel=cancel)
    return ApplicationSource(
        config, progress=progress, stats=stats, cancel=cancel, mirror=mirror, full=full, preread=preread, wanted=wanted
    )
