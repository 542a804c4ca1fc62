"""A seeded generator of realistic tenants.

``generate_tenant(seed)`` always builds the same tenant for the same arguments.  It holds:

* app roles Admin, Member, Viewer, Guest (values ``admin``, ``member``, ``viewer``, ``guest``), a
  custom role whose display name is a number (``12345``) and one role no user type maps to
  (``Billing Manager``);
* users with real-world names (accents, apostrophes, parentheses, an emoji, a CJK name), userPrincipalNames
  on ``contoso.com`` (a few in mixed case), guests with ``#EXT#`` UPNs, job titles, some without
  mail and some disabled;
* ``groups`` groups assigned to the application with varied roles, each user of the in-scope pool
  in about one of them (some in two), and ``nested_groups`` subgroups nested inside them;
* ``direct_assignments`` users assigned directly with varied roles, half of them in no group;
* out of scope: a few users assigned nowhere, two groups that are not assigned, and one
  assignment to a service principal, which a client syncing users and groups must ignore;
* members that are not users, which a client must skip, in assigned groups picked from the seed:
  a device, an organizational contact, that service principal, and a nested group holding only
  a second device.  They are added last, so the users, their memberships and the assignments are
  the same as without them.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata

from syncd.simulator.tenant import DEFAULT_ACCESS_ROLE_ID, Tenant


def _table(text: str) -> tuple[str, ...]:
    """A name table written as one ``|``-separated string."""
    return tuple(item.strip() for item in text.split("|"))


FIRST_NAMES = _table(
    "Adele|Alex|Allan|Bianca|Cameron|Christie|Debra|Delia|Diego|Emily|Enrico|Gerhart|Grady|Henrietta|"
    "Irvin|Isaiah|Johanna|Joni|Lee|Lidia|Lynne|Megan|Miriam|Nestor|Patti|Pradeep|Raul|Adèle|José|"
    "François|Zoë|Søren|Björn|Łukasz|Agnieszka|Ngozi|Chidi|Mei|Hiroshi|Yuki|Priya|Ananya|Mohammed|"
    "Fatima|Olga|Dmitri|Siobhán|Seán|Inés|Renée|Noël|André|Jürgen|Ayşe|Çağrı|Thảo|Kwame|Amara|Mateo|"
    "Camila"
)
LAST_NAMES = _table(
    "Vance|Wilber|Deyoung|Pincus|White|Cline|Dennis|Soto|Braun|Stanley|Lambert|Holloway|Johnson|"
    "Fernandez|Patel|Herrera|García|Müller|Núñez|O'Brien|O'Connor|D'Souza|Nakamura|Zhang|Kowalski|"
    "Øvergaard|Lefèvre|Côté|Smith-Jones|van der Berg|da Silva|Schäfer|Dvořák|Nguyễn|Okafor|Mensah|"
    "Ivanova|Kaur|Haddad|Yılmaz|MacDonald|St. John"
)
SPECIAL_USERS = (
    ("Zoë", "O'Brien", "Zoë O'Brien (Contractor)"),
    ("José", "Núñez", "Dr. José Núñez-García"),
    ("Renée", "Lefèvre", "Renée Lefèvre 🎉"),
    ("Mei", "Zhang", "张美 (Mei Zhang)"),
    ("Siobhán", "D'Souza", "Siobhán D'Souza, MBA #2"),
)
JOB_TITLES = _table(
    "Retail Manager|Marketing Assistant|Software Engineer|Senior Software Engineer|Product Manager|"
    "Sales Representative|Account Executive|Support Engineer|Designer|Data Analyst|Accountant|"
    "Legal Counsel|HR Generalist|Operations Lead|Director of Engineering|Chief Executive Officer|"
    "Intern|Technician|Project Coordinator|Research Scientist"
)
DEPARTMENTS = _table("Sales|Engineering|Marketing|Support|Finance|Operations|Legal|Human Resources")
GROUP_NAMES = _table(
    "Sales|Engineering|Marketing|Customer Support|Finance|Operations|Legal|Human Resources|Design|"
    "Research & Development|Product Management|IT Helpdesk|Security (EMEA)|Facilities|Data Science|"
    "Partner Success|Quality Assurance|Field Services|Procurement|Executive Office"
)
GUEST_DOMAINS = ("fabrikam.com", "northwindtraders.com", "adatum.com", "tailspintoys.com", "woodgrovebank.com")

_NOT_UPN = re.compile(r"[^a-z0-9.'-]+")


_UNDECOMPOSED = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ı": "i", "ß": "ss", "æ": "ae"})


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSED))
    return folded.encode("ascii", "ignore").decode()


@functools.cache
def _local_part(first: str, last: str) -> str:
    local = _NOT_UPN.sub("", f"{_ascii(first)}.{_ascii(last).replace(' ', '')}".lower()).strip(".")
    return local or "user"


class _Builder:
    def __init__(self, seed: int, app_display_name: str) -> None:
        self.rng = random.Random(seed)
        self.tenant = Tenant(app_display_name, seed=self.rng.getrandbits(64))
        self.upns: set[str] = set()
        self.numbers: dict[str, int] = {}

    def roles(self) -> dict[str, str]:
        add = self.tenant.add_app_role
        return {
            "admin": add("Admin", "admin", description="Administers the workspace"),
            "member": add("Member", "member", description="Uses the workspace"),
            "viewer": add("Viewer", "viewer", description="Reads the workspace"),
            "guest": add("Guest", "guest", description="Limited access for external people"),
            "custom": add("12345", "12345", description="Custom role 12345 of the workspace"),
            "unmapped": add("Billing Manager", "billing_manager", description="Manages invoices"),
            "default": DEFAULT_ACCESS_ROLE_ID,
        }

    def unique_upn(self, local: str, template: str) -> tuple[str, str]:
        """A UPN from ``template`` (with ``{local}``) not yet taken, numbering the local part if needed."""
        key = template.format(local=local).lower()
        number = self.numbers.get(key, 1)
        candidate = local if number == 1 else f"{local}{number}"
        while (upn := template.format(local=candidate)).lower() in self.upns:
            number += 1
            candidate = f"{local}{number}"
        self.numbers[key] = number + 1
        self.upns.add(upn.lower())
        return candidate, upn

    def user(self, index: int, guest_ratio: float, disabled_ratio: float) -> str:
        rng = self.rng
        if index < len(SPECIAL_USERS):
            first, last, display_name = SPECIAL_USERS[index]
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            display_name = f"{first} {last}"
        local = _local_part(first, last)
        phone = f"+1 425 555 {rng.randrange(10_000):04d}"
        if rng.random() < guest_ratio:
            home = rng.choice(GUEST_DOMAINS)
            local, upn = self.unique_upn(local, "{local}_" + home + "#EXT#@contoso.onmicrosoft.com")
            mail: str | None = f"{local}@{home}"
        else:
            local, upn = self.unique_upn(local, "{local}@" + self.tenant.domain)
            if rng.random() < 0.05:
                upn = f"{local.title()}@{self.tenant.domain.capitalize()}"
            draw = rng.random()
            mail = None if draw < 0.05 else (f"{local}@sales.{self.tenant.domain}" if draw < 0.1 else upn)
        return self.tenant.add_user(
            upn,
            display_name=display_name,
            mail=mail,
            job_title=rng.choice(JOB_TITLES) if rng.random() < 0.9 else None,
            account_enabled=rng.random() >= disabled_ratio,
            givenName=first,
            surname=last,
            department=rng.choice(DEPARTMENTS),
            businessPhones=[phone] if rng.random() < 0.7 else [],
            mobilePhone=phone if rng.random() < 0.3 else None,
            officeLocation=f"{rng.randrange(1, 40)}/{rng.randrange(1000, 3000)}",
            preferredLanguage="en-US",
        )


def _group_name(index: int) -> str:
    base = GROUP_NAMES[index % len(GROUP_NAMES)]
    return base if index < len(GROUP_NAMES) else f"{base} {index // len(GROUP_NAMES) + 1}"


def generate_tenant(
    seed: int = 0,
    users: int = 100,
    groups: int = 5,
    direct_assignments: int = 20,
    members_per_group: int | None = None,
    nested_groups: int = 0,
    disabled_ratio: float = 0.02,
    guest_ratio: float = 0.05,
    app_display_name: str = "Workspace",
) -> Tenant:
    """Build a tenant; the same arguments always give the same ids, names and assignments."""
    builder = _Builder(seed, app_display_name)
    tenant, rng = builder.tenant, builder.rng
    roles = builder.roles()
    user_ids = [builder.user(index, guest_ratio, disabled_ratio) for index in range(users)]

    out_of_scope_count = max(1, round(users * 0.02)) if users >= 5 else 0
    out_of_scope = user_ids[len(user_ids) - out_of_scope_count :]
    pool = user_ids[: len(user_ids) - out_of_scope_count]
    shuffled = list(pool)
    rng.shuffle(shuffled)
    direct_count = min(direct_assignments, len(pool))
    direct_only = shuffled[: direct_count // 2 if groups else direct_count]
    grouped = shuffled[len(direct_only) :] if groups else []

    group_roles = ("member", "viewer", "admin", "custom", "member", "guest", "default", "unmapped")
    group_ids = [tenant.add_group(_group_name(index)) for index in range(groups)]
    for index, group_id in enumerate(group_ids):
        tenant.assign(group_id, roles[group_roles[index % len(group_roles)]])
    if group_ids:
        if members_per_group is None:
            for user_id in grouped:
                tenant.add_member(rng.choice(group_ids), user_id)
                if rng.random() < 0.05:
                    tenant.add_member(rng.choice(group_ids), user_id)
        else:
            for group_id in group_ids:
                for user_id in rng.sample(grouped, min(members_per_group, len(grouped))):
                    tenant.add_member(group_id, user_id)

    for index in range(nested_groups if group_ids else 0):
        parent_id = group_ids[index % len(group_ids)]
        parent_name = tenant.get_group(parent_id)["displayName"]
        nested_id = tenant.add_group(f"{parent_name} – Team {index + 1}")
        moved = [member for member in tenant.member_ids(parent_id) if member in tenant.users]
        for user_id in moved[: max(1, len(moved) // 3)] if moved else ():
            tenant.remove_member(parent_id, user_id)
            tenant.add_member(nested_id, user_id)
        tenant.add_member(parent_id, nested_id)

    direct_roles = ("admin", "member", "viewer", "guest", "custom", "default", "unmapped", "member")
    direct_users = direct_only + rng.sample(grouped, min(direct_count - len(direct_only), len(grouped)))
    for index, user_id in enumerate(direct_users):
        tenant.assign(user_id, roles[direct_roles[index % len(direct_roles)]])

    if user_ids:
        everyone = rng.sample(user_ids, min(len(user_ids), 25)) + out_of_scope
        tenant.add_group("All Company", members=dict.fromkeys(everyone))
        tenant.add_group("Former Employees", members=out_of_scope)
    automation = tenant.add_service_principal("Contoso Automation")
    tenant.assign(automation, roles["admin"])
    if group_ids:
        _add_members_that_are_not_users(tenant, rng, group_ids, automation)
    return tenant


def _add_members_that_are_not_users(
    tenant: Tenant, rng: random.Random, group_ids: list[str], service_principal_id: str
) -> None:
    laptop = tenant.add_device(f"CONTOSO-LT-{rng.randrange(10_000):04d}", operating_system="Windows")
    contact = tenant.add_contact("Fabrikam Support", mail="support@fabrikam.com", companyName="Fabrikam")
    display = tenant.add_device("ROOM-DISPLAY-01", operating_system="Android")
    equipment = tenant.add_group("Meeting Room Equipment", members=[display])
    for member_id in (laptop, contact, service_principal_id, equipment):
        tenant.add_member(rng.choice(group_ids), member_id)
