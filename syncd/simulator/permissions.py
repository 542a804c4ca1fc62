"""Which application permissions each endpoint needs: the one table, with the page that says so.

Every row is copied from the "Application" line of the permissions table on the Graph v1.0
documentation page named beside it (``api-reference/v1.0/api/<page>.md``).  A request the granted
permissions do not satisfy is answered 403 ``Authorization_RequestDenied``, "Insufficient
privileges to complete the operation."

Lists of directory objects (``members``, ``transitiveMembers``, ``memberOf``,
``transitiveMemberOf``) are read with the navigation's permission alone.  An object in them whose
type the application may not read (:data:`READ_TYPE`) is still listed, with *limited information*:
"When an application queries a relationship that returns a directoryObject type collection, if it
doesn't have permission to read a certain resource type, members of that type are returned but
with limited information. For example, only the @odata.type property for the object type and the
id is returned, while other properties are indicated as null."
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from syncd.simulator.responses import GraphError
from syncd.simulator.schema import DEVICE, GROUP, ORG_CONTACT, SERVICE_PRINCIPAL, USER, ResourceType


@dataclass(frozen=True, slots=True)
class Permission:
    """What an endpoint needs: any one of ``alternatives``, each a set of permissions all required."""

    page: str
    """The documentation page the row comes from."""
    alternatives: tuple[frozenset[str], ...]

    def granted(self, permissions: frozenset[str]) -> bool:
        return any(needed <= permissions for needed in self.alternatives)


def any_of(page: str, *names: str) -> Permission:
    """An endpoint that any one of ``names`` opens."""
    return Permission(page, tuple(frozenset({name}) for name in names))


def _each_with(firsts: Iterable[str], seconds: Iterable[str]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset({first, second}) for first in firsts for second in seconds)


DIRECTORY = ("Directory.Read.All", "Directory.ReadWrite.All")
_USER_READ = ("User.Read.All", "User.ReadWrite.All")
_GROUP_READ = ("GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All")
_APPLICATION_READ = ("Application.Read.All", "Application.ReadWrite.All")

SERVICE_PRINCIPALS = any_of("serviceprincipal-get", *_APPLICATION_READ, *DIRECTORY)
"""``/servicePrincipals``, ``/servicePrincipals/{id}``, ``/servicePrincipals(appId='...')``."""
APP_ROLE_ASSIGNED_TO = any_of("serviceprincipal-list-approleassignedto", *_APPLICATION_READ, *DIRECTORY)
SERVICE_PRINCIPAL_ASSIGNMENTS = any_of(
    "serviceprincipal-list-approleassignments", *_APPLICATION_READ, "Application.ReadWrite.OwnedBy", *DIRECTORY
)
SERVICE_PRINCIPAL_MEMBERSHIPS = any_of("serviceprincipal-list-memberof", *_APPLICATION_READ, *DIRECTORY)
USERS = any_of("user-get", *_USER_READ, *DIRECTORY)
"""``/users`` and ``/users/{id | userPrincipalName}`` (user-list names the same)."""
USER_MEMBERSHIPS = any_of("user-list-memberof", *DIRECTORY)
"""``memberOf`` and ``transitiveMemberOf`` of a user: Directory.Read.All is the least privileged.

