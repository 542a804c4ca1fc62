"""Turn Microsoft Graph's raw JSON into syncd's model values.

Bulk collections (assignment pages, group members, user listings, ``$batch`` answers) are read as
bytes and decoded here with ``json.loads``: msgraph-sdk's typed models cost about 5 ms per object
to deserialize, a whole second for one 999-user page, while these decoders take microseconds and
read exactly the fields syncd selects.  Every decoder checks the types it relies on and raises
:class:`BadResponse` (reported as ``GRAPH_BAD_RESPONSE``) naming the field, instead of letting a
surprise in the payload become a wrong snapshot.

Graph spells the fields in camelCase; the names below match the ``$select`` lists in
:mod:`syncd.graph.fetch`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..model import DEFAULT_ACCESS_ROLE_ID, USER_ATTRIBUTES, AppRole, Assignment, PrincipalType, SourceUser
from ..scope_rules import ATTRIBUTES as SCOPE_ATTRIBUTES
from ..scope_rules import EXTENSION_ATTRIBUTES


class BadResponse(ValueError):
    """Graph answered something that is not what the API documents."""


@dataclass(frozen=True, slots=True)
class ServicePrincipalInfo:
    """The enterprise application: its object id, appId, name and app roles."""

    id: str
    app_id: str
    display_name: str
    app_roles: tuple[AppRole, ...]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a Graph collection: its items and the link to the next page, if any."""

    items: list[dict[str, Any]]
    next_link: str | None


@dataclass(frozen=True, slots=True)
class BatchItemResponse:
    """One answer inside a ``$batch`` response (Graph may return them in any order)."""

    id: str
    status: int
    headers: Mapping[str, str]
    body: Any


