"""Scoping rules: conditions ANDed within a rule, rules ORed, comparisons ignoring case; out of scope
means never created, and deactivated with the reason out_of_scope; only the attributes rules use are
selected from Graph."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from syncd.config import build
from syncd.errors import ConfigError
from syncd.model import Policy
from syncd.plan import diff
from syncd.reconcile import RunOptions, run_once
from syncd.scope_rules import decide, graph_properties, parse
from syncd.simulator import Simulator, Tenant
from tests.builders import MEMBER, assigned, snapshot, state, stored_user, user

SALES_NOT_GUESTS = [
    {
        "conditions": [
            {"attribute": "department", "operator": "equals", "value": "Sales"},
            {"attribute": "userType", "operator": "not_equals", "value": "Guest"},
        ]
    },
    {"conditions": [{"attribute": "extensionAttribute3", "operator": "in", "value": ["Partner", "Vendor"]}]},
]


def rules(raw=None):
    parsed, problems = parse(SALES_NOT_GUESTS if raw is None else raw)
    assert problems == []
    return parsed


# ------------------------------------------------------------------ the rules themselves


@pytest.mark.parametrize(
    ("values", "in_scope", "rule"),
    [
        ({"department": "Sales", "userType": "Member"}, True, 1),
        ({"department": "sales", "userType": "member"}, True, 1),  # case is ignored, as Entra ignores it
        ({"department": "Sales", "userType": "Guest"}, False, None),  # one condition fails: the rule fails
        ({"department": "HR", "extensionAttribute3": "VENDOR"}, True, 2),  # any rule holding is enough
        ({"department": "HR"}, False, None),
        ({}, False, None),
    ],
)
def test_conditions_are_anded_and_rules_ored(values, in_scope, rule):
    decision = decide(rules(), values)
    assert (decision.in_scope, decision.rule) == (in_scope, rule)
    if not in_scope:
        assert "rule 1" in decision.reason and "rule 2" in decision.reason


@pytest.mark.parametrize(
    ("operator", "value", "actual", "expected"),
    [
        ("is_null", None, None, True),
        ("is_null", None, "", True),
        ("is_null", None, "x", False),
        ("is_not_null", None, "x", True),
        ("starts_with", "sal", "Sales EMEA", True),
        ("starts_with", "sal", "Presales", False),
        ("regex_match", r"^(sales|marketing)\b", "Marketing EMEA", True),
        ("regex_match", r"^sales$", "Sales EMEA", False),
        ("not_in", ["Contractor", "Intern"], "employee", True),
        ("not_in", ["Contractor", "Intern"], "INTERN", False),
        ("not_in", ["Contractor"], None, True),
        ("in", ["Contractor"], None, False),
    ],
)
def test_each_operator(operator, value, actual, expected):
    condition = {"attribute": "employeeType", "operator": operator}
    if value is not None:
        condition["value"] = value
    assert decide(rules([{"conditions": [condition]}]), {"employeeType": actual}).in_scope is expected


def test_no_rules_means_everyone_assigned():
    assert decide((), {}).in_scope


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("Sales", "scope.rules: must be a list of tables"),
        ([{"conditions": []}], "scope.rules[0].conditions: must be a non-empty list"),
        (
            [{"conditions": [{"attribute": "salary", "operator": "equals", "value": "1"}]}],
            "scope.rules[0].conditions[0].attribute",
        ),
        (
            [{"conditions": [{"attribute": "city", "operator": "near", "value": "x"}]}],
            "scope.rules[0].conditions[0].operator",
        ),
        ([{"conditions": [{"attribute": "city", "operator": "in", "value": "Paris"}]}], "takes a non-empty list"),
        ([{"conditions": [{"attribute": "city", "operator": "is_null", "value": "x"}]}], "takes no value"),
        (
            [{"conditions": [{"attribute": "city", "operator": "regex_match", "value": "("}]}],
            "not a regular expression",
        ),
        ([{"conditions": [{"attribute": "city", "operator": "equals", "value": 3}]}], "takes a string"),
        (
            [{"conditions": [{"attribute": "city", "operator": "equals", "value": "x"}], "when": 1}],
            "unknown key 'when'",
        ),
    ],
)
def test_an_invalid_rule_is_a_configuration_error_naming_it(raw, problem):
    with pytest.raises(ConfigError) as raised:
        build({"scope": {"rules": raw}})
    assert problem in str(raised.value)
    assert raised.value.exit_code == 78


def test_only_the_attributes_rules_use_are_selected():
    assert graph_properties(rules()) == ("department", "userType", "onPremisesExtensionAttributes")
    config = build({"scope": {"rules": SALES_NOT_GUESTS}})
    assert config.graph.extra_user_properties == ("department", "userType", "onPremisesExtensionAttributes")


# ------------------------------------------------------------------ the planner


def scoped(*people, **attributes_by_name):
    return [
        replace(p, attributes={"jobTitle": None, **attributes_by_name.get(p.display_name or "", {})}) for p in people
    ]


def test_a_user_out_of_scope_is_never_created_and_one_leaving_it_is_deactivated():
    policy = Policy(scope_rules=rules())
    ann, bob, cy = scoped(user("ann"), user("bob"), user("cy"), Ann={"department": "Sales"}, Bob={"department": "HR"})
    current = state([stored_user(1, "cy@contoso.com", source=cy, name="Cy")])
    plan = diff(
        snapshot(users=[ann, bob, cy], assignments=[assigned(u, MEMBER) for u in (ann, bob, cy)]), current, policy
    )
    assert [(c.op, c.target) for c in plan.changes] == [
        ("create_user", "ann@contoso.com"),
        ("deactivate_user", "cy@contoso.com"),
    ]
    assert plan.changes[1].reason == "out_of_scope"
    assert [w.code for w in plan.warnings] == ["OUT_OF_SCOPE"]
    assert "no scope rule holds" in plan.warnings[0].message and "department" in plan.warnings[0].message


def test_disabled_in_entra_wins_over_out_of_scope():
    cy = replace(user("cy"), account_enabled=False)
    plan = diff(
        snapshot(users=[cy], assignments=[assigned(cy)]),
        state([stored_user(1, "cy@contoso.com", source=cy, name="Cy")]),
        Policy(scope_rules=rules()),
    )
    assert plan.changes[0].reason == "disabled"


def test_a_user_back_in_scope_is_reactivated():
    cy = scoped(user("cy"), Cy={"department": "Sales"})[0]
    current = state(
        [stored_user(1, "cy@contoso.com", source=cy, name="Cy", active=False, inactive_reason="out_of_scope")]
    )
    plan = diff(snapshot(users=[cy], assignments=[assigned(cy)]), current, Policy(scope_rules=rules()))
    assert [c.op for c in plan.changes] == ["reactivate_user"]


# ------------------------------------------------------------------ against the simulator


def test_a_sync_selects_the_rule_attributes_and_applies_the_scope(tmp_path: Path):
    tenant = Tenant(seed=3)
    ann = tenant.add_user("ann@contoso.com", "Ann", department="Sales", userType="Member")
    bob = tenant.add_user("bob@contoso.com", "Bob", department="Sales", userType="Guest")
    vic = tenant.add_user("vic@contoso.com", "Vic", onPremisesExtensionAttributes={"extensionAttribute3": "Vendor"})
    for person in (ann, bob, vic):
        tenant.assign(person)
    token = tmp_path / "token"
    token.write_text("scope-token")
    with Simulator(tenant, token="scope-token") as sim:
        config = build(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'syncd.db'}"},
                "graph": {
                    "auth": "token_file",
                    "token_file": str(token),
                    "base_url": sim.base_url,
                    "service_principal_id": tenant.service_principal_id,
                },
                "scope": {"rules": SALES_NOT_GUESTS},
            },
            base=tmp_path,
        )
        result = run_once(config, RunOptions())
        assert sorted(c.target for c in result.plan.changes if c.op == "create_user") == [
            "ann@contoso.com",
            "vic@contoso.com",
        ]
        selects = [
            target.split("$select=")[1].split("&")[0] for _, target, _ in sim.request_log if "$select=" in target
        ]
        user_selects = [select for select in selects if "userPrincipalName" in select]
        assert user_selects and all("department" in s and "onPremisesExtensionAttributes" in s for s in user_selects)
        assert not any("companyName" in s or "country" in s for s in user_selects)
        tenant.update_user(ann, department="HR")
        result = run_once(config, RunOptions())
        assert [(c.op, c.target, c.reason) for c in result.plan.changes] == [
            ("deactivate_user", "ann@contoso.com", "out_of_scope")
        ]
