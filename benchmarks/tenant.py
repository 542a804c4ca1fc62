"""The benchmark's tenants, and the changes made to them between cycles.

A tenant of N users: a tenth assigned directly, the rest through groups of about 90 members, each
assignment with one of three app roles (Admin, Member, Viewer).  At 100,000 users that is 10,000
direct assignments and 1,000 groups.
"""

from __future__ import annotations

import random

from syncd.simulator import Tenant

GROUP_SIZE = 90


def build_tenant(users: int, seed: int = 1) -> Tenant:
    tenant = Tenant(seed=seed)
    roles = [
        tenant.add_app_role("Admin", "admin"),
        tenant.add_app_role("Member", "member"),
        tenant.add_app_role("Viewer", "viewer"),
    ]
    titles = ("Engineer", "Analyst", "Manager", None)
    user_ids = [
        tenant.add_user(f"user{n:06d}@contoso.com", f"User {n}", job_title=titles[n % len(titles)])
        for n in range(users)
    ]
    direct = users // 10
    for index, user_id in enumerate(user_ids[:direct]):
        tenant.assign(user_id, roles[index % 3])
    grouped = user_ids[direct:]
    group_count = max(1, round(len(grouped) / GROUP_SIZE))
    group_ids = [tenant.add_group(f"Team {index:04d}") for index in range(group_count)]
    for index, group_id in enumerate(group_ids):
        tenant.assign(group_id, roles[index % 3])
    for index, user_id in enumerate(grouped):
        tenant.add_member(group_ids[index % group_count], user_id)
    return tenant


def change_one_percent(tenant: Tenant, rng: random.Random) -> dict[str, int]:
    """Change 1% of the users: renames, unassignments, role changes and membership moves."""
    users = tenant.user_ids()
    count = max(4, len(users) // 100)
    roles = [role["id"] for role in tenant.app_roles()]
    direct = {a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User"}
    groups = tenant.group_ids()
    member_of = {member: group for group in groups for member in tenant.member_ids(group)}
    done = {"renamed": 0, "unassigned": 0, "role changed": 0, "moved": 0}
    for user_id in rng.sample(users, count):
        kind = rng.choice(tuple(done))
        if kind == "renamed":
            tenant.update_user(user_id, display_name=f"Renamed {rng.randrange(10**6)}")
        elif kind == "unassigned" and user_id in direct:
            tenant.unassign(user_id)
            direct.discard(user_id)
        elif kind == "unassigned" and user_id in member_of:
            tenant.remove_member(member_of.pop(user_id), user_id)
        elif kind == "role changed" and user_id in direct:
            tenant.unassign(user_id)
            tenant.assign(user_id, rng.choice(roles))
        elif kind == "moved" and user_id in member_of:
            tenant.remove_member(member_of[user_id], user_id)
            member_of[user_id] = rng.choice(groups)
            tenant.add_member(member_of[user_id], user_id)
        else:
            kind = "renamed"
            tenant.update_user(user_id, display_name=f"Renamed {rng.randrange(10**6)}")
        done[kind] += 1
    return done
