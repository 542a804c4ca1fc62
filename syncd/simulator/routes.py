"""Graph v1.0 read endpoints over a :class:`Tenant`.

Served (paths matched case-insensitively, as Graph does; ``{id}`` may also be written ``('{id}')``):

* ``/servicePrincipals``, ``/servicePrincipals/{id}``, ``/servicePrincipals(appId='{appId}')``,
  ``.../appRoleAssignedTo`` (the assignments *to* the application), ``.../appRoleAssignments``;
* ``/users``, ``/users/{id | userPrincipalName}``, ``.../appRoleAssignments``, ``.../memberOf``,
  ``.../transitiveMemberOf``;
* ``/groups``, ``/groups/{id}``, ``.../members``, ``.../transitiveMembers``, ``.../memberOf``,
  ``.../transitiveMemberOf``, ``.../appRoleAssignments``;
* every membership collection also with a type cast: ``.../members/microsoft.graph.user`` (or
  ``.../members/graph.user``, the short form the msgraph-sdk sends).

Reads need application permissions: service principals Application.Read.All, users
User.Read.All, groups GroupMember.Read.All (Group.Read.All and Directory.Read.All grant the same).
As in Graph, a membership list the app may read but whose members it may not read still lists
them, with only ``@odata.type`` and ``id``.  ``transitiveMembers`` lists nested groups as well as
their members, each object once.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from syncd.simulator.odata import (
    decode_skiptoken,
    encode_skiptoken,
    page_size,
    parse_filter,
    parse_select,
    require_advanced_query,
)
from syncd.simulator.responses import GraphError, Response, bad_request, not_found, unsupported_query
from syncd.simulator.schema import APP_ROLE_ASSIGNMENT, GROUP, SERVICE_PRINCIPAL, USER, ResourceType
from syncd.simulator.tenant import Assignment, DirectoryObject, NotFoundError, Tenant

READ_APPLICATIONS = frozenset(
    {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
READ_USERS = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
READ_GROUPS = frozenset(
    {
        "GroupMember.Read.All",
        "GroupMember.ReadWrite.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
_READ = {USER.name: READ_USERS, GROUP.name: READ_GROUPS, SERVICE_PRINCIPAL.name: READ_APPLICATIONS}
_SETS = {USER.entity_set.lower(): USER, GROUP.entity_set.lower(): GROUP, "serviceprincipals": SERVICE_PRINCIPAL}
_CASTS = {
    f"{namespace}.{kind.name.lower()}": kind
    for kind in (USER, GROUP, SERVICE_PRINCIPAL)
    for namespace in ("microsoft.graph", "graph")
}
_DIRECTORY_TYPES = (USER, GROUP, SERVICE_PRINCIPAL)
_UNSUPPORTED_OPTIONS = ("$orderby", "$expand", "$search", "$skip", "$levels", "$format")
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
    'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
}

_COLLECTION = re.compile(r"^/(?P<set>users|groups|servicePrincipals)/?$", re.IGNORECASE)
_BY_APP_ID = re.compile(r"^/servicePrincipals\(appId='(?P<app_id>[^']*)'\)(?P<rest>/.*)?$", re.IGNORECASE)
_ENTITY = re.compile(
    r"^/(?P<set>users|groups|servicePrincipals)(?:/(?P<key>[^/()]+)|\('(?P<quoted>[^']*)'\))(?P<rest>/.*)?$",
    re.IGNORECASE,
)
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_URL_SAFE = "/()'=@:$,"


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """One Graph call: the decoded path below ``/v1.0``, its query options and lower-cased headers."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    base_url: str


