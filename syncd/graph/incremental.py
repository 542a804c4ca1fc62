"""Reads that keep the mirror: a full read that starts the delta links, and a delta round.

**A full read** takes a ``$deltatoken=latest`` link for users, groups and assignments first, then
reads the application whole (:func:`~syncd.graph.fetch.full_read_async`); the mirror is that read,
with those links.  If Graph refuses the assignments' delta (``/directoryObjects/delta``), the
mirror lists the assignments whole every run instead (listing mode).

**A delta round** reads the application's service principal (its app roles), then the three delta
rounds concurrently (or the assignments' listing), folds them into the mirror, reads whole any
group newly assigned (its name and members) and, by ``$batch``, any user newly in scope that the
round did not describe, and makes the snapshot a full read would give.  Unchanged, that is four
requests whatever the tenant's size.

Completeness: a round that fails anywhere (a page, a decode, a group's members, a user) feeds
nothing: the run plans on what it could read, marked incomplete so that nobody is deprovisioned,
and the mirror and its links stay where they were, so the next run reads the same changes again.
A link Graph no longer honours raises :class:`~syncd.graph.delta.DeltaExpired`; the caller then
makes a full read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ..config import GraphConfig, SyncConfig
from ..errors import GraphError
from ..mirror import (
    Cursor,
    DeltaRound,
    Mirror,
    MirrorAssignment,
    MirrorGroup,
    add_groups,
    concerned,
    drop_purged,
    fold_assignments_and_groups,
    fold_users,
    mirror_of,
    snapshot_of,
    touches,
    with_cursor,
)
from ..model import AppRole, ManagedUser, Snapshot, SourceUser, user_email
from .classify import is_fatal
from .client import GraphClient, GraphStats, gather_all
from .decode import BadResponse, ServicePrincipalInfo
from .delta import (
    ASSIGNMENTS_DELTA,
    GROUPS_DELTA,
    DeltaExpired,
    decode_assignments,
    decode_groups,
    decode_users,
    latest,
    read_round,
    selection,
    users_delta,
)
from .fetch import Progress, full_read_async, run_with_client
from .reads import (
    Collected,
    read_application,
    read_assignments,
    read_group_names,
    read_members,
    read_users,
)

log = logging.getLogger("syncd.graph")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a read of the whole application gave: the snapshot, and the mirror it leaves (None: the
    read cannot be continued by deltas, or was incomplete and feeds nothing)."""

    snapshot: Snapshot
    mirror: Mirror | None
    incremental: bool
    loaded: frozenset[str] | None = None
    """A read over a mirror's outline (:func:`partial_delta_read_async`): the only users whose
    objects ``snapshot`` and ``mirror`` hold.  None: they hold every user in scope."""
    before: Mirror | None = None
    """With ``loaded``: the stored mirror, with those users, that the round was folded into."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a read over a mirror's outline asks of the store (:func:`partial_delta_read_async`)."""

    load: Callable[[Collection[str]], Mapping[str, SourceUser]]
    """The stored mirror's users among these ids."""
    related: Callable[[Collection[str], Collection[str]], set[str]]
    """Given users and emails: the users whose rows hold those emails or those users' emails."""
    managed: Callable[[Collection[str]], Mapping[str, ManagedUser]]
    """The managed users among these ids (whose absence the source may ask Graph about)."""
    users: frozenset[str] = frozenset()
    """Users to read whatever the round says (those the last plan reported a problem about)."""
    groups: frozenset[str] = frozenset()
    """Groups whose members to read whatever the round says."""
    email_attribute: str = "userPrincipalName"


@dataclass(frozen=True, slots=True)
class PreRead:
    """A delta round read already (by :func:`quiet_round`), folded by the run's own round instead of
    being read again, when the mirror still has the links it was read from."""

    links: Cursor
    """The cursor the round was read from."""
    service_principal: ServicePrincipalInfo
    round_: DeltaRound
    after: Cursor
    """The links after the round."""
    found: Collected


@dataclass(frozen=True, slots=True)
class Quiet:
    """What :func:`quiet_round` found: the round (None when any of it failed), and whether it
    touches the application."""

    read: PreRead | None = None
    touched: bool = True


