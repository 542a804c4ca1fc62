"""What absence means: the one place that decides whether a snapshot's silence about an object is
evidence about it.

A snapshot says what Graph returned.  An object it does not mention may have left (unassigned,
removed from its group), or may merely have been out of the read (a failed page, an on-demand read
of somebody else).  :class:`Evidence` answers, for one snapshot, "may absence act on this object?"
and "why did this user leave?"; the planner consults nothing else.  :func:`users_to_ask_about`
names the managed users whose absence only Graph itself can explain (disabled, deleted or merely
unassigned); a source asks Graph about them before the snapshot reaches the planner, so the
planner runs once on a snapshot that already carries that evidence.

Pure: imports only :mod:`syncd.model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Managed, Snapshot, SourceUser, user_email

UNASSIGNED = "unassigned"
DISABLED = "disabled"
DELETED = "deleted"
OUT_OF_SCOPE = "out_of_scope"
INACTIVE_REASONS = (UNASSIGNED, DISABLED, DELETED, OUT_OF_SCOPE)
"""Why a managed user is inactive, as the store keeps it."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one snapshot proves by what it leaves out."""

    snapshot: Snapshot
    users: dict[str, SourceUser] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", self.snapshot.user_by_id())

    @property
    def authoritative(self) -> bool:
        """A complete read of the whole application: absence is evidence about everyone."""
        return self.snapshot.complete and not self.snapshot.partial

    def knows(self, principal_id: str) -> bool:
        """Whether absence from this snapshot is evidence about the principal.

        A complete full read knows everyone; a complete on-demand read knows its subject; an
        incomplete read knows nobody (only positive evidence - disabled, 404 - counts then).
        """
        if self.authoritative:
            return True
        return self.snapshot.partial and self.snapshot.complete and principal_id in self.snapshot.subjects

    def roles_complete(self, entra_id: str) -> bool:
        """Whether every app role the user holds is in the snapshot, so its type may change."""
        if self.snapshot.partial:
            return self.snapshot.complete and entra_id in self.snapshot.subjects
        return self.snapshot.complete

    def is_deleted(self, entra_id: str) -> bool:
        """Graph answered 404 for the user: deleted in Entra."""
        return entra_id in self.snapshot.deleted_user_ids

    def departure(self, entra_id: str) -> str | None:
        """Why a provisioned user not wanted in the store leaves it; None when nothing says it left.

        Positive evidence counts in every snapshot (a 404: ``deleted``; ``accountEnabled`` false:
        ``disabled``); absence only where :meth:`knows` (``unassigned``, or ``deleted`` for a user a
        complete ``scope = "all"`` listing no longer holds).
        """
        if self.is_deleted(entra_id):
            return DELETED
        source = self.users.get(entra_id)
        if source is not None and source.account_enabled is False:
            return DISABLED
        if self.knows(entra_id):
            return DELETED if self.snapshot.scope == "all" and source is None else UNASSIGNED
        return None


def users_to_ask_about(snapshot: Snapshot, managed: Managed, email_attribute: str = "userPrincipalName") -> list[str]:
    """Managed users whose absence from ``snapshot`` only Graph can explain (one ``$batch`` per 20).

    * every active managed user the snapshot does not mention: in a complete read it is about to
      be deactivated, and Graph tells ``disabled`` and ``deleted`` from ``unassigned``; in an
      incomplete read only Graph's positive answer (404, or ``accountEnabled`` false) may
      deactivate it at all;
    * the holder of an email a user in scope claims, when the snapshot does not mention it and
      its row is not already known deleted: a deleted holder's row goes to the newcomer (a rehire).

    None for a ``scope = "all"`` listing (it holds every user) or an on-demand read.
    """
    if snapshot.scope != "assigned" or snapshot.partial:
        return []
    seen = {user.id for user in snapshot.users} | snapshot.deleted_user_ids
    unseen = {entra_id: user for entra_id, user in managed.users.items() if entra_id not in seen}
    leaving = {entra_id for entra_id, user in unseen.items() if user.active}
    # only a holder the snapshot does not mention can be asked about (a seen one speaks for itself)
    holders_by_email = {user.email: entra_id for entra_id, user in unseen.items() if user.inactive_reason != DELETED}
    if holders_by_email:
        for source in snapshot.users:
            if source.account_enabled is False:
                continue
            email = user_email(source, email_attribute)
            holder = holders_by_email.get(email) if email is not None else None
            if holder is not None and holder != source.id:
                leaving.add(holder)
    return sorted(leaving)
