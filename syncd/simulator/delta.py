"""Delta queries as Graph serves them: ``/users/delta``, ``/groups/delta`` and ``/directoryObjects/delta``.

The rules, from the v1.0 pages user-delta, group-delta, directoryobject-delta and the concept pages
"Use delta query to track changes" (delta-query-overview, delta-query-users, delta-query-groups):

* A round pages through ``@odata.nextLink`` (a ``$skiptoken``) and ends with one
  ``@odata.deltaLink`` (a ``$deltatoken``); "a page can't contain both".  Both links carry every
  query parameter of the first request inside their opaque token, and only the token: "If you use
  any query parameter (other than $deltatoken and $skiptoken), you must specify it in the initial
  delta request", and "delta queries with both $select and $skiptoken aren't supported" (400).
* The first round returns the objects that exist ("resources that were deleted before the initial
  delta query aren't returned"); a later round the objects changed since its token, *as they are
  now*, so the same object may come again in the next round (a replay).  A user or group is in a
  round only when a selected property changed.  A property never set is left out; one set to null
  is sent as null.
* ``$deltatoken=latest`` answers at once with a deltaLink and no objects.
* Removed objects are their ``id`` and ``@removed``: ``{"reason": "changed"}`` for a user in the
  deleted items, ``{"reason": "deleted"}`` for one gone for good (and for a deleted security group).
* ``/groups/delta`` with ``members`` selected carries ``members@delta``: ``@odata.type`` and ``id``
  of each member that joined, plus ``"@removed": {"reason": "deleted"}`` for each that left.  A
  large group's members are split over several pages, the same group object repeated on each
  ("the same property values will be returned but the members@delta property now contains a
  different list").  A group without members has no ``members@delta``.  Users in the deleted items
  "keep their group memberships and won't appear in the delta result until they're permanently
  deleted".
* ``$filter`` on users and groups: only ``id eq '...'`` (``or``-ed, at most 50); ``$top``,
  ``$orderby``, ``$expand``, ``$count`` and ``$search`` are not supported (400).
* ``/directoryObjects/delta`` needs ``$filter`` of ``isof('microsoft.graph.<type>')`` terms; an
  appRoleAssignment is tracked only together with users (``isof('microsoft.graph.appRoleAssignment')
  or isof('microsoft.graph.user')``), and every type filtered for is returned.  Each item carries
  its ``@odata.type``.
* A token older than seven days ("for directory objects, the limit is seven days") is answered 400
  ``syncStateNotFound``; after a reset of the tenant's sync state a token is answered 410 Gone with
  a ``Location`` of the initial query and the code ``resyncRequired``.

Page sizes are not documented; the simulator serves 200 objects a page and at most 500 member
entries, which makes large groups span pages as they do in Graph.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from syncd.simulator.permissions import DELTA_ASSIGNMENTS, DELTA_GROUPS, DELTA_USERS, Permission, require
from syncd.simulator.request import GraphRequest
from syncd.simulator.responses import GraphError, Response, bad_request, unsupported_query
from syncd.simulator.schema import APP_ROLE_ASSIGNMENT, GROUP, USER, ResourceType
from syncd.simulator.tenant import Tenant

PAGE_OBJECTS = 200
PAGE_MEMBERS = 500
MAX_ID_FILTERS = 50
TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600
_UNSUPPORTED = ("$top", "$orderby", "$expand", "$count", "$search", "$skip")
_ID_TERM = re.compile(r"^\s*id\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_ISOF_TERM = re.compile(r"^\s*isof\(\s*'microsoft\.graph\.(\w+)'\s*\)\s*$", re.IGNORECASE)
_TYPES = {"user": USER, "group": GROUP, "approleassignment": APP_ROLE_ASSIGNMENT}
_TYPE_PERMISSIONS = {"user": DELTA_USERS, "group": DELTA_GROUPS, "appRoleAssignment": DELTA_ASSIGNMENTS}


@dataclass(frozen=True, slots=True)
class _Query:
    """What a round was asked for, carried inside its tokens."""

    kind: str
    """``users``, ``groups`` or ``directoryObjects``."""
    select: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    types: tuple[str, ...]
    initial: str
    """The first request's query string, for the Location of a 410."""


