"""An in-memory Entra ID tenant: users, groups, service principals, devices, organizational
contacts and app role assignments.

It behaves as Entra does where syncd can tell the difference:

* object ids are GUIDs; a user can also be found by its userPrincipalName, case-insensitively
  (a userPrincipalName may begin with ``$``);
* a group's members are users, groups (nesting), service principals, devices or organizational
  contacts, and a group cannot contain itself;
* an appRoleAssignment grants one app role of a resource service principal to a user, group or
  service principal (never to a device or a contact); the default-access role
  ``00000000-0000-0000-0000-000000000000`` is always valid and never listed in ``appRoles``;
* deleting a user or group removes its assignments and memberships with it;
* the application's granted permissions decide which reads Graph allows;
* replication lag: after :meth:`Tenant.set_lag`, an object created less than the lag ago is
  already listed in collections but not yet found by its id or userPrincipalName (Graph's
  directory is eventually consistent: a read that lands on a replica the write has not reached
  yet is a 404).  Objects created before the lag was set were written without lag.

Every object carries a creation sequence number; collections are served in that order, which
keeps paging stable while the tenant changes between pages.  All methods take the tenant's lock,
so tests may mutate the tenant while the server is answering requests.  The reads (lookups,
membership walks, replication lag) are those of :class:`~syncd.simulator.directory.Directory`;
this module adds the changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from syncd.simulator.changelog import ChangeLog
from syncd.simulator.directory import Directory
from syncd.simulator.objects import (
    DEFAULT_ACCESS_ROLE_ID,
    Assignment,
    DirectoryObject,
    NotFoundError,
    assignment_id,
    camel_case,
    canonical_guid,
    new_app_role,
    new_contact,
    new_device,
    new_group,
    new_service_principal,
    new_user,
    timestamp,
)
from syncd.simulator.schema import DEVICE, GROUP, ORG_CONTACT, SERVICE_PRINCIPAL, USER, ResourceType

__all__ = ["DEFAULT_ACCESS_ROLE_ID", "Assignment", "DirectoryObject", "NotFoundError", "Tenant"]


class Tenant(Directory):
    """A directory holding one enterprise application (its service principal) and its principals."""

    def __init__(
        self,
        app_display_name: str = "Workspace",
        *,
        seed: int | None = None,
        domain: str = "contoso.com",
    ) -> None:
        super().__init__(seed=seed, domain=domain)
        self._seq = 0
        self.changelog = ChangeLog()
        self.deleted_items: dict[str, tuple[DirectoryObject, list[str], list[Assignment]]] = {}
        """Users in the deleted items: the object, the groups it was in, its assignments."""
        self.tenant_id = self.new_id()
        self.app_id = self.new_id()
        self.service_principal_id = self.add_service_principal(
            app_display_name, app_id=self.app_id, assignment_required=True
        )

    # ------------------------------------------------------------------ making objects

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_object(
        self, resource: ResourceType, seq: int, props: dict[str, Any], members: dict[str, None] | None = None
    ) -> DirectoryObject:
        obj = DirectoryObject(resource, seq, props, members=members, created_at=self.clock(), replication_lag=self.lag)
        self.objects[obj.id] = obj
        return obj

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
            self.service_principals[object_id] = self._new_object(SERVICE_PRINCIPAL, seq, props)
            return object_id

    def add_device(
        self,
        display_name: str,
        *,
        operating_system: str | None = "Windows",
        device_id: str | None = None,
        id: str | None = None,
        **graph_fields: Any,
    ) -> str:
        """Register a device (it can be a group member, never an app role holder); returns its id."""
        with self.lock:
            object_id = self._fresh_id(id)
            device_id = canonical_guid(device_id) if device_id is not None else self.new_id()
            seq = self._next_seq()
            props = new_device(object_id, device_id, display_name, operating_system, timestamp(seq))
            props.update(self._properties(DEVICE, graph_fields))
            self.devices[object_id] = self._new_object(DEVICE, seq, props)
            return object_id

    def add_contact(
        self, display_name: str, mail: str | None = None, *, id: str | None = None, **graph_fields: Any
    ) -> str:
        """Add an organizational contact (it can be a group member); returns its id."""
        with self.lock:
            object_id = self._fresh_id(id)
            props = new_contact(object_id, display_name, mail)
            props.update(self._properties(ORG_CONTACT, graph_fields))
            self.contacts[object_id] = self._new_object(ORG_CONTACT, self._next_seq(), props)
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
            self.users[object_id] = self._new_object(USER, seq, props)
            self._upn_index[upn.lower()] = object_id
            self.changelog.created(object_id)
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
            self.changelog.changed(user.id, list(changes))

    def delete_user(self, user_id: str) -> None:
        """Delete a user for good; its assignments and group memberships go with it."""
        with self.lock:
            user = self._user(user_id)
            del self._upn_index[str(user.props["userPrincipalName"]).lower()]
            self._delete_object(user)
            del self.users[user.id]
            self.changelog.removed(user.id, user.seq, "user", "deleted")

    def soft_delete_user(self, user_id: str) -> None:
        """Move a user to the deleted items, as Entra's delete does: it can be restored for 30 days.

        Until then it is found nowhere (a 404 by id, absent from every list), but keeps its group
        memberships and app role assignments, which come back with it; delta rounds show it
        ``@removed`` with the reason ``changed`` and do not show its memberships leaving.
        """
        with self.lock:
            user = self._user(user_id)
            groups = list(self._member_of.get(user.id, ()))
            held = self.assignments_of(user.id)
            for group_id in groups:
                self._unlink(self._group(group_id), user.id)
            for item in held:
                self._unlink_assignment(item)
            del self._upn_index[str(user.props["userPrincipalName"]).lower()]
            del self.users[user.id]
            del self.objects[user.id]
            self.deleted_items[user.id] = (user, groups, held)
            self.changelog.removed(user.id, user.seq, "user", "changed")

    def restore_user(self, user_id: str) -> None:
        """Bring a user back from the deleted items with its memberships and assignments; delta
        rounds show it, and them, as newly created."""
        with self.lock:
            user, groups, held = self.deleted_items.pop(canonical_guid(user_id))
            upn = str(user.props["userPrincipalName"]).lower()
            if upn in self._upn_index:
                self.deleted_items[user.id] = (user, groups, held)
                raise ValueError("Another object with the same value for property userPrincipalName already exists.")
            self.objects[user.id] = user
            self.users[user.id] = user
            self._upn_index[upn] = user.id
            self.changelog.created(user.id)
            for group_id in groups:
                if group_id in self.groups:
                    self.add_member(group_id, user.id)
            for item in held:
                if item.resource_id in self.objects:
                    self.assignments[item.id] = item
                    self._assignments_of.setdefault(item.principal_id, {})[item.id] = None
                    self.changelog.assigned(item.id)

    def purge_user(self, user_id: str) -> None:
        """Delete a user in the deleted items for good."""
        with self.lock:
            user, groups, held = self.deleted_items.pop(canonical_guid(user_id))
            for group_id in groups:
                if group_id in self.groups:
                    self.changelog.membership(group_id, user.id, USER.odata_type)
            for item in held:
                self.changelog.unassigned(item.id, item.seq)
            self.changelog.removed(user.id, user.seq, "user", "deleted")

    def add_group(
        self,
        display_name: str,
        members: Iterable[str] = (),
        id: str | None = None,
        **graph_fields: Any,
    ) -> str:
        """Create a security group with the given members (ids of any directory objects)."""
        with self.lock:
            object_id = self._fresh_id(id)
            seq = self._next_seq()
            props = new_group(object_id, display_name, timestamp(seq))
            props.update(self._properties(GROUP, graph_fields))
            self.groups[object_id] = self._new_object(GROUP, seq, props, members={})
            self.changelog.created(object_id)
            for member_id in members:
                self.add_member(object_id, member_id)
            return object_id

    def rename_group(self, group_id: str, display_name: str) -> None:
        self.update_group(group_id, displayName=display_name)

    def update_group(self, group_id: str, **graph_fields: Any) -> None:
        """Change group properties, named as in Graph or in snake case."""
        with self.lock:
            group = self._group(group_id)
            changes = self._properties(GROUP, graph_fields)
            group.props = {**group.props, **changes}
            self.changelog.changed(group.id, list(changes))

    def add_member(self, group_id: str, member_id: str) -> None:
        """Add any directory object to a group (adding an existing member is a no-op)."""
        with self.lock:
            group = self._group(group_id)
            member = self.get(member_id)
            if member is group:
                raise ValueError("A group cannot be a member of itself.")
            assert group.members is not None
            if member.id not in group.members:
                self.changelog.membership(group.id, member.id, member.resource.odata_type)
            group.members[member.id] = None
            self._member_of.setdefault(member.id, {})[group.id] = None

    def remove_member(self, group_id: str, member_id: str) -> None:
        """Remove a direct member from a group."""
        with self.lock:
            group = self._group(group_id)
            assert group.members is not None
            if member_id.lower() not in group.members:
                raise NotFoundError(member_id)
            self._unlink(group, member_id.lower())
            self.changelog.membership(group.id, member_id.lower(), self.get(member_id).resource.odata_type)

    def _unlink(self, group: DirectoryObject, member_id: str) -> None:
        assert group.members is not None
        del group.members[member_id]
        groups = self._member_of[member_id]
        del groups[group.id]
        if not groups:
            del self._member_of[member_id]

    def delete_group(self, group_id: str) -> None:
        """Delete a group; its assignments and memberships (both ways) go with it."""
        with self.lock:
            group = self._group(group_id)
            for member_id in list(group.members or ()):
                self.remove_member(group.id, member_id)
            self._delete_object(group)
            del self.groups[group.id]
            self.changelog.removed(group.id, group.seq, "group", "deleted")

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
        holds returns the existing assignment, where Graph would answer 400.  Devices and
        organizational contacts cannot hold app roles (ValueError).
        """
        with self.lock:
            principal = self.get(principal_id)
            kinds = {USER.name: "User", GROUP.name: "Group", SERVICE_PRINCIPAL.name: "ServicePrincipal"}
            if principal.kind not in kinds:
                raise ValueError(
                    f"A {principal.kind} cannot be assigned an app role; only users, groups and service principals can."
                )
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
            self.changelog.assigned(new_id)
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
        self._unlink_assignment(item)
        self.changelog.unassigned(item.id, item.seq)

    def _unlink_assignment(self, item: Assignment) -> None:
        del self.assignments[item.id]
        held = self._assignments_of.get(item.principal_id, {})
        held.pop(item.id, None)
        if not held:
            self._assignments_of.pop(item.principal_id, None)
