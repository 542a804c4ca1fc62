"""The read side of the in-memory tenant: the objects it stores and every way to look at them.

:class:`Directory` holds the users, groups, service principals, devices, organizational contacts
and app role assignments, and answers lookups (by id, by userPrincipalName, by appId), the
membership walks Graph's navigations need (``members``, ``transitiveMembers``, ``memberOf``,
``transitiveMemberOf``) and the reads tests use.  :class:`~syncd.simulator.tenant.Tenant` adds the
changes.

Replication lag: :meth:`Directory.replicated` says whether an object is old enough (on the
monotonic :attr:`Directory.clock`) to be found by its id; until then Graph's routes answer 404 for
it while it is already listed in collections.  The lag is that in force when the object was
created (a write replicates with the delay of its time), shortened to the current lag, so
``set_lag(60)`` hides only what is created from then on and ``set_lag(0)`` shows everything.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

from syncd.simulator.objects import DEFAULT_PERMISSIONS, Assignment, DirectoryObject, NotFoundError
from syncd.simulator.schema import USER


class Directory:
    """The stored objects of a tenant and the reads over them; all reads take :attr:`lock`."""

    service_principal_id: str
    """The object id of the application's service principal (set by the tenant)."""

    def __init__(self, *, seed: int | None = None, domain: str = "contoso.com") -> None:
        self.lock = threading.RLock()
        self.domain = domain
        self._rng = random.Random(seed)
        self.objects: dict[str, DirectoryObject] = {}
        self.users: dict[str, DirectoryObject] = {}
        self.groups: dict[str, DirectoryObject] = {}
        self.service_principals: dict[str, DirectoryObject] = {}
        self.devices: dict[str, DirectoryObject] = {}
        self.contacts: dict[str, DirectoryObject] = {}
        self.assignments: dict[str, Assignment] = {}
        self.permissions: frozenset[str] = DEFAULT_PERMISSIONS
        self.lag = 0.0
        """Seconds an object created from now on stays unknown by id (0: none)."""
        self.clock = time.monotonic
        """The clock creation times and the lag are measured on (tests may replace it)."""
        self._upn_index: dict[str, str] = {}
        self._member_of: dict[str, dict[str, None]] = {}
        self._assignments_of: dict[str, dict[str, None]] = {}

    # ------------------------------------------------------------------ ids and clock

    def new_id(self) -> str:
        """A fresh GUID (deterministic when the tenant was given a seed)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def set_lag(self, seconds: float) -> None:
        """From now on, objects stay unknown by id for ``seconds`` after they are created (0: no lag)."""
        if seconds < 0:
            raise ValueError("The replication lag cannot be negative.")
        with self.lock:
            self.lag = float(seconds)

    def replicated(self, obj: DirectoryObject) -> bool:
        """Whether a read by id reaches this object yet: it is older than its replication lag."""
        lag = min(obj.replication_lag, self.lag)
        return lag <= 0 or self.clock() - obj.created_at >= lag

    # ------------------------------------------------------------------ lookups

    def get(self, object_id: str) -> DirectoryObject:
        """The directory object (of any type) with this id."""
        with self.lock:
            found = self.objects.get(object_id.lower())
            if found is None:
                raise NotFoundError(object_id)
            return found

    def find_user(self, key: str) -> DirectoryObject:
        """A user by id or by userPrincipalName (case-insensitive), as ``GET /users/{key}``."""
        with self.lock:
            object_id = self._upn_index.get(key.lower(), key.lower())
            found = self.users.get(object_id)
            if found is None:
                raise NotFoundError(key)
            return found

    def find_group(self, group_id: str) -> DirectoryObject:
        """A group by id."""
        with self.lock:
            return self._group(group_id)

    def find_service_principal(self, *, object_id: str | None = None, app_id: str | None = None) -> DirectoryObject:
        """A service principal by object id or by appId."""
        with self.lock:
            if object_id is not None:
                found = self.service_principals.get(object_id.lower())
                if found is None:
                    raise NotFoundError(object_id)
                return found
            for principal in self.service_principals.values():
                if str(principal.props["appId"]).lower() == str(app_id).lower():
                    return principal
            raise NotFoundError(str(app_id))

    def member_objects(self, group_id: str) -> list[DirectoryObject]:
        """The direct members of a group, in creation order."""
        with self.lock:
            group = self._group(group_id)
            members = [self.objects[member_id] for member_id in group.members or ()]
            return sorted(members, key=lambda member: member.seq)

    def transitive_member_objects(self, group_id: str) -> list[DirectoryObject]:
        """Every member of a group and of the groups nested in it, each once, in creation order."""
        with self.lock:
            self._group(group_id)
            seen: dict[str, DirectoryObject] = {}
            pending = [group_id.lower()]
            visited = {group_id.lower()}
            while pending:
                members = self.groups[pending.pop()].members or {}
                for member_id in members:
                    member = self.objects[member_id]
                    seen.setdefault(member_id, member)
                    if member.members is not None and member_id not in visited:
                        visited.add(member_id)
                        pending.append(member_id)
            seen.pop(group_id.lower(), None)
            return sorted(seen.values(), key=lambda member: member.seq)

    def member_of_objects(self, object_id: str, transitive: bool = False) -> list[DirectoryObject]:
        """The groups an object belongs to directly (or through nesting), in creation order."""
        with self.lock:
            self.get(object_id)
            found: dict[str, DirectoryObject] = {}
            pending = [object_id.lower()]
            while pending:
                for group_id in self._member_of.get(pending.pop(), {}):
                    if group_id not in found:
                        found[group_id] = self.groups[group_id]
                        if transitive:
                            pending.append(group_id)
            found.pop(object_id.lower(), None)
            return sorted(found.values(), key=lambda group: group.seq)

    def assignments_to(self, resource_id: str) -> list[Assignment]:
        """The appRoleAssignments granted for a resource service principal (``appRoleAssignedTo``)."""
        with self.lock:
            return [item for item in self.assignments.values() if item.resource_id == resource_id.lower()]

    def assignments_of(self, principal_id: str) -> list[Assignment]:
        """The appRoleAssignments a principal holds (``/users/{id}/appRoleAssignments``)."""
        with self.lock:
            ids = self._assignments_of.get(principal_id.lower(), {})
            return sorted((self.assignments[item] for item in ids), key=lambda item: item.seq)

    def _group(self, group_id: str) -> DirectoryObject:
        found = self.groups.get(group_id.lower())
        if found is None:
            raise NotFoundError(group_id)
        return found

    def _user(self, user_id: str) -> DirectoryObject:
        found = self.users.get(user_id.lower())
        if found is None:
            raise NotFoundError(user_id)
        return found

    # ------------------------------------------------------------------ reads for tests

    def user_ids(self) -> list[str]:
        with self.lock:
            return list(self.users)

    def group_ids(self) -> list[str]:
        with self.lock:
            return list(self.groups)

    def get_user(self, user_id: str) -> dict[str, Any]:
        """A copy of the user's Graph properties (accepts a userPrincipalName too)."""
        with self.lock:
            return dict(self.find_user(user_id).props)

    def get_group(self, group_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._group(group_id).props)

    def member_ids(self, group_id: str) -> list[str]:
        return [member.id for member in self.member_objects(group_id)]

    def transitive_user_ids(self, group_id: str) -> list[str]:
        members = self.transitive_member_objects(group_id)
        return [member.id for member in members if member.resource is USER]

    def app_roles(self) -> list[dict[str, Any]]:
        """The application's appRoles as Graph lists them (the default-access role is not listed)."""
        with self.lock:
            roles = self.service_principals[self.service_principal_id].props["appRoles"]
            return [dict(role) for role in roles]

    def list_assignments(self) -> list[dict[str, Any]]:
        """The application's appRoleAssignedTo collection as Graph returns it."""
        with self.lock:
            return [self.render_assignment(item) for item in self.assignments_to(self.service_principal_id)]

    def render_assignment(self, item: Assignment) -> dict[str, Any]:
        """One appRoleAssignment in the shape of Graph's ``appRoleAssignedTo`` items."""
        principal = self.objects.get(item.principal_id)
        resource = self.objects.get(item.resource_id)
        return {
            "id": item.id,
            "deletedDateTime": None,
            "appRoleId": item.app_role_id,
            "createdDateTime": item.created,
            "principalDisplayName": principal.display_name if principal else None,
            "principalId": item.principal_id,
            "principalType": item.principal_type,
            "resourceDisplayName": resource.display_name if resource else None,
            "resourceId": item.resource_id,
        }
