"""Scoping rules: attribute conditions that narrow which assigned users are in scope.

As Entra's scoping filters have them: within one rule every condition must hold (AND); a user is in
scope when any rule holds (OR); no rules means everyone assigned.  String comparisons ignore case,
as Entra's do.  A user whom no rule admits is never created, and a provisioned one is deactivated
with the reason ``out_of_scope``.

Pure: imports only the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EXTENSION_ATTRIBUTES = tuple(f"extensionAttribute{n}" for n in range(1, 16))
ATTRIBUTES = (
    "department",
    "companyName",
    "userType",
    "jobTitle",
    "employeeType",
    "country",
    "city",
    "officeLocation",
    *EXTENSION_ATTRIBUTES,
)
"""The user attributes a condition may test (Graph names; the extension attributes are read from
``onPremisesExtensionAttributes``)."""

OPERATORS = ("equals", "not_equals", "is_null", "is_not_null", "starts_with", "regex_match", "in", "not_in")
LIST_OPERATORS = ("in", "not_in")
NO_VALUE_OPERATORS = ("is_null", "is_not_null")


@dataclass(frozen=True, slots=True)
class Condition:
    attribute: str
    operator: str
    value: str | tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def holds(self, values: Mapping[str, str | None]) -> bool:
        actual = values.get(self.attribute)
        text = actual.casefold() if isinstance(actual, str) else None
        match self.operator:
            case "is_null":
                return not text
            case "is_not_null":
                return bool(text)
            case "equals":
                return text == str(self.value).casefold()
            case "not_equals":
                return text != str(self.value).casefold()
            case "starts_with":
                return text is not None and text.startswith(str(self.value).casefold())
            case "regex_match":
                return actual is not None and self.pattern is not None and self.pattern.search(actual) is not None
            case "in":
                return text is not None and text in {str(item).casefold() for item in self.value or ()}
            case "not_in":
                return text not in {str(item).casefold() for item in self.value or ()}
        return False

    def describe(self) -> str:
        if self.operator in NO_VALUE_OPERATORS:
            return f"{self.attribute} {self.operator}"
        if isinstance(self.value, tuple):
            return f"{self.attribute} {self.operator} [{', '.join(repr(item) for item in self.value)}]"
        return f"{self.attribute} {self.operator} {self.value!r}"


@dataclass(frozen=True, slots=True)
class Rule:
    conditions: tuple[Condition, ...]

    def holds(self, values: Mapping[str, str | None]) -> bool:
        return all(condition.holds(values) for condition in self.conditions)

    def failing(self, values: Mapping[str, str | None]) -> list[Condition]:
        return [condition for condition in self.conditions if not condition.holds(values)]


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a user is in scope, and why, in words for ``syncd plan`` and ``syncd explain``."""

    in_scope: bool
    rule: int | None
    """The number (from 1) of the first rule that admits the user; None when none does (or no rules)."""
    reason: str


def decide(rules: Sequence[Rule], values: Mapping[str, str | None]) -> Decision:
    """The scope decision for a user with these attribute values."""
    if not rules:
        return Decision(True, None, "no scope rules: everyone assigned is in scope")
    for number, rule in enumerate(rules, start=1):
        if rule.holds(values):
            conditions = " and ".join(condition.describe() for condition in rule.conditions)
            return Decision(True, number, f"scope rule {number} holds ({conditions})")
    failed = "; ".join(
        f"rule {number}: {', '.join(_failed(condition, values) for condition in rule.failing(values))}"
        for number, rule in enumerate(rules, start=1)
    )
    return Decision(False, None, f"no scope rule holds ({failed})")


def _failed(condition: Condition, values: Mapping[str, str | None]) -> str:
    return f"{condition.describe()} is false for {condition.attribute}={values.get(condition.attribute)!r}"


def graph_properties(rules: Sequence[Rule]) -> tuple[str, ...]:
    """The Graph user properties the rules read: only those, added to the ``$select``."""
    names: list[str] = []
    for rule in rules:
        for condition in rule.conditions:
            name = (
                "onPremisesExtensionAttributes" if condition.attribute in EXTENSION_ATTRIBUTES else condition.attribute
            )
            if name not in names:
                names.append(name)
    return tuple(names)


def parse(value: Any, path: str = "scope.rules") -> tuple[tuple[Rule, ...], list[str]]:
    """Rules from the parsed TOML (``[[scope.rules]]``), and every problem, each with its key path."""
    problems: list[str] = []
    if not isinstance(value, list):
        return (), [f"{path}: must be a list of tables ([[scope.rules]])"]
    rules: list[Rule] = []
    for index, entry in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table with conditions = [...]")
            continue
        unknown = sorted(set(entry) - {"conditions"})
        if unknown:
            problems.append(f"{where}: unknown key {unknown[0]!r} (a rule has only conditions)")
        conditions = entry.get("conditions")
        if not isinstance(conditions, list) or not conditions:
            problems.append(f"{where}.conditions: must be a non-empty list of {{attribute, operator, value}}")
            continue
        parsed = [_condition(item, f"{where}.conditions[{number}]", problems) for number, item in enumerate(conditions)]
        if all(condition is not None for condition in parsed):
            rules.append(Rule(tuple(condition for condition in parsed if condition is not None)))
    return tuple(rules), problems


def _condition(item: Any, where: str, problems: list[str]) -> Condition | None:
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a table {{attribute, operator, value}}")
        return None
    before = len(problems)
    unknown = sorted(set(item) - {"attribute", "operator", "value"})
    if unknown:
        problems.append(f"{where}: unknown key {unknown[0]!r}")
    attribute, operator, value = item.get("attribute"), item.get("operator"), item.get("value")
    if attribute not in ATTRIBUTES:
        problems.append(f"{where}.attribute: {attribute!r} is not one of {', '.join(ATTRIBUTES)}")
    if operator not in OPERATORS:
        problems.append(f"{where}.operator: {operator!r} is not one of {', '.join(OPERATORS)}")
    pattern = None
    if operator in NO_VALUE_OPERATORS:
        if value is not None:
            problems.append(f"{where}.value: {operator} takes no value")
    elif operator in LIST_OPERATORS:
        if not isinstance(value, list) or not value or not all(isinstance(entry, str) for entry in value):
            problems.append(f"{where}.value: {operator} takes a non-empty list of strings")
        else:
            value = tuple(value)
    elif operator in OPERATORS:
        if not isinstance(value, str):
            problems.append(f"{where}.value: {operator} takes a string")
        elif operator == "regex_match":
            try:
                pattern = re.compile(value, re.IGNORECASE)
            except re.error as error:
                problems.append(f"{where}.value: not a regular expression ({error})")
    if len(problems) > before:
        return None
    return Condition(str(attribute), str(operator), value, pattern)