The transitiveMemberOf page has also been published naming User.Read.All (and GroupMember.Read.All,
Group.Read.All) for applications; the simulator holds both navigations to the stricter memberOf
row, so a client that works here works against either version of the page."""
USER_ASSIGNMENTS = any_of("user-list-approleassignments", "AppRoleAssignment.ReadWrite.All", *DIRECTORY)
GROUPS = any_of("group-get", *_GROUP_READ, *DIRECTORY)
"""``/groups``, ``/groups/{id}``; group-list-members and group-list-transitivemembers name the same."""
GROUP_MEMBERSHIPS = any_of("group-list-memberof", *_GROUP_READ, *DIRECTORY)
GROUP_ASSIGNMENTS = any_of("group-list-approleassignments", "AppRoleAssignment.ReadWrite.All", *DIRECTORY)
DELTA_USERS = any_of("user-delta", *_USER_READ, *DIRECTORY)
DELTA_GROUPS = any_of("group-delta", *_GROUP_READ, *DIRECTORY)
DELTA_ASSIGNMENTS = any_of("directoryobject-delta (appRoleAssignment)", *_USER_READ, *DIRECTORY)
"""``/directoryObjects/delta`` asks, per type filtered for, the permission of that type's row:
appRoleAssignment and user need User.Read.All, group Group.Read.All."""
CHECK_USER_GROUPS = Permission(
    "directoryobject-checkmembergroups (Group memberships for a user)",
    (*_each_with(_USER_READ, _GROUP_READ), *(frozenset({name}) for name in DIRECTORY)),
)
"""A user's checkMemberGroups: User.Read.All and GroupMember.Read.All (or Group.Read.All), or
Directory.Read.All."""
CHECK_GROUP_GROUPS = any_of(
    "directoryobject-checkmembergroups (Group memberships for a group)", *_GROUP_READ, *DIRECTORY
)
CHECK_SERVICE_PRINCIPAL_GROUPS = any_of(
    "directoryobject-checkmembergroups (Group memberships for a service principal)", *_APPLICATION_READ, *DIRECTORY
)

ENTITY: dict[str, Permission] = {
    USER.name: USERS,
    GROUP.name: GROUPS,
    SERVICE_PRINCIPAL.name: SERVICE_PRINCIPALS,
}
"""Reading an entity set, or one of its objects, by the type it holds."""

NAVIGATION: dict[tuple[str, str], Permission] = {
    (USER.name, "memberof"): USER_MEMBERSHIPS,
    (USER.name, "transitivememberof"): USER_MEMBERSHIPS,
    (USER.name, "approleassignments"): USER_ASSIGNMENTS,
    (USER.name, "checkmembergroups"): CHECK_USER_GROUPS,
    (GROUP.name, "members"): GROUPS,
    (GROUP.name, "transitivemembers"): GROUPS,
    (GROUP.name, "memberof"): GROUP_MEMBERSHIPS,
    (GROUP.name, "transitivememberof"): GROUP_MEMBERSHIPS,
    (GROUP.name, "approleassignments"): GROUP_ASSIGNMENTS,
    (GROUP.name, "checkmembergroups"): CHECK_GROUP_GROUPS,
    (SERVICE_PRINCIPAL.name, "approleassignedto"): APP_ROLE_ASSIGNED_TO,
    (SERVICE_PRINCIPAL.name, "approleassignments"): SERVICE_PRINCIPAL_ASSIGNMENTS,
    (SERVICE_PRINCIPAL.name, "memberof"): SERVICE_PRINCIPAL_MEMBERSHIPS,
    (SERVICE_PRINCIPAL.name, "transitivememberof"): SERVICE_PRINCIPAL_MEMBERSHIPS,
    (SERVICE_PRINCIPAL.name, "checkmembergroups"): CHECK_SERVICE_PRINCIPAL_GROUPS,
}
"""Navigations and actions by (type of the addressed object, lower-cased segment)."""

READ_TYPE: dict[str, Permission] = {
    USER.name: USERS,
    GROUP.name: GROUPS,
    SERVICE_PRINCIPAL.name: SERVICE_PRINCIPALS,
    DEVICE.name: any_of("device-get", "Device.Read.All", "Device.ReadWrite.All", *DIRECTORY),
    ORG_CONTACT.name: any_of("orgcontact-get", "OrgContact.Read.All", *DIRECTORY),
}
"""What lets the application read an object of each type in full inside a directory-object list."""


def require(permission: Permission, permissions: frozenset[str]) -> None:
    """Graph's 403 when the granted permissions do not open the endpoint."""
    if not permission.granted(permissions):
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def readable(resource: ResourceType, permissions: frozenset[str]) -> bool:
    """Whether an object of this type is listed in full (else with limited information)."""
    return READ_TYPE[resource.name].granted(permissions)
