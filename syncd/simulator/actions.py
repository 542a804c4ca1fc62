"""Bound actions: ``POST .../checkMemberGroups`` (directoryobject-checkmembergroups).

The body is ``{"groupIds": [...]}``: one to 20 group ids (GUIDs); anything else is a 400.  The
answer lists, in the order given, those of the groups the object is a member of, directly or
through nested groups ("This function is transitive"); ids of groups that do not exist, or that
the object is not in, are simply left out::

    {"@odata.context": ".../$metadata#Collection(Edm.String)", "value": ["<group id>", ...]}
"""

from __future__ import annotations

from typing import Any

from syncd.simulator.objects import is_guid
from syncd.simulator.request import GraphRequest
from syncd.simulator.responses import Response, bad_request
from syncd.simulator.tenant import DirectoryObject, Tenant

MAX_GROUP_IDS = 20


def check_member_groups(tenant: Tenant, request: GraphRequest, obj: DirectoryObject) -> Response:
    """Which of the given groups ``obj`` belongs to, directly or through nesting."""
    wanted = _group_ids(request.json())
    member_of = {group.id for group in tenant.member_of_objects(obj.id, transitive=True)}
    found = [group_id for group_id in wanted if group_id in member_of]
    return Response(200, {"@odata.context": f"{request.base_url}/$metadata#Collection(Edm.String)", "value": found})


def _group_ids(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object with a 'groupIds' collection.")
    unknown = [name for name in payload if name != "groupIds"]
    if unknown:
        raise bad_request(f"The property '{unknown[0]}' does not exist on the action 'checkMemberGroups'.")
    group_ids = payload.get("groupIds")
    if not isinstance(group_ids, list):
        raise bad_request("The parameter 'groupIds' of checkMemberGroups must be a collection of group ids.")
    if not 1 <= len(group_ids) <= MAX_GROUP_IDS:
        raise bad_request(
            f"checkMemberGroups takes 1 to {MAX_GROUP_IDS} group ids; the request holds {len(group_ids)}."
        )
    for value in group_ids:
        if not is_guid(value):
            raise bad_request(f"Invalid object identifier '{value}' in groupIds.")
    return list(dict.fromkeys(value.lower() for value in group_ids))
