"""Collections as Graph serves them: rendering, ``$select``/``$filter``, ``$count`` and paging.

Pages are served in creation order; ``@odata.nextLink`` carries an opaque ``$skiptoken`` (the
sequence number of the last item served), so paging stays stable while the tenant changes.

A collection of directory objects (an entity set, or a membership navigation) follows Graph's
advanced-query rules (:mod:`syncd.simulator.odata`): ``$count=true`` needs
``ConsistencyLevel: eventual``, and a membership navigation needs both the header and
``$count=true`` for a cast or a ``$filter``.  Items of a membership list carry their
``@odata.type``; ``$select`` names are looked up on every type the list can hold and each item
shows those its type has.  An item whose type the application may not read is listed with
limited information (:mod:`syncd.simulator.permissions`): ``@odata.type``, ``id``, and the other
properties (the selected ones, or the type's default set) as ``null``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from syncd.simulator.odata import (
    decode_skiptoken,
    encode_skiptoken,
    page_size,
    parse_filter,
    parse_select,
    require_advanced_query,
    require_eventual_count,
    require_filter_limits,
    require_membership_advanced_query,
)
from syncd.simulator.permissions import readable
from syncd.simulator.request import GraphRequest
from syncd.simulator.responses import Response
from syncd.simulator.schema import APP_ROLE_ASSIGNMENT, DIRECTORY_TYPES, GROUP, USER, ResourceType
from syncd.simulator.tenant import Assignment, DirectoryObject, Tenant

_URL_SAFE = "/()'=@:$,"


def entity(tenant: Tenant, request: GraphRequest, obj: DirectoryObject) -> Response:
    """One object, as ``GET /users/{id}`` answers."""
    select = parse_select(request.query, [obj.resource])
    context = f"{request.base_url}/$metadata#{obj.resource.entity_set}{_selection(select)}/$entity"
    body = {"@odata.context": context, **render_object(obj, select, tenant.permissions, typed=False)}
    return Response(200, body)


def entity_set(tenant: Tenant, request: GraphRequest, resource: ResourceType) -> Response:
    """``/users``, ``/groups`` or ``/servicePrincipals``."""
    require_eventual_count(request)
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


def directory_objects(
    tenant: Tenant,
    request: GraphRequest,
    items: list[DirectoryObject],
    cast: ResourceType | None,
    cast_name: str | None = None,
) -> Response:
    """A membership navigation (``members``, ``memberOf``, ...), optionally cast to one type."""
    require_membership_advanced_query(request, cast_name)
    require_eventual_count(request)
    if cast is not None:
        items = [item for item in items if item.resource is cast]
    return _page(
        request,
        items,
        context=cast.entity_set if cast else "directoryObjects",
        types=[cast] if cast else DIRECTORY_TYPES,
        props_of=lambda obj: obj.props,
        render=lambda obj, select: render_object(obj, select, tenant.permissions, typed=True),
    )


def assignments(tenant: Tenant, request: GraphRequest, items: list[Assignment], context: str) -> Response:
    """``appRoleAssignedTo`` or ``appRoleAssignments``."""

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


def render_object(
    obj: DirectoryObject, select: list[str] | None, permissions: frozenset[str], *, typed: bool
) -> dict[str, Any]:
    """An object's Graph JSON: its default property set, or the selected properties its type has.

    Without permission to read its type, only ``@odata.type`` and ``id`` carry values.
    """
    resource = obj.resource
    out: dict[str, Any] = {"@odata.type": resource.odata_type} if typed else {}
    known = resource.properties
    names = list(resource.defaults) if select is None else [name for name in select if name in known]
    if not readable(resource, permissions):
        out["id"] = obj.id
        out.update((name, None) for name in names if name != "id")
        return out
    props = obj.props
    out.update((name, props.get(name, known[name])) for name in names)
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
        require_advanced_query(compiled, request)
        require_filter_limits(compiled, request)
        items = [item for item in items if compiled.predicate(props_of(item))]
    size = page_size(request.query)
    after = decode_skiptoken(request.query.get("$skiptoken"))
    start = 0 if after is None else bisect_right(items, after, key=lambda item: item.seq)
    chunk = items[start : start + size]
    body: dict[str, Any] = {"@odata.context": f"{request.base_url}/$metadata#{context}{_selection(select)}"}
    if request.counted:
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