@dataclass(frozen=True, slots=True)
class _Position:
    since: int
    upto: int
    after_seq: int = 0
    after_member: str = ""


def users(tenant: Tenant, request: GraphRequest) -> Response:
    require(DELTA_USERS, tenant.permissions)
    return _round(tenant, request, "users")


def groups(tenant: Tenant, request: GraphRequest) -> Response:
    require(DELTA_GROUPS, tenant.permissions)
    return _round(tenant, request, "groups")


def directory_objects(tenant: Tenant, request: GraphRequest) -> Response:
    return _round(tenant, request, "directoryObjects")


# ---------------------------------------------------------------------- the query and its tokens


def _encode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    padded = token + "=" * (-len(token) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError(token)
    return value


def _sync_state_not_found() -> GraphError:
    return GraphError(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )


def _parse_initial(request: GraphRequest, kind: str) -> _Query:
    for option in _UNSUPPORTED:
        if option in request.query:
            raise unsupported_query(f"The query option '{option}' is not supported with delta queries.")
    raw_select = request.query.get("$select")
    select = None if raw_select is None else tuple(part.strip() for part in raw_select.split(",") if part.strip())
    raw_filter = request.query.get("$filter")
    ids: tuple[str, ...] | None = None
    types: tuple[str, ...] = ()
    if kind == "directoryObjects":
        types = _parse_types(raw_filter)
        select = _check_typed_select(select, types)
    else:
        resource = USER if kind == "users" else GROUP
        select = _check_select(select, resource)
        if raw_filter is not None:
            ids = _parse_ids(raw_filter)
    initial = "&".join(
        f"{quote(name, safe='$')}={quote(value, safe=chr(39) + '(),.=:/ ')}"
        for name, value in request.query.items()
        if name not in ("$deltatoken", "$skiptoken")
    )
    return _Query(kind, select, ids, types, initial)


def _check_select(select: tuple[str, ...] | None, resource: ResourceType) -> tuple[str, ...] | None:
    if select is None:
        return None
    names = []
    for name in select:
        if resource is GROUP and name.lower() in ("members", "owners"):
            names.append(name.lower())
            continue
        canonical = resource.canonical(name)
        if canonical is None:
            raise bad_request(f"Could not find a property named '{name}' on type 'microsoft.graph.{resource.name}'.")
        names.append(canonical)
    return tuple(dict.fromkeys(names))


def _check_typed_select(select: tuple[str, ...] | None, types: tuple[str, ...]) -> tuple[str, ...] | None:
    """``$select`` on directoryObjects/delta: names qualified by their type (``microsoft.graph.user/surname``)."""
    if select is None:
        return None
    names = []
    for name in select:
        type_name, slash, prop = name.rpartition("/")
        kind = type_name.lower().removeprefix("microsoft.graph.")
        resource = _TYPES.get(kind) if slash else None
        canonical = resource.canonical(prop) if resource is not None else None
        if resource is None or canonical is None:
            raise bad_request(f"Could not find a property named '{name}' on type 'microsoft.graph.directoryObject'.")
        names.append(f"{resource.name}/{canonical}")
    return tuple(dict.fromkeys(names))


def _parse_ids(raw: str) -> tuple[str, ...]:
    terms = re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE)
    ids = []
    for term in terms:
        match = _ID_TERM.match(term)
        if match is None:
            raise unsupported_query("The only supported $filter on a delta query is on the id: id eq '{value}'.")
        ids.append(match[1].lower())
    if len(ids) > MAX_ID_FILTERS:
        raise bad_request(f"Too many objects to track by id: {len(ids)}; the limit is {MAX_ID_FILTERS}.")
    return tuple(ids)


