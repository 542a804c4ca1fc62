"""A Microsoft Graph look-alike for tests, the demo and the benchmark.

:class:`Tenant` is an in-memory Entra ID directory (users, groups, one enterprise application
with its app roles and assignments); :class:`Simulator` serves it over real HTTP on loopback with
the paths, JSON shapes, paging, ``$select``/``$filter``/``$top``, ``$batch``, errors and throttling
of Graph v1.0, so the real msgraph-sdk client can be tested against it; :func:`generate_tenant`
builds a realistic tenant from a seed.

    tenant = generate_tenant(seed=1, users=500, groups=5)
    with Simulator(tenant, token="test-token") as sim:
        ...  # a Graph client at sim.base_url with bearer token sim.token
"""

from syncd.simulator.generate import generate_tenant
from syncd.simulator.server import Simulator
from syncd.simulator.tenant import DEFAULT_ACCESS_ROLE_ID, NotFoundError, Tenant

__all__ = ["DEFAULT_ACCESS_ROLE_ID", "NotFoundError", "Simulator", "Tenant", "generate_tenant"]