def tracks(sync: SyncConfig) -> bool:
    """Whether deltas can stand for a full read: assigned scope, direct members only."""
    return sync.scope == "assigned" and not sync.nested_groups


# --------------------------------------------------------------------------- entry point


async def read_async(
    client: GraphClient,
    graph: GraphConfig,
    sync: SyncConfig,
    mirror: Mirror | None,
    *,
    progress: Progress | None,
    preread: PreRead | None = None,
    wanted: Wanted | None = None,
) -> Reading:
    """A delta round over ``mirror`` when there is one to continue (over its outline, given what is
    ``wanted`` of the store), else (or when Graph no longer honours its links) a full read."""
    if mirror is not None and mirror.cursor is not None and tracks(sync):
        try:
            if wanted is not None:
                return await partial_delta_read_async(client, graph, mirror, wanted, preread)
            return await delta_read_async(client, graph, mirror, preread)
        except DeltaExpired as error:
            log.warning("%s; reading the application in full", error.message)
    return await full_read_tracked_async(client, graph, sync, progress=progress)


def read_whole_application(
    graph: GraphConfig,
    sync: SyncConfig,
    mirror: Mirror | None,
    *,
    progress: Progress | None = None,
    stats: GraphStats | None = None,
    cancel: threading.Event | None = None,
    preread: PreRead | None = None,
    wanted: Wanted | None = None,
) -> Reading:
    """The application now: a delta round over ``mirror`` or a full read (:func:`read_async`)."""
    reading: Reading = run_with_client(
        graph,
        stats,
        lambda client: read_async(client, graph, sync, mirror, progress=progress, preread=preread, wanted=wanted),
        cancel,
    )
    return reading


# --------------------------------------------------------------------------- full read


async def full_read_tracked_async(
    client: GraphClient, graph: GraphConfig, sync: SyncConfig, *, progress: Progress | None = None
) -> Reading:
    """A full read; with :func:`tracks`, one that starts the delta links the next runs continue."""
    if not tracks(sync):
        snapshot, _ = await full_read_async(client, graph, sync, progress=progress)
        return Reading(snapshot, None, incremental=False)
    started = datetime.now(UTC)
    links = await gather_all(
        _latest_or_none(client, users_delta(client), "starting the users' delta"),
        _latest_or_none(client, GROUPS_DELTA, "starting the groups' delta"),
        _latest_or_none(client, ASSIGNMENTS_DELTA, "starting the assignments' delta"),
    )
    snapshot, found = await full_read_async(client, graph, sync, progress=progress)
    users_link, groups_link, assignments_link = links
    if users_link is None or groups_link is None or not snapshot.complete:
        return Reading(snapshot, None, incremental=False)
    if assignments_link is None:
        log.warning(
            "Graph refused the assignments' delta (/directoryObjects/delta); the application's assignments "
            "are listed whole every run"
        )
    cursor = Cursor(users_link, groups_link, assignments_link, selection(graph), started)
    return Reading(snapshot, mirror_of(snapshot, found.assignment_ids, cursor), incremental=False)


async def _latest_or_none(client: GraphClient, url: str, what: str) -> str | None:
    try:
        return await latest(client, url, what=what)
    except GraphError as error:
        if is_fatal(error):
            raise
        log.debug("%s: %s", what, error)
        return None


# --------------------------------------------------------------------------- delta round


async def delta_read_async(
    client: GraphClient, graph: GraphConfig, mirror: Mirror, preread: PreRead | None = None
) -> Reading:
    """The application now, from ``mirror`` and one delta round (see the module docstring); the
    round is ``preread`` when that was read from the mirror's links."""
    read = await _round(client, graph, mirror, preread)
    if isinstance(read, Reading):
        return read
    found, service_principal, round_, new_cursor = read
    folded = await _fold_groups(client, mirror, round_, found)
    folded, missing = fold_users(folded, round_, found.users.values())
    folded = await _read_missing(client, folded, missing, found)
    snapshot = replace(snapshot_of(folded, service_principal.app_roles), failures=tuple(found.failures))
    if not snapshot.complete:
        return Reading(snapshot, None, incremental=True)
    return Reading(snapshot, with_cursor(folded, new_cursor, service_principal.app_roles), incremental=True)