def load_json(data: bytes | str, what: str = "response") -> Any:
    """``json.loads`` that reports unreadable JSON as :class:`BadResponse`."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        # RecursionError: nesting deeper than the interpreter can decode is no answer either
        raise BadResponse(f"{what} is not valid JSON: {error.__class__.__name__}: {error}") from None


def load_object(data: bytes | str, what: str = "response") -> dict[str, Any]:
    """A JSON document that must be an object."""
    value = load_json(data, what)
    if not isinstance(value, dict):
        raise BadResponse(f"{what} is not a JSON object")
    return value


def decode_page(body: Mapping[str, Any], what: str = "collection") -> Page:
    """A collection page: ``value`` (a list of objects) and the optional ``@odata.nextLink``."""
    items = body.get("value")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise BadResponse(f"{what}: 'value' is not a list of objects")
    next_link = body.get("@odata.nextLink")
    if next_link is not None and not isinstance(next_link, str):
        raise BadResponse(f"{what}: '@odata.nextLink' is not a string")
    return Page(items, next_link or None)


def _string(item: Mapping[str, Any], key: str, what: str) -> str | None:
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadResponse(f"{what}: '{key}' is not a string")


def _required(item: Mapping[str, Any], key: str, what: str) -> str:
    value = _string(item, key, what)
    if not value:
        raise BadResponse(f"{what}: '{key}' is missing")
    return value


def decode_service_principal(body: Mapping[str, Any]) -> ServicePrincipalInfo:
    """``GET /servicePrincipals/{id}?$select=id,appId,displayName,appRoles``.

    ``appRoles`` lists the roles the application defines (required: it is selected); Graph does
    not list the implicit "Default Access" role (id all zeros) that an assignment without a role
    carries.
    """
    what = "service principal"
    roles_json = body.get("appRoles")
    if not isinstance(roles_json, list):
        # selected, so always there ([] when the application defines none): without it every
        # user's type would be read from no roles at all
        raise BadResponse(f"{what}: 'appRoles' is missing or not a list")
    roles = []
    for index, role in enumerate(roles_json):
        where = f"{what}: appRoles[{index}]"
        if not isinstance(role, dict):
            raise BadResponse(f"{where} is not an object")
        roles.append(
            AppRole(
                id=_required(role, "id", where),
                display_name=_string(role, "displayName", where) or "",
                value=_string(role, "value", where),
            )
        )
    return ServicePrincipalInfo(
        id=_required(body, "id", what),
        app_id=_string(body, "appId", what) or "",
        display_name=_string(body, "displayName", what) or "",
        app_roles=tuple(roles),
    )


def decode_assignment(item: Mapping[str, Any]) -> Assignment | None:
    """One ``appRoleAssignment`` from ``/servicePrincipals/{id}/appRoleAssignedTo``.

    Returns None for a service principal holding an app role: syncd provisions people and teams
    only.  A ``principalType`` that is missing or none of User, Group and ServicePrincipal is not
    understood, and raises (the assignment must not silently drop out of scope).  A null
    ``appRoleId`` is the default access role.
    """
    what = "appRoleAssignment"
    principal_type: PrincipalType
    kind = _string(item, "principalType", what)
    match (kind or "").lower():
        case "user":
            principal_type = "User"
        case "group":
            principal_type = "Group"
        case "serviceprincipal":
            return None
        case _:
            principal = item.get("principalId")
            raise BadResponse(f"{what} of principal {principal!r}: 'principalType' is {kind!r}, not User or Group")
    return Assignment(
        principal_id=_required(item, "principalId", what),
        principal_type=principal_type,
        app_role_id=_string(item, "appRoleId", what) or DEFAULT_ACCESS_ROLE_ID,
    )


def decode_user(item: Mapping[str, Any], fallback_id: str | None = None) -> SourceUser:
    """A user with the fields syncd selects.

    ``accountEnabled`` missing (not selected) keeps the model's default of enabled; an explicit
    null stays None ("unknown").  ``fallback_id`` is the id the request asked for, used when a
    ``$select`` left ``id`` out of the answer.
    """
    what = "user"
    user_id = _string(item, "id", what) or fallback_id
    if not user_id:
        raise BadResponse(f"{what}: 'id' is missing")
    enabled: Any = item.get("accountEnabled", True)
    if enabled is not None and not isinstance(enabled, bool):
        raise BadResponse(f"user {user_id}: 'accountEnabled' is not true or false")
    where = f"user {user_id}"
    return SourceUser(
        id=user_id,
        user_principal_name=_string(item, "userPrincipalName", where),
        mail=_string(item, "mail", where),
        display_name=_string(item, "displayName", where),
        account_enabled=enabled,
        attributes=_attributes(item, where),
    )


def _attributes(item: Mapping[str, Any], where: str) -> dict[str, str | None]:
    """The registry's attributes, and those scoping rules test that the answer carries (the extension
    attributes flattened out of ``onPremisesExtensionAttributes``)."""
    attributes = {attribute.graph: _string(item, attribute.graph, where) for attribute in USER_ATTRIBUTES}
    for name in SCOPE_ATTRIBUTES:
        if name in item and name not in attributes:
            attributes[name] = _string(item, name, where)
    extensions = item.get("onPremisesExtensionAttributes")
    if isinstance(extensions, Mapping):
        for name in EXTENSION_ATTRIBUTES:
            attributes[name] = _string(extensions, name, where)
    elif extensions is not None:
        raise BadResponse(f"{where}: 'onPremisesExtensionAttributes' is not an object")
    return attributes


def member_kind(item: Mapping[str, Any]) -> str:
    """The type of an object in a directoryObject collection: ``user``, ``group``, ``device``, ...

    Graph tags every object of such a collection (``members``, ``transitiveMembers``) with its
    ``@odata.type``, ``#microsoft.graph.user``; type names are compared without regard to case
    or to the namespace alias (``#graph.user``).  An object without the tag cannot be told from a
    device or a contact, so the read fails rather than guess.
    """
    odata_type = item.get("@odata.type")
    if not isinstance(odata_type, str) or not odata_type.strip("# "):
        raise BadResponse(f"member {item.get('id')!r}: '@odata.type' is missing")
    name = odata_type.strip().lstrip("#").lower()
    for namespace in ("microsoft.graph.", "graph."):
        if name.startswith(namespace):
            return name[len(namespace) :]
    return name


def decode_member(item: Mapping[str, Any]) -> SourceUser | None:
    """A member from ``/groups/{id}/members`` or ``/transitiveMembers``; None unless it is a user.

    A group's members can be users, groups, devices, organizational contacts and service
    principals (group-list-members); everything but a user is skipped here, since syncd
    provisions people.
    """
    if member_kind(item) != "user":
        return None
    return decode_user(item)


def has_user_fields(item: Mapping[str, Any]) -> bool:
    """Whether a member object carries user attributes rather than Graph's "limited information".

    An app that may read memberships (GroupMember.Read.All) but not users (User.Read.All) still
    gets a group's members listed, with ``@odata.type`` and ``id`` only and every other property
    absent or null.  Every real user has a userPrincipalName, a displayName and accountEnabled,
    so an item with none of them is such a stub.
    """
    return any(item.get(key) is not None for key in ("userPrincipalName", "displayName", "accountEnabled"))


def decode_group(item: Mapping[str, Any]) -> tuple[str, str]:
    """``(id, displayName)`` of a group.

    Entra requires a group's displayName, so a group without one is not an answer to trust (it
    would become a team named ""): the read fails.
    """
    what = "group"
    group_id = _required(item, "id", what)
    return group_id, _required(item, "displayName", f"group {group_id}")


def decode_id_list(body: Mapping[str, Any], what: str) -> list[str]:
    """The ``value`` of a ``Collection(Edm.String)`` answer (``checkMemberGroups``): object ids."""
    values = body.get("value")
    if not isinstance(values, list) or not all(isinstance(value, str) and value for value in values):
        raise BadResponse(f"{what}: 'value' is not a list of ids")
    return list(values)


def check_identity(body: Mapping[str, Any], key: str, what: str, *, key_property: str = "userPrincipalName") -> None:
    """An object read by ``key`` (its id, or ``key_property`` such as a UPN) must be that object.

    A ``$batch`` answer or a GET whose body names another object is not an answer to the
    question asked, and must not stand in for it.
    """
    body_id = body.get("id")
    if isinstance(body_id, str) and body_id.lower() == key.lower():
        return
    other = body.get(key_property)
    if isinstance(other, str) and other.lower() == key.lower():
        return
    raise BadResponse(f"{what}: asked for {key!r}, the answer is object {body_id!r}")


def decode_batch_response(body: Mapping[str, Any]) -> dict[str, BatchItemResponse]:
    """The answers of a JSON ``$batch`` response, by request id.

    Each answer has its own ``status``, ``headers`` (``Retry-After`` on a throttled item) and
    ``body``; a JSON body is inline, other content types arrive base64-encoded as a string.
    """
    responses = body.get("responses")
    if not isinstance(responses, list):
        raise BadResponse("$batch response: 'responses' is not a list")
    answers: dict[str, BatchItemResponse] = {}
    for index, answer in enumerate(responses):
        where = f"$batch response: responses[{index}]"
        if not isinstance(answer, dict):
            raise BadResponse(f"{where} is not an object")
        item_id = answer.get("id")
        status = answer.get("status")
        if not isinstance(item_id, str) or not item_id:
            raise BadResponse(f"{where}: 'id' is missing")
        if not isinstance(status, int) or isinstance(status, bool):
            raise BadResponse(f"{where}: 'status' is not a number")
        headers = answer.get("headers") or {}
        if not isinstance(headers, dict):
            raise BadResponse(f"{where}: 'headers' is not an object")
        answers[item_id] = BatchItemResponse(
            id=item_id,
            status=status,
            headers={str(key).lower(): str(value) for key, value in headers.items()},
            body=answer.get("body"),
        )
    return answers


def decode_error(body: bytes | Mapping[str, Any] | None) -> tuple[str, str]:
    """``(code, message)`` of a Graph error body ``{"error": {"code", "message"}}``; empty if none."""
    data: Any = body
    if isinstance(body, bytes | bytearray):
        try:
            data = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            return "", ""
    if not isinstance(data, Mapping):
        return "", ""
    error = data.get("error")
    if not isinstance(error, Mapping):
        return "", ""
    code = error.get("code")
    message = error.get("message")
    return (code if isinstance(code, str) else ""), (message if isinstance(message, str) else "")
