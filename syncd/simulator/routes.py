"""Graph v1.0 endpoints over a :class:`Tenant`: which path is which, and who may call it.

Served (paths matched case-insensitively, as Graph does; ``{id}`` may also be written ``('{id}')``):

* ``/servicePrincipals``, ``/servicePrincipals/{id}``, ``/servicePrincipals(appId='{appId}')``,
  ``.../appRoleAssignedTo`` (the assignments *to* the application), ``.../appRoleAssignments``,
  ``.../memberOf``, ``.../transitiveMemberOf``, ``POST .../checkMemberGroups``;
* ``/users``, ``/users/{id | userPrincipalName}``, ``.../appRoleAssignments``, ``.../memberOf``,
  ``.../transitiveMemberOf``, ``POST .../checkMemberGroups``;
* ``/groups``, ``/groups/{id}``, ``.../members``, ``.../transitiveMembers``, ``.../memberOf``,
  ``.../transitiveMemberOf``, ``.../appRoleAssignments``, ``POST .../checkMemberGroups``;
* ``/users/delta``, ``/groups/delta`` and ``/directoryObjects/delta`` (:mod:`syncd.simulator.delta`);
* every membership collection also with a type cast: ``.../members/microsoft.graph.user`` (or
  ``.../members/graph.user``, the short form the msgraph-sdk sends), to any directory type.

Rules, each as Graph's documentation states it:

* Permissions: every endpoint needs the application permissions of its row in
  :mod:`syncd.simulator.permissions`, else 403; membership lists show objects of types the app
  may not read with limited information.
* Advanced queries: a cast or a ``$filter`` on ``members``, ``transitiveMembers``, ``memberOf``
  or ``transitiveMemberOf`` needs ``ConsistencyLevel: eventual`` and ``$count=true``, and
  ``$count=true`` on any directory-object collection needs the header (400
  ``Request_UnsupportedQuery``); see :mod:`syncd.simulator.listing`.
* A userPrincipalName that begins with ``$`` cannot follow ``/users/`` (OData reserves ``$`` for
  system segments): ``/users/$x@contoso.com`` is a 400 and the user is addressed as
  ``/users('$x@contoso.com')`` (user-get); inside the quotes ``''`` stands for one ``'``.
* Replication lag: an object younger than :attr:`Tenant.lag` is a 404 when addressed by id or
  userPrincipalName, while it is already listed in collections.
* ``checkMemberGroups``: see :mod:`syncd.simulator.actions`.
* ``transitiveMembers`` lists nested groups as well as their members, each object once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from syncd.simulator import delta, listing
from syncd.simulator.actions import check_member_groups
from syncd.simulator.objects import is_guid
from syncd.simulator.permissions import ENTITY, NAVIGATION, Permission, require
from syncd.simulator.request import GraphRequest
from syncd.simulator.responses import GraphError, Response, bad_request, not_found, unsupported_query
from syncd.simulator.schema import DIRECTORY_TYPES, GROUP, SERVICE_PRINCIPAL, USER, ResourceType
from syncd.simulator.tenant import DirectoryObject, NotFoundError, Tenant

__all__ = ["GraphRequest", "authenticate", "handle"]

_SETS = {USER.entity_set.lower(): USER, GROUP.entity_set.lower(): GROUP, "serviceprincipals": SERVICE_PRINCIPAL}
_CASTS = {
    f"{namespace}.{kind.name.lower()}": kind for kind in DIRECTORY_TYPES for namespace in ("microsoft.graph", "graph")
}
_MEMBERSHIPS = ("members", "transitivemembers", "memberof", "transitivememberof")
_ACTIONS = ("checkmembergroups",)
_UNSUPPORTED_OPTIONS = ("$orderby", "$expand", "$search", "$skip", "$levels", "$format")
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
    'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
}

_DELTA = re.compile(r"^/(?P<set>users|groups|directoryObjects)/delta(?:\(\))?/?$", re.IGNORECASE)
_DELTA_HANDLERS = {"users": delta.users, "groups": delta.groups, "directoryobjects": delta.directory_objects}
_COLLECTION = re.compile(r"^/(?P<set>users|groups|servicePrincipals)/?$", re.IGNORECASE)
_BY_APP_ID = re.compile(r"^/servicePrincipals\(appId='(?P<app_id>(?:[^']|'')*)'\)(?P<rest>/.*)?$", re.IGNORECASE)
_ENTITY = re.compile(
    r"^/(?P<set>users|groups|servicePrincipals)"
    r"(?:/(?P<key>[^/()]+)|\('(?P<quoted>(?:[^']|'')*)'\))(?P<rest>/.*)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Route:
    """What follows an addressed object: a navigation or action (None: the object itself), a cast."""

    relation: str | None
    cast: ResourceType | None
    cast_name: str | None
    permission: Permission

    @property
    def method(self) -> str:
        return "POST" if self.relation in _ACTIONS else "GET"


def handle(tenant: Tenant, token: str, request: GraphRequest) -> Response:
    """Answer one Graph request; failures are raised as :class:`GraphError`."""
    authenticate(request, token)
    for option in _UNSUPPORTED_OPTIONS:
        if option in request.query:
            raise unsupported_query(f"The query option '{option}' is not supported by this Graph simulator.")
    with tenant.lock:
        match = _DELTA.match(request.path)
        if match:
            _allow(request, "GET")
            return _DELTA_HANDLERS[match["set"].lower()](tenant, request)
        match = _COLLECTION.match(request.path)
        if match:
            resource = _SETS[match["set"].lower()]
            _allow(request, "GET")
            require(ENTITY[resource.name], tenant.permissions)
            return listing.entity_set(tenant, request, resource)
        match = _BY_APP_ID.match(request.path)
        if match:
            route = _route(tenant, SERVICE_PRINCIPAL, match["rest"], request)
            app_id = _unescape(match["app_id"])
            principal = _lookup(tenant, app_id, lambda: tenant.find_service_principal(app_id=app_id))
            return _serve(tenant, request, principal, route)
        match = _ENTITY.match(request.path)
        if match:
            resource = _SETS[match["set"].lower()]
            if match["key"] is not None and match["key"].startswith("$"):
                raise _dollar_key(match["set"], match["key"])
            key = match["key"] if match["key"] is not None else _unescape(match["quoted"])
            route = _route(tenant, resource, match["rest"], request)
            return _serve(tenant, request, _find(tenant, resource, key), route)
    segment = request.path.strip("/").split("/")[0] or request.path
    raise _no_segment(segment)


# ---------------------------------------------------------------------- auth and request checks


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


def _allow(request: GraphRequest, method: str) -> None:
    if request.method != method:
        raise GraphError(405)


def _no_segment(segment: str) -> GraphError:
    return bad_request(f"Resource not found for the segment '{segment}'.", code="BadRequest")


def _dollar_key(set_name: str, key: str) -> GraphError:
    if key.lower() in ("$count", "$ref", "$value"):
        return unsupported_query(f"The '{key}' segment is not served by this Graph simulator.")
    return bad_request(
        f"Invalid request URL: the segment '{key}' after /{set_name} begins with '$', which OData keeps for "
        f"system segments; a userPrincipalName that begins with '$' is addressed as /users('{key}')."
    )


def _unescape(quoted: str) -> str:
    """A key written inside single quotes, where ``''`` stands for one ``'``."""
    return quoted.replace("''", "'")