async def partial_delta_read_async(
    client: GraphClient, graph: GraphConfig, outline: Mirror, wanted: Wanted, preread: PreRead | None = None
) -> Reading:
    """:func:`delta_read_async` over the mirror's outline (its users' properties left out): only the
    users the round concerns are read from the store (:func:`~syncd.mirror.concerned`, with
    ``wanted.users`` and the members of ``wanted.groups``), then, until no more join, the users
    whose rows hold an email one of them claims or holds.  The snapshot and the mirror hold those
    users only (:attr:`Reading.loaded`); every other user in scope is as the stored mirror has it."""
    read = await _round(client, graph, outline, preread)
    if isinstance(read, Reading):
        return replace(read, loaded=frozenset(), before=outline)  # incomplete: it holds no user
    found, service_principal, round_, new_cursor = read
    folded = await _fold_groups(client, outline, round_, found)
    loaded = concerned(outline, folded, round_, wanted.groups) | wanted.users
    scope_before, scope_after = outline.scope_user_ids(), folded.scope_user_ids()
    stored = dict(wanted.load(loaded & scope_before))
    before = replace(outline, users=stored)
    folded, missing = fold_users(replace(folded, users=stored), round_, found.users.values(), among=loaded)
    folded = await _read_missing(client, folded, missing, found)
    joined = set(loaded)
    while joined:  # the users whose rows hold the emails the users that joined claim or hold
        claims = (folded.users.get(user_id) for user_id in joined)
        claimed = {email for user in claims if user and (email := user_email(user, wanted.email_attribute))}
        joined = wanted.related(joined, claimed) - loaded
        if not joined:
            break
        loaded |= joined
        extra = wanted.load(joined & scope_before)
        before = replace(before, users={**before.users, **extra})
        folded = replace(folded, users={**folded.users, **{k: v for k, v in extra.items() if k in scope_after}})
    snapshot = replace(snapshot_of(folded, service_principal.app_roles), failures=tuple(found.failures))
    kept = frozenset(loaded)
    if not snapshot.complete:
        return Reading(snapshot, None, incremental=True, loaded=kept, before=before)
    after = with_cursor(folded, new_cursor, service_principal.app_roles)
    return Reading(snapshot, after, incremental=True, loaded=kept, before=before)


async def _round(
    client: GraphClient, graph: GraphConfig, mirror: Mirror, preread: PreRead | None
) -> tuple[Collected, ServicePrincipalInfo, DeltaRound, Cursor] | Reading:
    """The round over ``mirror``'s links (``preread`` when it was read from them already), or the
    incomplete reading a failure leaves."""
    assert mirror.cursor is not None
    cursor = mirror.cursor
    if preread is not None and preread.links == cursor:
        return preread.found, preread.service_principal, preread.round_, preread.after
    found = Collected()
    application = await read_application(client, graph, found)
    if application is None:
        return Reading(_unread(mirror, (), found), None, incremental=True)
    try:
        round_, new_cursor = await _read_round(client, cursor, application.id, found)
    except DeltaExpired:
        raise
    except (GraphError, BadResponse) as error:
        failure = error if isinstance(error, GraphError) else GraphError(str(error), code="GRAPH_BAD_RESPONSE")
        found.fail(failure, "delta")
        return Reading(_unread(mirror, application.app_roles, found), None, incremental=True)
    return found, application, round_, new_cursor


async def _fold_groups(client: GraphClient, mirror: Mirror, round_: DeltaRound, found: Collected) -> Mirror:
    """The round's assignments and groups folded in, and the groups newly assigned read whole."""
    folded, new_group_ids = fold_assignments_and_groups(mirror, round_)
    folded = drop_purged(folded, round_)
    if new_group_ids:
        names, members = await gather_all(
            read_group_names(client, new_group_ids, found),
            gather_all(*(read_members(client, group_id, nested=False, found=found) for group_id in new_group_ids)),
        )
        read_groups = [
            MirrorGroup(group_id, names[group_id], frozenset(member_ids))
            for group_id, member_ids in zip(new_group_ids, members, strict=True)
            if group_id in names and member_ids is not None
        ]
        folded = add_groups(folded, read_groups)
    return folded