def _parse_types(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        raise bad_request("Filtering is required on directoryObjects/delta, on the id or the type of the objects.")
    found = []
    for term in re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE):
        match = _ISOF_TERM.match(term)
        resource = _TYPES.get(match[1].lower()) if match else None
        if resource is None:
            raise unsupported_query(f"Unsupported filter on directoryObjects/delta: {term.strip()!r}.")
        found.append(resource.name)
    if APP_ROLE_ASSIGNMENT.name in found and USER.name not in found:
        raise bad_request(
            "To track appRoleAssignment changes, both isof('microsoft.graph.appRoleAssignment') and "
            "isof('microsoft.graph.user') must be specified."
        )
    return tuple(dict.fromkeys(found))


def _query_of(payload: dict[str, Any]) -> _Query:
    select = payload.get("select")
    ids = payload.get("ids")
    return _Query(
        str(payload["kind"]),
        tuple(select) if select is not None else None,
        tuple(ids) if ids is not None else None,
        tuple(payload.get("types", ())),
        str(payload.get("initial", "")),
    )


def _token(query: _Query, tenant: Tenant, **position: Any) -> dict[str, Any]:
    return {
        "kind": query.kind,
        "select": list(query.select) if query.select is not None else None,
        "ids": list(query.ids) if query.ids is not None else None,
        "types": list(query.types),
        "initial": query.initial,
        "gen": tenant.changelog.generation,
        "issued": tenant.clock(),
        **position,
    }


def _link(request: GraphRequest, name: str, payload: dict[str, Any]) -> str:
    return f"{request.base_url}{quote(request.path, safe='/')}?{name}={_encode(payload)}"


def _check_token(tenant: Tenant, request: GraphRequest, payload: dict[str, Any], kind: str) -> None:
    if payload.get("kind") != kind:
        raise _sync_state_not_found()
    if int(payload.get("gen", 0)) != tenant.changelog.generation:
        location = f"{request.base_url}{quote(request.path, safe='/')}?{payload.get('initial', '')}".rstrip("?")
        raise GraphError(
            410,
            "resyncRequired",
            "The delta token is no longer valid, and the app must reset the sync state.",
            headers={"Location": location},
        )
    if tenant.clock() - float(payload.get("issued", 0)) > TOKEN_LIFETIME_SECONDS:
        raise _sync_state_not_found()


# ---------------------------------------------------------------------- one round


def _round(tenant: Tenant, request: GraphRequest, kind: str) -> Response:
    delta_token = request.query.get("$deltatoken")
    skip_token = request.query.get("$skiptoken")
    if delta_token is not None and delta_token.lower() == "latest":
        query = _parse_initial(request, kind)
        _require_types(tenant, query)
        upto = tenant.changelog.version
        return _respond(request, query, [], delta=_token(query, tenant, since=upto))
    if delta_token is not None or skip_token is not None:
        if skip_token is not None and delta_token is not None:
            raise bad_request("A request carries either a $deltatoken or a $skiptoken, not both.")
        extra = [name for name in request.query if name not in ("$deltatoken", "$skiptoken")]
        if extra:
            raise bad_request(
                f"The query option '{extra[0]}' must be given in the initial delta request only; "
                "the nextLink and deltaLink carry it."
            )
        try:
            payload = _decode(delta_token if delta_token is not None else str(skip_token))
            query = _query_of(payload)
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
            raise _sync_state_not_found() from None
        _check_token(tenant, request, payload, kind)
        _require_types(tenant, query)
        if delta_token is not None:
            position = _Position(int(payload["since"]), tenant.changelog.version)
        else:
            position = _Position(
                int(payload["since"]), int(payload["upto"]), int(payload["after"]), str(payload.get("member", ""))
            )
    else:
        query = _parse_initial(request, kind)
        _require_types(tenant, query)
        position = _Position(0, tenant.changelog.version)
    items, more = _collect(tenant, query, position)
    if more is not None:
        nxt = _token(query, tenant, since=position.since, upto=position.upto, after=more[0], member=more[1])
        return _respond(request, query, items, next_=nxt)
    return _respond(request, query, items, delta=_token(query, tenant, since=position.upto))


def _require_types(tenant: Tenant, query: _Query) -> None:
    if query.kind != "directoryObjects":
        return
    for type_name in query.types:
        permission: Permission = _TYPE_PERMISSIONS[type_name]
        require(permission, tenant.permissions)


