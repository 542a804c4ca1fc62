"""A Microsoft Graph look-alike for tests, the demo and the benchmark.

:class:`Tenant` is an in-memory Entra ID directory (users, groups, service principals, devices,
organizational contacts, one enterprise application with its app roles and assignments);
:class:`Simulator` serves it over real HTTP on loopback with the paths, JSON shapes, paging,
``$select``/``$filter``/``$top``/``$count``, ``checkMemberGroups``, ``$batch``, errors and
throttling of Graph v1.0, so the real msgraph-sdk client can be tested against it;
:func:`generate_tenant` builds a realistic tenant from a seed.

It models Graph as its documentation describes it, not as a client would like it: advanced
queries need ``ConsistencyLevel: eventual`` and ``$count=true``, every endpoint needs its
documented application permissions (:mod:`syncd.simulator.permissions`), members the app may not
read come with limited information, a userPrincipalName beginning with ``$`` must be written
``/users('$...')``, and :meth:`Tenant.set_lag` makes new objects unknown by id for a while, as
replication does.  :mod:`syncd.simulator.routes` states each rule.

    tenant = generate_tenant(seed=1, users=500, groups=5)
    with Simulator(tenant, token="test-token") as sim:
        ...  # a Graph client at sim.base_url with bearer token sim.token
"""

from syncd.simulator.generate import generate_tenant
from syncd.simulator.server import Simulator
from syncd.simulator.tenant import DEFAULT_ACCESS_ROLE_ID, NotFoundError, Tenant

__all__ = ["DEFAULT_ACCESS_ROLE_ID", "NotFoundError", "Simulator", "Tenant", "generate_tenant"]
