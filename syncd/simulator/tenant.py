"""An in-memory Entra ID tenant: users, groups, service principals and app role assignments.

It behaves as Entra does where syncd can tell the difference:

* object ids are GUIDs; a user can also be found by its userPrincipalName, case-insensitively;
* a group's members are users, groups (nesting) or service principals, and a group cannot
  contain itself;
* an appRoleAssignment grants one app role of a resource service principal to a user, group or
  service principal; the default-access role ``00000000-0000-0000-0000-000000000000`` is always
  valid and never listed in ``appRoles``;
* deleting a user or group removes its assignments and memberships with it;
* the application's granted permissions decide which reads Graph allows.

Every object carries a creation sequence number; collections are served in that order, which
keeps paging stable while the tenant changes between pages.  All methods take the tenant's lock,
so tests may mutate the tenant while the server is answering requests.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from syncd.simulator.objects import (
    DEFAULT_ACCESS_ROLE_ID,
    DEFAULT_PERMISSIONS,
    Assignment,
    DirectoryObject,
    NotFoundError,
    assignment_id,
    camel_case,
    canonical_guid,
    new_app_role,
    new_group,
    new_service_principal,
    new_user,
    timestamp,
)
from syncd.simulator.schema import GROUP, SERVICE_PRINCIPAL, USER, ResourceType

__all__ = ["DEFAULT_ACCESS_ROLE_ID", "Assignment", "DirectoryObject", "NotFoundError", "Tenant"]


class Tenant:
    """A directory holding one enterprise application (its service principal) and its principals."""

    def __init__(
        self,
        app_display_name: str = "Workspace",
        *,
        seed: int | None = None,
        domain: str = "contoso.com",
    ) -> None:
        self.lock = threading.RLock()
        self.domain = domain
        self._rng = random.Random(seed)
        self._seq = 0
        self.objects: dict[str, DirectoryObject] = {}
        self.users: dict[str, DirectoryObject] = {}
        self.groups: dict[str, DirectoryObject] = {}
        self.service_principals: dict[str, DirectoryObject] = {}
        self.assignments: dict[str, Assignment] = {}
        self.permissions: frozenset[str] = DEFAULT_PERMISSIONS
        self._upn_index: dict[str, str] = {}
        self._member_of: dict[str, dict[str, None]] = {}
        self._assignments_of: dict[str, dict[str, None]] = {}
        self.tenant_id = self.new_id()
        self.app_id = self.new_id()
        self.service_principal_id = self.add_service_principal(
            app_display_name, app_id=self.app_id, assignment_required=True
        )

    # ------------------------------------------------------------------ ids and clock

    def new_id(self) -> str:
        """A fresh GUID (deterministic when the tenant was given a seed)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _fresh_id(self, wanted: str | None) -> str:
        object_id = canonical_guid(wanted) if wanted is not None else self.new_id()
        if object_id in self.objects:
            raise ValueError(f"Another object with the id '{object_id}' already exists.")
        return object_id

    def _properties(self, resource: ResourceType, fields: dict[str, Any]) -> dict[str, Any]:
        props = {}
        for key, value in fields.items():
            name = key if key in resource.properties else resource.canonical(camel_case(key))
            if name is None or name == "id":
                raise ValueError(f"'{key}' is not a writable property of microsoft.graph.{resource.name}")
            props[name] = value
        return props

    # ------------------------------------------------------------------ lookups

    def get(self, object_id: str) -> DirectoryObject:
        """The user, group or service principal with this id."""
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

    # ------------------------------------------------------------------ app roles and permissions

    def add_app_role(
        self,
        display_name: str,
        value: str | None = None,
        *,
        description: str | None = None,
        id: str | None = None,
        enabled: bool = True,
    ) -> str:
        """Declare an app role on the application; returns its id."""
        with self.lock:
            role_id = canonical_guid(id) if id is not None else self.new_id()
            principal = self.service_principals[self.service_principal_id]
            roles = principal.props["appRoles"]
            if any(role["id"] == role_id for role in roles) or role_id == DEFAULT_ACCESS_ROLE_ID:
                raise ValueError(f"An app role with the id '{role_id}' already exists.")
            role = new_app_role(role_id, display_name, value, description, enabled)
            principal.props["appRoles"] = [*roles, role]
            return role_id

    def set_permissions(self, permissions: Iterable[str]) -> None:
        """Replace the application permissions granted (with admin consent) to the syncing app."""
        with self.lock:
            self.permissions = frozenset(permissions)

    # ------------------------------------------------------------------ objects

    def add_service_principal(
        self,
        display_name: str,
        *,
        app_id: str | None = None,
        id: str | None = None,
        assignment_required: bool = False,
    ) -> str:
        """Add a service principal (an enterprise application); returns its object id."""
        with self.lock:
            object_id = self._fresh_id(id)
            app_id = canonical_guid(app_id) if app_id is not None else self.new_id()
            seq = self._next_seq()
            props = new_service_principal(object_id, app_id, display_name, self.tenant_id, assignment_required)
            principal = DirectoryObject(SERVICE_PRINCIPAL, seq, props)
            self.objects[object_id] = self.service_principals[object_id] = principal
            return object_id

    def add_user(
        self,
        upn: str,
        display_name: str | None = None,
        mail: str | None = None,
        job_title: str | None = None,
        account_enabled: bool = True,
        id: str | None = None,
        **graph_fields: Any,
    ) -> str:
        """Create a user; returns its id.  Extra keyword arguments are further Graph properties.

        Entra refuses a second user with the same userPrincipalName (compared case-insensitively).
        """
        with self.lock:
            object_id = self._fresh_id(id)
            if upn.lower() in self._upn_index:
                raise ValueError("Another object with the same value for property userPrincipalName already exists.")
            seq = self._next_seq()
            created = timestamp(seq)
            props = new_user(object_id, upn, display_name, mail, job_title, account_enabled, created)
            props.update(self._properties(USER, graph_fields))
            user = DirectoryObject(USER, seq, props)
            self.objects[object_id] = self.users[object_id] = user
            self._upn_index[upn.lower()] = object_id
            return object_id

    def update_user(self, user_id: str, **graph_fields: Any) -> None:
        """Change user properties, named as in Graph (``displayName``) or in snake case."""
        with self.lock:
            user = self._user(user_id)
            changes = self._properties(USER, graph_fields)
            new_upn = changes.get("userPrincipalName")
            old_upn = str(user.props["userPrincipalName"])
            if new_upn is not None and new_upn.lower() != old_upn.lower():
                if new_upn.lower() in self._upn_index:
                    raise ValueError(
                        "Another object with the same value for property userPrincipalName already exists."
                    )
                del self._upn_index[old_upn.lower()]
                self._upn_index[new_upn.lower()] = user.id
            # Replace rather than mutate, so a response being encoded never sees a half-made change.
            user.props = {**user.props, **changes}

    def delete_user(self, user_id: str) -> None:
        """Delete a user; its assignments and group memberships go with it."""
        with self.lock:
            user = self._user(user_id)
            del self._upn_index[str(user.props["userPrincipalName"]).lower()]
            self._delete_object(user)
            del self.users[user.id]

    def add_group(
        self,
        display_name: str,
        members: Iterable[str] = (),
        id: str | None = None,
        **graph_fields: Any,
    ) -> str:
        """Create a security group with the given members (user, group or service principal ids)."""
        with self.lock:
            object_id = self._fresh_id(id)
            seq = self._next_seq()
            props = new_group(object_id, display_name, timestamp(seq))
            props.update(self._properties(GROUP, graph_fields))
            group = DirectoryObject(GROUP, seq, props, members={})
            self.objects[object_id] = self.groups[object_id] = group
            for member_id in members:
                self.add_member(object_id, member_id)
            return object_id

    def rename_group(self, group_id: str, display_name: str) -> None:
        self.update_group(group_id, displayName=display_name)

    def update_group(self, group_id: str, **graph_fields: Any) -> None:
        """Change group properties, named as in Graph or in snake case."""
        with self.lock:
            group = self._group(group_id)
            group.props = {**group.props, **self._properties(GROUP, graph_fields)}

    def add_member(self, group_id: str, member_id: str) -> None:
        """Add a user, group or service principal to a group (adding an existing member is a no-op)."""
        with self.lock:
            group = self._group(group_id)
            member = self.get(member_id)
            if member is group:
                raise ValueError("A group cannot be a member of itself.")
            assert group.members is not None
            group.members[member.id] = None
            self._member_of.setdefault(member.id, {})[group.id] = None

    def remove_member(self, group_id: str, member_id: str) -> None:
        """Remove a direct member from a group."""
        with self.lock:
            group = self._group(group_id)
            assert group.members is not None
            if member_id.lower() not in group.members:
                raise NotFoundError(member_id)
            del group.members[member_id.lower()]
            groups = self._member_of[member_id.lower()]
            del groups[group.id]
            if not groups:
                del self._member_of[member_id.lower()]

    def delete_group(self, group_id: str) -> None:
        """Delete a group; its assignments and memberships (both ways) go with it."""
        with self.lock:
            group = self._group(group_id)
            for member_id in list(group.members or ()):
                self.remove_member(group.id, member_id)
            self._delete_object(group)
            del self.groups[group.id]

    def _delete_object(self, obj: DirectoryObject) -> None:
        for group_id in list(self._member_of.get(obj.id, ())):
            self.remove_member(group_id, obj.id)
        self._member_of.pop(obj.id, None)
        self.unassign(obj.id)
        for item in [item for item in self.assignments.values() if item.resource_id == obj.id]:
            self._drop_assignment(item)
        del self.objects[obj.id]

    # ------------------------------------------------------------------ assignments

    def assign(
        self,
        principal_id: str,
        app_role_id: str = DEFAULT_ACCESS_ROLE_ID,
        *,
        resource_id: str | None = None,
    ) -> str:
        """Grant an app role to a user, group or service principal; returns the assignment id.

        The principalType is derived from the object.  Granting a role the principal already
        holds returns the existing assignment, where Graph would answer 400.
        """
        with self.lock:
            principal = self.get(principal_id)
            resource = self.find_service_principal(object_id=resource_id or self.service_principal_id)
            role_id = canonical_guid(app_role_id)
            role_ids = {role["id"] for role in resource.props["appRoles"]}
            if role_id != DEFAULT_ACCESS_ROLE_ID and role_id not in role_ids:
                raise ValueError("Permission being assigned was not found on application.")
            for existing in self.assignments_of(principal.id):
                if existing.resource_id == resource.id and existing.app_role_id == role_id:
                    return existing.id
            seq = self._next_seq()
            new_id = assignment_id(principal.id, self._rng.getrandbits(128))
            kinds = {"user": "User", "group": "Group", "servicePrincipal": "ServicePrincipal"}
            self.assignments[new_id] = Assignment(
                seq=seq,
                id=new_id,
                principal_id=principal.id,
                principal_type=kinds[principal.kind],
                resource_id=resource.id,
                app_role_id=role_id,
                created=timestamp(seq, fraction=True),
            )
            self._assignments_of.setdefault(principal.id, {})[new_id] = None
            return new_id

    def unassign(self, principal_id: str, app_role_id: str | None = None) -> int:
        """Remove a principal's assignments (of one role, or all); returns how many were removed."""
        with self.lock:
            role_id = canonical_guid(app_role_id) if app_role_id is not None else None
            removed = [
                item for item in self.assignments_of(principal_id) if role_id is None or item.app_role_id == role_id
            ]
            for item in removed:
                self._drop_assignment(item)
            return len(removed)

    def _drop_assignment(self, item: Assignment) -> None:
        del self.assignments[item.id]
        held = self._assignments_of.get(item.principal_id, {})
        held.pop(item.id, None)
        if not held:
            self._assignments_of.pop(item.principal_id, None)