def _route(tenant: Tenant, resource: ResourceType, rest: str | None, request: GraphRequest) -> _Route:
    """Parse what follows the addressed object, and check the method and the permission for it."""
    segments = [segment for segment in (rest or "").split("/") if segment]
    if not segments:
        route = _Route(None, None, None, ENTITY[resource.name])
    else:
        relation = segments[0].lower()
        permission = NAVIGATION.get((resource.name, relation))
        if permission is None:
            raise _no_segment(segments[0])
        cast_name = segments[1] if len(segments) == 2 and relation in _MEMBERSHIPS else None
        cast = _CASTS.get(cast_name.lower()) if cast_name is not None else None
        if len(segments) > 1 and cast is None:
            raise _no_segment(segments[1])
        route = _Route(relation, cast, cast_name, permission)
    _allow(request, route.method)
    require(route.permission, tenant.permissions)
    return route


# ---------------------------------------------------------------------- lookups


def _lookup(tenant: Tenant, key: str, find: Callable[[], DirectoryObject]) -> DirectoryObject:
    """The object ``find`` returns; 404 when there is none, or when it has not replicated yet."""
    try:
        found = find()
    except NotFoundError:
        raise not_found(key) from None
    if not tenant.replicated(found):
        raise not_found(key)
    return found


def _find(tenant: Tenant, resource: ResourceType, key: str) -> DirectoryObject:
    if resource is USER:
        return _lookup(tenant, key, lambda: tenant.find_user(key))
    if not is_guid(key):
        raise bad_request(f"Invalid object identifier '{key}'.")
    if resource is SERVICE_PRINCIPAL:
        return _lookup(tenant, key, lambda: tenant.find_service_principal(object_id=key))
    return _lookup(tenant, key, lambda: tenant.find_group(key))


# ---------------------------------------------------------------------- routes


def _serve(tenant: Tenant, request: GraphRequest, obj: DirectoryObject, route: _Route) -> Response:
    relation = route.relation
    if relation is None:
        return listing.entity(tenant, request, obj)
    if relation == "checkmembergroups":
        return check_member_groups(tenant, request, obj)
    if relation == "approleassignedto":
        context = f"servicePrincipals('{obj.id}')/appRoleAssignedTo"
        return listing.assignments(tenant, request, tenant.assignments_to(obj.id), context)
    if relation == "approleassignments":
        context = f"{obj.resource.entity_set}('{obj.id}')/appRoleAssignments"
        return listing.assignments(tenant, request, tenant.assignments_of(obj.id), context)
    if relation == "members":
        items = tenant.member_objects(obj.id)
    elif relation == "transitivemembers":
        items = tenant.transitive_member_objects(obj.id)
    else:
        items = tenant.member_of_objects(obj.id, transitive=relation == "transitivememberof")
    return listing.directory_objects(tenant, request, items, route.cast, route.cast_name)