async def _read_missing(client: GraphClient, folded: Mirror, missing: tuple[str, ...], found: Collected) -> Mirror:
    """The users newly in scope that the round did not describe, read by id."""
    if not missing:
        return folded
    read = Collected()
    await read_users(client, missing, read, assigned=True)
    found.failures.extend(read.failures)
    folded, _ = fold_users(folded, DeltaRound(), read.users.values())
    return folded


async def quiet_round_async(client: GraphClient, graph: GraphConfig, outline: Mirror, watched: frozenset[str]) -> Quiet:
    """One delta round over ``outline`` (a mirror, its users' properties left out), and whether it
    touches the application (:func:`~syncd.mirror.touches`).  When anything in it fails, no round:
    the run then reads it itself (a delta link can be read again) and meets the failure there."""
    assert outline.cursor is not None
    found = Collected()
    service_principal = await read_application(client, graph, found)
    if service_principal is None or found.failures:
        return Quiet()
    try:
        round_, cursor = await _read_round(client, outline.cursor, service_principal.id, found)
    except (GraphError, BadResponse, DeltaExpired) as error:
        log.debug("the quiet round was not read: %s", error)
        return Quiet()
    if found.failures:
        return Quiet()
    read = PreRead(outline.cursor, service_principal, round_, cursor, found)
    return Quiet(read, touched=touches(outline, round_, watched))


def quiet_round(
    graph: GraphConfig,
    outline: Mirror,
    watched: frozenset[str],
    *,
    stats: GraphStats | None = None,
    cancel: threading.Event | None = None,
) -> Quiet:
    """:func:`quiet_round_async`, with a client of its own."""
    result: Quiet = run_with_client(
        graph, stats, lambda client: quiet_round_async(client, graph, outline, watched), cancel
    )
    return result


async def _read_round(
    client: GraphClient, cursor: Cursor, service_principal_id: str, found: Collected
) -> tuple[DeltaRound, Cursor]:
    """The three rounds (or two and the assignments' listing), decoded, and the links after them."""
    users_read = read_round(client, cursor.users, what="reading the users' changes")
    groups_read = read_round(client, cursor.groups, what="reading the groups' changes")
    assignments_link = cursor.assignments
    if assignments_link is not None:
        (user_items, users_link), (group_items, groups_link), (assignment_items, assignments_link) = await gather_all(
            users_read, groups_read, read_round(client, assignments_link, what="reading the assignments' changes")
        )
        round_ = DeltaRound(
            users=decode_users(user_items),
            groups=decode_groups(group_items),
            assignments=decode_assignments(assignment_items, service_principal_id),
        )
    else:
        (user_items, users_link), (group_items, groups_link), listed = await gather_all(
            users_read, groups_read, _list_assignments(client, service_principal_id)
        )
        round_ = DeltaRound(
            users=decode_users(user_items), groups=decode_groups(group_items), listed_assignments=listed
        )
    return round_, replace(cursor, users=users_link, groups=groups_link, assignments=assignments_link)


async def _list_assignments(client: GraphClient, service_principal_id: str) -> tuple[MirrorAssignment, ...]:
    """Listing mode: every assignment of the application, with its id; any failure fails the round."""
    listed = Collected()
    assignments = await read_assignments(client, service_principal_id, listed)
    if listed.failures:
        failure = listed.failures[0]
        raise GraphError(failure.message, code=failure.code)
    return tuple(
        MirrorAssignment(listed.assignment_ids[a], a.principal_id, a.principal_type, a.app_role_id)
        for a in assignments
        if a in listed.assignment_ids
    )


def _unread(mirror: Mirror, app_roles: tuple[AppRole, ...], found: Collected) -> Snapshot:
    """The mirror as it was, with what failed: an incomplete snapshot, which deprovisions nobody."""
    return replace(snapshot_of(mirror, app_roles), failures=tuple(found.failures))
