"""Every request the client makes names things Microsoft's v1.0 metadata has.

The simulator records each request (``$batch`` items too) of a full cycle with and without nested
groups, a cycle that lists the directory, a ``scope = "all"`` cycle, on-demand user and group syncs,
the lookups of users who left, ``syncd check``, and a full read that starts delta links followed by
a delta round.  Each path segment must be an entity set, a
key, a navigation property of the type reached so far, or a bound action of it (never an OData
cast); each ``$select`` name a property of the type returned (for a directoryObject collection, of
the user type syncd keeps from it); each property a ``$filter`` compares, a property too.

``tests/fixtures/graph-metadata/v1.0-directory.json`` is a copy of ``shared/graph-metadata``
(extracted from Microsoft's published CSDL, commit in its ``source`` key).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from syncd.config import SyncConfig
from syncd.graph import check, fetch_principal, fetch_snapshot, lookup_users
from syncd.graph.incremental import read_whole_application
from syncd.simulator import Simulator, Tenant
from tests.test_graph import configure

FIXTURE = Path(__file__).parent / "fixtures" / "graph-metadata" / "v1.0-directory.json"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "graph-metadata" / "v1.0-directory.json"
KEPT_FROM_DIRECTORY_OBJECTS = "user"
"""The derived type the client keeps from a directoryObject collection (the members of a group)."""


@cache
def metadata() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def type_name(reference: str) -> str:
    """``Collection(graph.user)`` or ``microsoft.graph.user`` -> ``user``."""
    inner = reference.removeprefix("Collection(").removesuffix(")")
    return inner.rsplit(".", 1)[-1]


def lineage(name: str) -> list[dict[str, Any]]:
    """The type and its base types, as far as the metadata file holds them."""
    chain = []
    types = metadata()["types"]
    while name in types:
        chain.append(types[name])
        name = type_name(types[name].get("baseType") or "")
    return chain


def properties(name: str) -> set[str]:
    return {"id"} | {prop for entry in lineage(name) for prop in entry["properties"]}


def navigation(name: str, segment: str) -> str | None:
    for entry in lineage(name):
        if segment in entry["navigationProperties"]:
            return type_name(entry["navigationProperties"][segment])
    return None


def bound_action(name: str, segment: str) -> bool:
    bound_to = {type_name(entry.get("baseType") or "") for entry in lineage(name)} | {name}
    return any(
        operation["name"] == segment
        and type_name(operation["bindingParameter"]) in bound_to
        and not operation["bindingParameter"].startswith("Collection(")
        for operation in metadata()["operations"]
    )


def collection_function(name: str, segment: str) -> bool:
    """A function bound to a collection of the type (``/users/delta``)."""
    return any(
        operation["name"] == segment
        and operation["bindingParameter"].startswith("Collection(")
        and type_name(operation["bindingParameter"]) == name
        for operation in metadata()["operations"]
    )


_KEYED = re.compile(r"^(?P<set>\w+)\((?P<key>.*)\)$")


def returned_type(path: str) -> str:
    """Walk a path below ``/v1.0`` and return the type it answers; fail on anything not in the metadata."""
    segments = [segment for segment in path.strip("/").split("/") if segment]
    entity_sets = metadata()["entitySets"]
    first = segments.pop(0)
    keyed = _KEYED.match(first)
    entity_set = keyed["set"] if keyed else first
    assert entity_set in entity_sets, f"{path}: {entity_set!r} is not an entity set"
    current = type_name(entity_sets[entity_set])
    if not keyed:
        if not segments:
            return current
        if collection_function(current, segments[0]):
            assert len(segments) == 1, f"{path}: nothing may follow {segments[0]!r}"
            return current
        segments.pop(0)  # the key
    for segment in segments:
        assert "." not in segment, f"{path}: {segment!r} is an OData cast (an advanced query on member relationships)"
        target = navigation(current, segment)
        if target is not None:
            current = target
            continue
        assert bound_action(current, segment), f"{path}: {segment!r} is neither a navigation nor an action of {current}"
        return "String"
    return current


def check_request(target: str) -> None:
    path, _, query = target.partition("?")
    assert path.startswith("/v1.0/"), target
    path = path[len("/v1.0") :]
    if path == "/$batch":
        return
    answered = returned_type(path)
    options = dict(parse_qsl(query, keep_blank_values=True))
    described = KEPT_FROM_DIRECTORY_OBJECTS if answered == "directoryObject" else answered
    delta = path.endswith("/delta")
    for name in filter(None, options.get("$select", "").split(",")):
        if delta and navigation(described, name) is not None:
            continue  # a delta query selects a relationship to track its changes (members@delta)
        assert name in properties(described), f"{target}: $select {name!r} is not a property of {described}"
    for name in re.findall(r"(\w+) (?:eq|ne|in|gt|ge|lt|le) ", options.get("$filter", "")):
        assert name in properties(described), f"{target}: $filter on {name!r}, not a property of {described}"


def tenant() -> Tenant:
    t = Tenant(app_display_name="Workspace")
    admin = t.add_app_role("Admin", value="admin")
    users = [t.add_user(upn=f"user{n}@contoso.com", display_name=f"User {n}") for n in range(60)]
    dollar = t.add_user(upn="$desk@contoso.com", display_name="Desk")
    inner = t.add_group("Inner", members=users[:3])
    sales = t.add_group("Sales", members=[*users[3:8], inner, dollar, t.add_device("Kiosk")])
    t.assign(sales, app_role_id=admin)
    for user_id in users[10:55]:  # enough direct users for the client to count and list the directory
        t.assign(user_id)
    t.assign(users[9])
    return t


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> list[str]:
    tmp_path = tmp_path_factory.mktemp("metadata")
    t = tenant()
    with Simulator(t) as sim:
        graph = configure(sim, tmp_path)
        for nested in (False, True):
            fetch_snapshot(graph, SyncConfig(nested_groups=nested))
            fetch_principal(graph, SyncConfig(nested_groups=nested), user="user5@contoso.com")
            fetch_principal(graph, SyncConfig(nested_groups=nested), user="$desk@contoso.com")
            fetch_principal(graph, SyncConfig(nested_groups=nested), group="Sales")
            check(graph, SyncConfig(nested_groups=nested))
        fetch_snapshot(graph, SyncConfig(scope="all"))
        lookup_users(graph, t.user_ids()[:25])
        first = read_whole_application(graph, SyncConfig(), None)
        t.update_user(t.user_ids()[4], display_name="Renamed")
        newcomer = t.add_group("Newcomers", members=t.user_ids()[56:58])
        t.assign(newcomer)
        read_whole_application(graph, SyncConfig(), first.mirror)
        sim_targets = [target for _, target, _ in sim.request_log + sim.batch_log]
    return sim_targets


def test_the_recording_covers_every_kind_of_read(recorded):
    paths = {re.sub(r"[0-9a-f-]{36}", "{id}", target.split("?")[0]) for target in recorded}
    for expected in (
        "/v1.0/servicePrincipals/{id}",
        "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
        "/v1.0/groups/{id}",
        "/v1.0/groups/{id}/members",
        "/v1.0/groups/{id}/transitiveMembers",
        "/v1.0/users/{id}",
        "/v1.0/users",
        "/v1.0/groups",
        "/v1.0/users/{id}/checkMemberGroups",
        "/v1.0/users('$desk@contoso.com')",
        "/v1.0/$batch",
        "/v1.0/users/delta",
        "/v1.0/groups/delta",
        "/v1.0/directoryObjects/delta",
    ):
        assert expected in paths, sorted(paths)


def test_every_request_names_only_what_the_metadata_has(recorded):
    for target in recorded:
        check_request(target)


@pytest.mark.parametrize(
    "target",
    [
        "/v1.0/groups/g1/members/microsoft.graph.user?$select=id",
        "/v1.0/users/u1/memberships",
        "/v1.0/users/u1?$select=id,jobtitle",
        "/v1.0/groups/g1/members?$select=id,mailNicknames",
        "/v1.0/people/u1",
        "/v1.0/users/delta/more",
        "/v1.0/users/delta?$select=id,memberships",
    ],
)
def test_the_metadata_check_catches_what_graph_does_not_have(target):
    with pytest.raises(AssertionError):
        check_request(target)


def test_the_fixture_is_the_shared_metadata():
    if not SHARED.is_file():
        pytest.skip("shared/graph-metadata is not beside this checkout")
    assert json.loads(SHARED.read_text()) == metadata()
