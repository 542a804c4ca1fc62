"""The records a :class:`~syncd.simulator.tenant.Tenant` holds, and how new objects look in Graph.

A user, group, service principal, device or organizational contact is a :class:`DirectoryObject`:
its Graph properties by their Graph names, when it was created and the replication lag then in
force, plus, for a group, its member ids.  An :class:`Assignment` is one appRoleAssignment.
The ``new_*`` functions give the properties Entra fills in when an object is created; Graph
returns ``null`` (or ``[]``) for every property an object does not hold.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.simulator.schema import ResourceType

DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_PERMISSIONS = frozenset({"Application.Read.All", "User.Read.All", "GroupMember.Read.All"})

_EPOCH = datetime(2021, 2, 2, 4, 22, 45, tzinfo=UTC)


class NotFoundError(KeyError):
    """No object with this id (Graph answers 404 Request_ResourceNotFound)."""

    def __init__(self, object_id: str) -> None:
        super().__init__(object_id)
        self.object_id = object_id

    def __str__(self) -> str:
        return (
            f"Resource '{self.object_id}' does not exist or one of its queried "
            "reference-property objects are not present."
        )


@dataclass(slots=True, eq=False)
class DirectoryObject:
    """A directory object: its Graph properties and, for groups, its members."""

    resource: ResourceType
    seq: int
    props: dict[str, Any]
    members: dict[str, None] | None = None
    """Direct member ids of a group, in the order they were added."""
    created_at: float = 0.0
    """When it was created, on the tenant's monotonic clock."""
    replication_lag: float = 0.0
    """The tenant's replication lag when it was created: how long a read by id misses it."""

    @property
    def id(self) -> str:
        return str(self.props["id"])

    @property
    def kind(self) -> str:
        return self.resource.name

    @property
    def display_name(self) -> str | None:
        return self.props.get("displayName")


@dataclass(slots=True, eq=False)
class Assignment:
    """One appRoleAssignment; the display names are read from the objects when it is served."""

    seq: int
    id: str
    principal_id: str
    principal_type: str
    resource_id: str
    app_role_id: str
    created: str


def camel_case(name: str) -> str:
    """``job_title`` -> ``jobTitle``; Graph names pass through unchanged."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def is_guid(value: object) -> bool:
    """Whether ``value`` is a GUID written as Graph writes them (``8-4-4-4-12`` hex digits)."""
    return isinstance(value, str) and _GUID.match(value) is not None


def canonical_guid(value: str) -> str:
    """The lower-case form of a GUID; ValueError if it is not one."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"'{value}' is not a valid GUID") from None


def timestamp(seq: int, fraction: bool = False) -> str:
    """A creation time derived from the sequence number, so seeded tenants are reproducible."""
    moment = _EPOCH + timedelta(minutes=seq)
    if fraction:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{seq % 10_000_000:07d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def assignment_id(principal_id: str, random_bits: int) -> str:
    """Graph's appRoleAssignment ids: base64url of the principal's GUID bytes and 16 more bytes."""
    raw = uuid.UUID(principal_id).bytes_le + random_bits.to_bytes(16, "little")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_service_principal(
    object_id: str, app_id: str, display_name: str, tenant_id: str, assignment_required: bool
) -> dict[str, Any]:
    return {
        "accountEnabled": True,
        "appDisplayName": display_name,
        "appId": app_id,
        "appOwnerOrganizationId": tenant_id,
        "appRoleAssignmentRequired": assignment_required,
        "appRoles": [],
        "displayName": display_name,
        "id": object_id,
        "info": {
            "termsOfServiceUrl": None,
            "supportUrl": None,
            "privacyStatementUrl": None,
            "marketingUrl": None,
            "logoUrl": None,
        },
        "servicePrincipalNames": [app_id],
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMyOrg",
        "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
    }


def new_user(
    object_id: str,
    upn: str,
    display_name: str | None,
    mail: str | None,
    job_title: str | None,
    account_enabled: bool,
    created: str,
) -> dict[str, Any]:
    """A member user, or a guest when the UPN has ``#EXT#`` (as invited B2B users do)."""
    return {
        "id": object_id,
        "userPrincipalName": upn,
        "displayName": display_name if display_name is not None else upn.split("@")[0],
        "mail": mail,
        "jobTitle": job_title,
        "accountEnabled": account_enabled,
        "userType": "Guest" if "#EXT#" in upn.upper() else "Member",
        "createdDateTime": created,
    }


def new_group(object_id: str, display_name: str, created: str) -> dict[str, Any]:
    """A security group, as created in the Entra admin center."""
    nickname = "".join(char for char in display_name if char.isascii() and char.isalnum())
    return {
        "id": object_id,
        "createdDateTime": created,
        "description": None,
        "displayName": display_name,
        "groupTypes": [],
        "mailEnabled": False,
        "mailNickname": nickname or object_id[:8],
        "securityEnabled": True,
        "securityIdentifier": f"S-1-12-1-{uuid.UUID(object_id).int % 4294967296}",
    }


def new_device(
    object_id: str, device_id: str, display_name: str, operating_system: str | None, created: str
) -> dict[str, Any]:
    """A device registered in Entra (joined, as a company laptop is)."""
    return {
        "id": object_id,
        "accountEnabled": True,
        "deviceId": device_id,
        "displayName": display_name,
        "operatingSystem": operating_system,
        "registrationDateTime": created,
        "trustType": "AzureAd",
    }


def new_contact(object_id: str, display_name: str, mail: str | None) -> dict[str, Any]:
    """An organizational contact: someone outside the tenant listed in its address book."""
    nickname = "".join(char for char in display_name if char.isascii() and char.isalnum())
    return {
        "id": object_id,
        "displayName": display_name,
        "mail": mail,
        "mailNickname": nickname or object_id[:8],
        "proxyAddresses": [f"SMTP:{mail}"] if mail else [],
    }


def new_app_role(
    role_id: str, display_name: str, value: str | None, description: str | None, enabled: bool
) -> dict[str, Any]:
    """An app role users and groups can be assigned to (allowedMemberTypes ``User``)."""
    return {
        "allowedMemberTypes": ["User"],
        "description": description if description is not None else f"{display_name} access",
        "displayName": display_name,
        "id": role_id,
        "isEnabled": enabled,
        "origin": "Application",
        "value": value,
    }