def handle(tenant: Tenant, token: str, request: GraphRequest) -> Response:
    """Answer one Graph request; failures are raised as :class:`GraphError`."""
    authenticate(request, token)
    for option in _UNSUPPORTED_OPTIONS:
        if option in request.query:
            raise unsupported_query(f"The query option '{option}' is not supported by this Graph simulator.")
    with tenant.lock:
        match = _COLLECTION.match(request.path)
        if match:
            if request.method != "GET":
                raise GraphError(405)
            return _list_entity_set(tenant, request, _SETS[match["set"].lower()])
        match = _BY_APP_ID.match(request.path)
        if match:
            _require(tenant, SERVICE_PRINCIPAL)
            app_id = match["app_id"]
            principal = _lookup(lambda: tenant.find_service_principal(app_id=app_id))
            return _entity_route(tenant, request, principal, match["rest"] or "")
        match = _ENTITY.match(request.path)
        if match:
            resource = _SETS[match["set"].lower()]
            key = match["key"] if match["key"] is not None else match["quoted"]
            _require(tenant, resource)
            obj = _find(tenant, resource, key)
            return _entity_route(tenant, request, obj, match["rest"] or "")
    segment = request.path.strip("/").split("/")[0] or request.path
    raise bad_request(f"Resource not found for the segment '{segment}'.", code="BadRequest")


# ---------------------------------------------------------------------- auth and permissions


def authenticate(request: GraphRequest, token: str) -> None:
    """Graph's bearer-token check: 401 when the token is missing or not the accepted one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", headers=_WWW_AUTHENTICATE)
    if value.strip() != token:
        raise GraphError(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
            headers=_WWW_AUTHENTICATE,
        )


def _require(tenant: Tenant, resource: ResourceType) -> None:
    if tenant.permissions.isdisjoint(_READ[resource.name]):
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


# ---------------------------------------------------------------------- lookups


def _lookup(find: Callable[[], DirectoryObject]) -> DirectoryObject:
    try:
        return find()
    except NotFoundError as error:
        raise not_found(error.object_id) from None


def _find(tenant: Tenant, resource: ResourceType, key: str) -> DirectoryObject:
    if resource is USER:
        if key.lower() == "delta":
            raise unsupported_query("Delta queries are not served by this Graph simulator.")
        return _lookup(lambda: tenant.find_user(key))
    if not _GUID.match(key):
        raise bad_request(f"Invalid object identifier '{key}'.")
    if resource is SERVICE_PRINCIPAL:
        return _lookup(lambda: tenant.find_service_principal(object_id=key))
    found = tenant.groups.get(key.lower())
    if found is None:
        raise not_found(key)
    return found


# ---------------------------------------------------------------------- routes


def _entity_route(tenant: Tenant, request: GraphRequest, obj: DirectoryObject, rest: str) -> Response:
    if request.method != "GET":
        raise GraphError(405)
    segments = [segment for segment in rest.split("/") if segment]
    if not segments:
        return _entity(tenant, request, obj)
    relation = segments[0].lower()
    cast = None
    if len(segments) == 2 and segments[1].lower() in _CASTS:
        cast = _CASTS[segments[1].lower()]
    elif len(segments) > 1:
        raise bad_request(f"Resource not found for the segment '{segments[1]}'.", code="BadRequest")
    if relation == "approleassignedto" and obj.resource is SERVICE_PRINCIPAL and cast is None:
        return _assignments(
            tenant,
            request,
            tenant.assignments_to(obj.id),
            f"servicePrincipals('{obj.id}')/appRoleAssignedTo",
        )
    if relation == "approleassignments" and cast is None:
        set_name = obj.resource.entity_set
        return _assignments(
            tenant, request, tenant.assignments_of(obj.id), f"{set_name}('{obj.id}')/appRoleAssignments"
        )
    if relation in ("members", "transitivemembers") and obj.resource is GROUP:
        if relation == "members":
            items = tenant.member_objects(obj.id)
        else:
            items = tenant.transitive_member_objects(obj.id)
        return _directory_objects(tenant, request, items, cast)
    if relation in ("memberof", "transitivememberof"):
        groups = tenant.member_of_objects(obj.id, transitive=relation == "transitivememberof")
        return _directory_objects(tenant, request, groups, cast)
    raise bad_request(f"Resource not found for the segment '{segments[0]}'.", code="BadRequest")


def _entity(tenant: Tenant, request: GraphRequest, obj: DirectoryObject) -> Response:
    select = parse_select(request.query, [obj.resource])
    context = f"{request.base_url}/$metadata#{obj.resource.entity_set}{_selection(select)}/$entity"
    body = {"@odata.context": context, **render_object(obj, select, tenant.permissions, typed=False)}
    return Response(200, body)


def _list_entity_set(tenant: Tenant, request: GraphRequest, resource: ResourceType) -> Response:
    _require(tenant, resource)
    if resource is USER:
        items = list(tenant.users.values())
    elif resource is GROUP:
        items = list(tenant.groups.values())
    else:
        items = list(tenant.service_principals.values())
    return _page(
        request,
        items,
        context=resource.entity_set,
        types=[resource],
        props_of=lambda obj: obj.props,
        render=lambda obj, select: render_object(obj, select, tenant.permissions, typed=False),
    )


def _directory_objects(
    tenant: Tenant, request: GraphRequest, items: list[DirectoryObject], cast: ResourceType | None
) -> Response:
    if cast is not None:
        items = [item for item in items if item.resource is cast]
    return _page(
        request,
        items,
        context=cast.entity_set if cast else "directoryObjects",
        types=[cast] if cast else _DIRECTORY_TYPES,
        props_of=lambda obj: obj.props,
        render=lambda obj, select: render_object(obj, select, tenant.permissions, typed=True),
    )


def _assignments(tenant: Tenant, request: GraphRequest, items: list[Assignment], context: str) -> Response:
    def render(item: Assignment, select: list[str] | None) -> dict[str, Any]:
        full = tenant.render_assignment(item)
        return full if select is None else {name: full[name] for name in select}

    return _page(
        request,
        items,
        context=context,
        types=[APP_ROLE_ASSIGNMENT],
        props_of=tenant.render_assignment,
        render=render,
    )


# ---------------------------------------------------------------------- rendering and paging


def render_object(
    obj: DirectoryObject, select: list[str] | None, permissions: frozenset[str], *, typed: bool
) -> dict[str, Any]:
    """An object's Graph JSON: its default property set, or the selected properties it has."""
    resource = obj.resource
    out: dict[str, Any] = {"@odata.type": resource.odata_type} if typed else {}
    if permissions.isdisjoint(_READ[resource.name]):
        out["id"] = obj.id
        return out
    props = obj.props
    if select is None:
        for name, unset in resource.defaults.items():
            out[name] = props.get(name, unset)
    else:
        known = resource.properties
        for name in select:
            if name in known:
                out[name] = props.get(name, known[name])
    return out


