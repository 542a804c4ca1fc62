"""The tenant changes ``syncd demo`` makes between its two syncs.

Four everyday Entra edits, chosen deterministically from the tenant so every run of the demo
shows the same story: an assigned group is renamed, a directly assigned user is unassigned,
another directly assigned user gets a different app role, and a member of an assigned group has
their account disabled.
"""

from __future__ import annotations

from syncd.simulator.tenant import DEFAULT_ACCESS_ROLE_ID, Tenant


def _role_name(tenant: Tenant, role_id: str) -> str:
    if role_id == DEFAULT_ACCESS_ROLE_ID:
        return "Default Access"
    names = {role["id"]: role["displayName"] for role in tenant.app_roles()}
    return str(names.get(role_id, role_id))


def apply_demo_changes(tenant: Tenant) -> list[str]:
    """Change the tenant; returns one line per change, saying what was done."""
    lines: list[str] = []
    with tenant.lock:
        assignments = tenant.list_assignments()
        groups = [item["principalId"] for item in assignments if item["principalType"] == "Group"]
        direct = list(dict.fromkeys(item["principalId"] for item in assignments if item["principalType"] == "User"))
        via_groups = {user for group in groups for user in tenant.transitive_user_ids(group)}

        if groups:
            old_name = tenant.get_group(groups[0])["displayName"]
            new_name = f"{old_name} Team"
            tenant.rename_group(groups[0], new_name)
            lines.append(f"group '{old_name}' renamed to '{new_name}'")

        only_direct = [user for user in direct if user not in via_groups]
        if only_direct:
            leaving = only_direct[0]
            tenant.unassign(leaving)
            lines.append(f"{tenant.get_user(leaving)['userPrincipalName']} unassigned from the application")
            direct.remove(leaving)

        if direct:
            changing = direct[0]
            before = [item["appRoleId"] for item in assignments if item["principalId"] == changing]
            roles = {role["value"]: role["id"] for role in tenant.app_roles()}
            admin, viewer = roles.get("admin", DEFAULT_ACCESS_ROLE_ID), roles.get("viewer", DEFAULT_ACCESS_ROLE_ID)
            target = viewer if admin in before else admin
            tenant.unassign(changing)
            tenant.assign(changing, target)
            was = ", ".join(_role_name(tenant, role) for role in before)
            upn = tenant.get_user(changing)["userPrincipalName"]
            lines.append(f"{upn}: app role {was} changed to {_role_name(tenant, target)}")

        enabled_members = [
            user
            for group in groups[1:] or groups
            for user in tenant.transitive_user_ids(group)
            if user not in direct and tenant.get_user(user)["accountEnabled"]
        ]
        if enabled_members:
            disabled = enabled_members[0]
            tenant.update_user(disabled, accountEnabled=False)
            lines.append(f"{tenant.get_user(disabled)['userPrincipalName']} account disabled")
    return lines
