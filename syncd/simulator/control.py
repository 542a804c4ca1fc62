"""The control API under ``/_sim/``: lets another process change the tenant and read the counters.

No token is needed (the server listens on loopback).  Bodies are JSON; user, group, device and
contact fields use Graph's property names; fault options use the keyword names of
:class:`Simulator` methods (``path_regex``, ``retry_after``; ``pathRegex`` and ``retryAfter`` are
accepted too).

======  ==================================  ==============================================
GET     /_sim/tenant                        ids, app roles and object counts
GET     /_sim/stats                         request counts and logs
POST    /_sim/reset-stats                   zero the counts
POST    /_sim/users                         create ``{"userPrincipalName", ...}``
PATCH   /_sim/users/{id}                    change properties
DELETE  /_sim/users/{id}                    delete (assignments and memberships go too)
POST    /_sim/groups                        create ``{"displayName", "members": [...]}``
PATCH   /_sim/groups/{id}                   change properties (e.g. rename)
DELETE  /_sim/groups/{id}                   delete
POST    /_sim/groups/{id}/members           add ``{"id": memberId}``
DELETE  /_sim/groups/{id}/members/{mid}     remove
POST    /_sim/devices                       create ``{"displayName", "operatingSystem", ...}``
POST    /_sim/contacts                      create ``{"displayName", "mail", ...}``
POST    /_sim/assign                        ``{"principalId", "appRoleId"}`` (role optional)
POST    /_sim/unassign                      ``{"principalId", "appRoleId"}`` (role optional)
POST    /_sim/appRoles                      ``{"displayName", "value"}``
GET     /_sim/permissions                   granted application permissions
PUT     /_sim/permissions                   ``{"permissions": [...]}``
GET     /_sim/lag                           the replication lag
PUT     /_sim/lag                           ``{"seconds": s}``: new objects are a 404 by id for s
GET     /_sim/faults                        active faults
POST    /_sim/faults                        ``{"kind": "fail" | "throttle" | "delay", ...}``
DELETE  /_sim/faults                        clear all faults
======  ==================================  ==============================================
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from syncd.simulator.responses import Response
from syncd.simulator.tenant import DEFAULT_ACCESS_ROLE_ID, NotFoundError

if TYPE_CHECKING:
    from syncd.simulator.server import Simulator

_FAULT_OPTIONS = {"pathRegex": "path_regex", "retryAfter": "retry_after"}


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}}, {"Content-Type": "application/json"})


def _ok(status: int, body: Any = None) -> Response:
    return Response(status, body, {"Content-Type": "application/json"})


def handle(sim: Simulator, method: str, path: str, raw_body: bytes) -> Response:
    """Answer one control request."""
    try:
        payload = json.loads(raw_body) if raw_body.strip() else {}
        if not isinstance(payload, dict):
            raise ValueError("The body must be a JSON object.")
        return _dispatch(sim, method, path.rstrip("/"), payload)
    except NotFoundError as error:
        return _error(404, "Request_ResourceNotFound", str(error))
    except (ValueError, TypeError, KeyError, re.error) as error:
        return _error(400, "BadRequest", f"{type(error).__name__}: {error}")


def _dispatch(sim: Simulator, method: str, path: str, payload: dict[str, Any]) -> Response:
    tenant = sim.tenant
    parts = path.split("/")[2:]
    route = (method, *parts)
    match route:
        case ("GET", "tenant"):
            return _ok(200, _summary(sim))
        case ("GET", "stats"):
            return _ok(200, sim.stats())
        case ("POST", "reset-stats"):
            sim.reset_counts()
            return _ok(204)
        case ("POST", "users"):
            upn = payload.pop("userPrincipalName")
            object_id = tenant.add_user(upn, id=payload.pop("id", None), **payload)
            return _ok(201, tenant.get_user(object_id))
        case ("PATCH", "users", user_id):
            tenant.update_user(user_id, **payload)
            return _ok(200, tenant.get_user(user_id))
        case ("DELETE", "users", user_id):
            tenant.delete_user(user_id)
            return _ok(204)
        case ("POST", "groups"):
            name = payload.pop("displayName")
            members = payload.pop("members", [])
            object_id = tenant.add_group(name, members=members, id=payload.pop("id", None), **payload)
            return _ok(201, {**tenant.get_group(object_id), "members": tenant.member_ids(object_id)})
        case ("PATCH", "groups", group_id):
            tenant.update_group(group_id, **payload)
            return _ok(200, tenant.get_group(group_id))
        case ("DELETE", "groups", group_id):
            tenant.delete_group(group_id)
            return _ok(204)
        case ("POST", "groups", group_id, "members"):
            tenant.add_member(group_id, payload["id"])
            return _ok(204)
        case ("DELETE", "groups", group_id, "members", member_id):
            tenant.remove_member(group_id, member_id)
            return _ok(204)
        case ("POST", "devices"):
            name = payload.pop("displayName")
            operating_system = payload.pop("operatingSystem", "Windows")
            object_id = tenant.add_device(
                name, operating_system=operating_system, id=payload.pop("id", None), **payload
            )
            return _ok(201, dict(tenant.get(object_id).props))
        case ("POST", "contacts"):
            name = payload.pop("displayName")
            object_id = tenant.add_contact(name, payload.pop("mail", None), id=payload.pop("id", None), **payload)
            return _ok(201, dict(tenant.get(object_id).props))
        case ("POST", "assign"):
            role_id = payload.get("appRoleId") or DEFAULT_ACCESS_ROLE_ID
            return _ok(201, {"id": tenant.assign(payload["principalId"], role_id)})
        case ("POST", "unassign"):
            return _ok(200, {"removed": tenant.unassign(payload["principalId"], payload.get("appRoleId"))})
        case ("POST", "appRoles"):
            role_id = tenant.add_app_role(
                payload["displayName"],
                payload.get("value"),
                description=payload.get("description"),
                id=payload.get("id"),
            )
            return _ok(201, {"id": role_id})
        case ("GET", "permissions"):
            return _ok(200, {"permissions": sorted(tenant.permissions)})
        case ("PUT", "permissions"):
            tenant.set_permissions(payload["permissions"])
            return _ok(200, {"permissions": sorted(tenant.permissions)})
        case ("GET", "lag"):
            return _ok(200, {"seconds": tenant.lag})
        case ("PUT", "lag"):
            tenant.set_lag(float(payload["seconds"]))
            return _ok(200, {"seconds": tenant.lag})
        case ("GET", "faults"):
            return _ok(200, sim.active_faults())
        case ("POST", "faults"):
            _add_fault(sim, payload)
            return _ok(201, sim.active_faults())
        case ("DELETE", "faults"):
            sim.clear_faults()
            return _ok(204)
    return _error(404, "NotFound", f"No control endpoint {method} {path}.")


def _add_fault(sim: Simulator, payload: dict[str, Any]) -> None:
    options = {_FAULT_OPTIONS.get(name, name): value for name, value in payload.items()}
    kind = options.pop("kind", "fail")
    if kind == "fail":
        sim.fail(**options)
    elif kind == "throttle":
        sim.throttle(**options)
    elif kind == "delay":
        sim.delay(**options)
    else:
        raise ValueError(f"Unknown fault kind '{kind}'; use fail, throttle or delay.")


def _summary(sim: Simulator) -> dict[str, Any]:
    tenant = sim.tenant
    with tenant.lock:
        return {
            "baseUrl": sim.base_url,
            "tenantId": tenant.tenant_id,
            "servicePrincipalId": tenant.service_principal_id,
            "appId": tenant.app_id,
            "appRoles": tenant.app_roles(),
            "users": len(tenant.users),
            "groups": len(tenant.groups),
            "devices": len(tenant.devices),
            "contacts": len(tenant.contacts),
            "assignments": len(tenant.assignments_to(tenant.service_principal_id)),
            "permissions": sorted(tenant.permissions),
            "lagSeconds": tenant.lag,
        }