def _selection(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""


def _page(
    request: GraphRequest,
    items: Sequence[Any],
    *,
    context: str,
    types: Sequence[ResourceType],
    props_of: Callable[[Any], dict[str, Any]],
    render: Callable[[Any, list[str] | None], dict[str, Any]],
) -> Response:
    """One page of a collection, in creation order, with an ``@odata.nextLink`` when more remain."""
    select = parse_select(request.query, types)
    if "$filter" in request.query:
        compiled = parse_filter(request.query["$filter"], types)
        require_advanced_query(compiled, request.query, request.headers)
        items = [item for item in items if compiled.predicate(props_of(item))]
    size = page_size(request.query)
    after = decode_skiptoken(request.query.get("$skiptoken"))
    start = 0 if after is None else bisect_right(items, after, key=lambda item: item.seq)
    chunk = items[start : start + size]
    body: dict[str, Any] = {"@odata.context": f"{request.base_url}/$metadata#{context}{_selection(select)}"}
    if request.query.get("$count", "").lower() == "true":
        body["@odata.count"] = len(items)
    if start + size < len(items):
        body["@odata.nextLink"] = _next_link(request, encode_skiptoken(chunk[-1].seq))
    body["value"] = [render(item, select) for item in chunk]
    return Response(200, body)


def _next_link(request: GraphRequest, token: str) -> str:
    options = [(name, value) for name, value in request.query.items() if name != "$skiptoken"]
    options.append(("$skiptoken", token))
    query = "&".join(f"{quote(name, safe='$')}={quote(value, safe=_URL_SAFE)}" for name, value in options)
    return f"{request.base_url}{quote(request.path, safe=_URL_SAFE)}?{query}"