def _respond(
    request: GraphRequest,
    query: _Query,
    items: list[dict[str, Any]],
    *,
    next_: dict[str, Any] | None = None,
    delta: dict[str, Any] | None = None,
) -> Response:
    context = f"{request.base_url}/$metadata#{query.kind}"
    if query.select is not None and query.kind != "directoryObjects":
        context += f"({','.join(query.select)})"
    body: dict[str, Any] = {"@odata.context": context}
    if next_ is not None:
        body["@odata.nextLink"] = _link(request, "$skiptoken", next_)
    if delta is not None:
        body["@odata.deltaLink"] = _link(request, "$deltatoken", delta)
    body["value"] = items
    return Response(200, body)


# ---------------------------------------------------------------------- what a round holds


Render = Callable[[str, int], tuple[dict[str, Any], str | None]]
"""Given the member id to start after and how many member entries may still go on the page: the
item, and the member to continue after on the next page (None: the object is done)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    render: Render


def _collect(tenant: Tenant, query: _Query, position: _Position) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
    """One page from ``position`` on: the items, and where the next page starts (None: the round is done)."""
    entries = sorted(
        (entry for entry in _entries(tenant, query, position) if entry.seq >= position.after_seq),
        key=lambda entry: entry.seq,
    )
    items: list[dict[str, Any]] = []
    members_left = PAGE_MEMBERS
    last_done = position.after_seq
    for entry in entries:
        resuming = entry.seq == position.after_seq and position.after_seq > 0
        if resuming and not position.after_member:
            continue  # served whole on an earlier page
        if len(items) == PAGE_OBJECTS or members_left <= 0:
            return items, (last_done, "")
        item, resume = entry.render(position.after_member if resuming else "", members_left)
        members_left -= len(item.get("members@delta", ()))
        items.append(item)
        if resume is not None:
            return items, (entry.seq, resume)
        last_done = entry.seq
    return items, None


def _entries(tenant: Tenant, query: _Query, position: _Position) -> Iterable[_Entry]:
    log = tenant.changelog
    since = position.since
    wanted = set(query.ids) if query.ids is not None else None
    changed = log.changed_since(since) if since else None  # None in a first round: every object

    def tracked(object_id: str) -> bool:
        return wanted is None or object_id in wanted

    if query.kind == "users" or (query.kind == "directoryObjects" and USER.name in query.types):
        typed = query.kind == "directoryObjects"
        select = _selected(query, USER)
        for user in _candidates(tenant.users, changed):
            if tracked(user.id) and log.last_change(user.id, select) > since:
                yield _Entry(user.seq, _user_renderer(tenant, user, select, typed))
        if since:
            for object_id in changed or ():
                stone = log.tombstones.get(object_id)
                if stone is not None and stone.kind == "user" and stone.version > since and tracked(object_id):
                    yield _Entry(stone.seq, _removed(object_id, stone.reason, USER if typed else None))
    if query.kind == "groups" or (query.kind == "directoryObjects" and GROUP.name in query.types):
        typed = query.kind == "directoryObjects"
        select = _selected(query, GROUP)
        with_members = query.kind == "groups" and (query.select is None or "members" in query.select)
        properties = None if select is None else [name for name in select if name not in ("members", "owners")]
        for group in _candidates(tenant.groups, changed):
            if not tracked(group.id):
                continue
            changed_members = _member_changes(tenant, group.id, since) if with_members else []
            if log.last_change(group.id, properties) > since or changed_members:
                yield _Entry(group.seq, _group_renderer(tenant, group, properties, changed_members, typed))
        if since:
            for object_id in changed or ():
                stone = log.tombstones.get(object_id)
                if stone is not None and stone.kind == "group" and stone.version > since and tracked(object_id):
                    yield _Entry(stone.seq, _removed(object_id, "deleted", GROUP if typed else None))
    if query.kind == "directoryObjects" and APP_ROLE_ASSIGNMENT.name in query.types:
        select = _selected(query, APP_ROLE_ASSIGNMENT)
        for item in _candidates(tenant.assignments, changed):
            if log.assignments.get(item.id, 0) > since:
                yield _Entry(item.seq, _assignment_renderer(tenant, item, select))
        if since:
            for assignment_id in changed or ():
                removed = log.removed_assignments.get(assignment_id)
                if removed is not None and removed.version > since:
                    yield _Entry(removed.seq, _removed(assignment_id, "deleted", APP_ROLE_ASSIGNMENT))


def _candidates(objects: dict[str, Any], changed: set[str] | None) -> list[Any]:
    """The objects a round looks at: all of them in a first round, else those with a change."""
    if changed is None:
        return list(objects.values())
    return [objects[object_id] for object_id in changed if object_id in objects]


def _selected(query: _Query, resource: ResourceType) -> list[str] | None:
    if query.select is None:
        return None
    if query.kind != "directoryObjects":
        return list(query.select)
    prefix = f"{resource.name}/"
    names = [name.removeprefix(prefix) for name in query.select if name.startswith(prefix)]
    return names or None


def _properties(tenant: Tenant, obj: Any, resource: ResourceType, select: list[str] | None) -> dict[str, Any]:
    """Selected (or default) properties; one never set is left out, one set to null is sent as null."""
    names = list(resource.defaults) if select is None else select
    out: dict[str, Any] = {}
    for name in names:
        if name == "id":
            continue
        value = obj.props.get(name, resource.properties.get(name))
        if value is None and not tenant.changelog.set_since_creation(obj.id, name):
            continue
        out[name] = value
    return out


def _user_renderer(tenant: Tenant, user: Any, select: list[str] | None, typed: bool) -> Render:
    def render(_after: str, _room: int) -> tuple[dict[str, Any], str | None]:
        head: dict[str, Any] = {"@odata.type": USER.odata_type} if typed else {}
        return {**head, "id": user.id, **_properties(tenant, user, USER, select)}, None

    return render


def _member_changes(tenant: Tenant, group_id: str, since: int) -> list[tuple[str, bool]]:
    """(member id, still a member) for each member that joined or left after ``since``, by id."""
    group = tenant.groups[group_id]
    members = group.members or {}
    if not since:
        return [(member_id, True) for member_id in sorted(members)]
    changed = tenant.changelog.members.get(group_id, {})
    return [(member_id, member_id in members) for member_id, version in sorted(changed.items()) if version > since]


def _group_renderer(
    tenant: Tenant,
    group: Any,
    properties: list[str] | None,
    changes: list[tuple[str, bool]],
    typed: bool,
) -> Render:
    def render(after: str, room: int) -> tuple[dict[str, Any], str | None]:
        head: dict[str, Any] = {"@odata.type": GROUP.odata_type} if typed else {}
        item = {**head, "id": group.id, **_properties(tenant, group, GROUP, properties)}
        pending = [change for change in changes if change[0] > after] if after else changes
        if not pending:
            return item, None
        chunk = pending[:room]
        entries = []
        for member_id, present in chunk:
            entry: dict[str, Any] = {"@odata.type": tenant.changelog.member_types.get(member_id, USER.odata_type)}
            entry["id"] = member_id
            if not present:
                entry["@removed"] = {"reason": "deleted"}
            entries.append(entry)
        item["members@delta"] = entries
        return item, (chunk[-1][0] if len(pending) > len(chunk) else None)

    return render


def _assignment_renderer(tenant: Tenant, item: Any, select: list[str] | None) -> Render:
    def render(_after: str, _room: int) -> tuple[dict[str, Any], str | None]:
        full = tenant.render_assignment(item)
        shown = full if select is None else {"id": full["id"], **{name: full[name] for name in select}}
        return {"@odata.type": APP_ROLE_ASSIGNMENT.odata_type, **shown}, None

    return render


def _removed(object_id: str, reason: str, resource: ResourceType | None) -> Render:
    def render(_after: str, _room: int) -> tuple[dict[str, Any], str | None]:
        head: dict[str, Any] = {"@odata.type": resource.odata_type} if resource is not None else {}
        return {**head, "id": object_id, "@removed": {"reason": reason}}, None

    return render
