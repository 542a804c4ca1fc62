"""The OData query options Graph honours on directory collections.

* ``$select``: comma-separated property names (matched case-insensitively); an unknown name is a
  400.  Selected properties are returned in the order they were named.  On a directoryObject
  collection a name is looked up on every type the collection can hold.
* ``$top``: page size, 1 to 999 (Graph answers 400 outside that range); the default is 100.
* ``$skiptoken``: the opaque cursor of an ``@odata.nextLink``.
* ``$filter``: ``eq``, ``ne``, ``gt``, ``ge``, ``lt``, ``le``, ``in``, ``startswith``, ``endswith``,
  ``and``, ``or``, ``not`` and parentheses over string, boolean, null, number and GUID literals.
  String comparisons ignore case, as in the directory.  ``ne``, ``not`` and ``endswith`` are
  *advanced queries*: Graph answers them only with ``ConsistencyLevel: eventual`` and
  ``$count=true``.
* Limits ("Some limitations apply to query parameters", Graph's known issues): an ``in`` list holds
  at most 15 values, and a value matched with ``eq`` at most 120 characters; with the advanced
  query parameters both limits give way to one on the URL's length, 2,048 characters.
* ``$count=true`` on a collection of directory objects is itself an advanced query: without
  ``ConsistencyLevel: eventual`` it is a 400 (with it, the body carries ``@odata.count``).
* On the membership navigations (``members``, ``transitiveMembers``, ``memberOf``,
  ``transitiveMemberOf``) an OData cast segment or any ``$filter`` needs both the header and
  ``$count=true`` (group-list-members, group-list-transitivemembers, user-list-memberof,
  user-list-transitivememberof: "This header and $count are required when using the $search,
  $filter, $orderby, or OData cast query parameters").
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from syncd.simulator.request import GraphRequest
from syncd.simulator.responses import GraphError, bad_request, unsupported_query
from syncd.simulator.schema import ResourceType

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999

Predicate = Callable[[dict[str, Any]], bool]


def parse_query(raw_query: str) -> dict[str, str]:
    """Query options by name; system options (``$...``) are matched case-insensitively."""
    options: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        options[name.lower() if name.startswith("$") else name] = value
    return options


def page_size(query: dict[str, str]) -> int:
    raw = query.get("$top")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise bad_request(f"Invalid value '{raw}' for $top query option found.") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad_request(f"Invalid page size specified: '{size}'. Must be between 1 and 999 inclusive.")
    return size


def parse_select(query: dict[str, str], types: Sequence[ResourceType]) -> list[str] | None:
    """The canonical names of the selected properties, or None without ``$select``.

    With several ``types`` (a directoryObject collection) a name may belong to any of them.
    """
    raw = query.get("$select")
    if raw is None:
        return None
    selected: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        canonical = _resolve(name, types)
        if canonical not in selected:
            selected.append(canonical)
    return selected or None


def _resolve(name: str, types: Sequence[ResourceType]) -> str:
    for resource in types:
        canonical = resource.canonical(name)
        if canonical is not None:
            return canonical
    type_name = types[0].name if len(types) == 1 else "directoryObject"
    raise bad_request(f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.")


# ---------------------------------------------------------------------- paging


def encode_skiptoken(seq: int) -> str:
    """An opaque cursor: the creation sequence number of the last item served."""
    return base64.urlsafe_b64encode(json.dumps({"after": seq}).encode()).decode().rstrip("=")


def decode_skiptoken(token: str | None) -> int | None:
    if token is None:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["after"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise bad_request("The specified page token value is not valid.") from None


# ---------------------------------------------------------------------- $filter

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_@$][\w./@$]*)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_ADVANCED = {"ne", "not", "endswith"}


@dataclass(frozen=True, slots=True)
class Filter:
    """A compiled ``$filter``; ``advanced`` names the first advanced-query operator it uses."""

    predicate: Predicate
    advanced: str | None
    in_values: int = 0
    """The most values one ``in`` list holds."""
    eq_length: int = 0
    """The longest string an ``eq`` matches."""


@dataclass(slots=True)
class _Token:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise bad_request(f"Invalid filter clause: syntax error at position {position} in '{text}'.")
        kind = match.lastgroup or "punct"
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


def _normalise(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class _Parser:
    def __init__(self, text: str, types: Sequence[ResourceType]) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.types = types
        self.advanced: str | None = None
        self.in_values = 0
        self.eq_length = 0

    def fail(self, message: str = "") -> GraphError:
        return bad_request(f"Invalid filter clause: {message or 'syntax error'} in '{self.text}'.")

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or (text is not None and token.text.lower() != text):
            raise self.fail(f"expected '{text}'" if text else "unexpected end")
        self.position += 1
        return token

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text.lower() in words:
            self.position += 1
            return token.text.lower()
        return None

    def note_advanced(self, word: str) -> None:
        if word in _ADVANCED and self.advanced is None:
            self.advanced = word

    def parse(self) -> Filter:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise self.fail(f"unexpected '{self.peek().text}'")  # type: ignore[union-attr]
        return Filter(predicate, self.advanced, self.in_values, self.eq_length)

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda props: any(part(props) for part in parts))

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda props: all(part(props) for part in parts))

    def unary(self) -> Predicate:
        if self.keyword("not"):
            self.note_advanced("not")
            inner = self.unary()
            return lambda props: not inner(props)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end")
        if token.text == "(":
            self.take("(")
            inner = self.disjunction()
            self.take(")")
            return inner
        if token.kind == "name" and token.text.lower() in ("startswith", "endswith"):
            return self.string_function()
        if token.kind == "name" and "/" in token.text:
            raise unsupported_query()
        left_start = self.position
        left = self.operand()
        comparison = self.keyword("in", *_COMPARISONS)
        if comparison is None:
            raise self.fail("expected a comparison")
        self.note_advanced(comparison)
        if comparison == "in":
            self.take("(")
            listed = [self.literal()]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take(",")
                listed.append(self.literal())
            self.take(")")
            self.in_values = max(self.in_values, len(listed))
            values = {_normalise(value) for value in listed}
            return lambda props: _normalise(left(props)) in values
        right_start = self.position
        right = self.operand()
        if comparison == "eq":
            for token in (self.tokens[left_start], self.tokens[right_start]):
                if token.kind == "string":
                    self.eq_length = max(self.eq_length, len(token.text[1:-1].replace("''", "'")))
        return _compare(comparison, left, right)

    def string_function(self) -> Predicate:
        name = self.take().text.lower()
        self.note_advanced(name)
        self.take("(")
        subject = self.operand()
        self.take(",")
        prefix = str(self.literal()).lower()
        self.take(")")
        if name == "startswith":
            return lambda props: isinstance(value := subject(props), str) and value.lower().startswith(prefix)
        return lambda props: isinstance(value := subject(props), str) and value.lower().endswith(prefix)

    def operand(self) -> Callable[[dict[str, Any]], Any]:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text.lower() not in ("true", "false", "null"):
            self.position += 1
            name = _resolve(token.text, self.types)
            return lambda props: props.get(name)
        value = self.literal()
        return lambda props: value

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "guid":
            return token.text.lower()
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        words = {"true": True, "false": False, "null": None}
        if token.kind == "name" and token.text.lower() in words:
            return words[token.text.lower()]
        raise self.fail(f"'{token.text}' is not a literal")


def _compare(
    comparison: str, left: Callable[[dict[str, Any]], Any], right: Callable[[dict[str, Any]], Any]
) -> Predicate:
    def equal(props: dict[str, Any]) -> bool:
        return bool(_normalise(left(props)) == _normalise(right(props)))

    if comparison == "eq":
        return equal
    if comparison == "ne":
        return lambda props: not equal(props)

    def ordered(props: dict[str, Any]) -> bool:
        a, b = _normalise(left(props)), _normalise(right(props))
        if a is None or b is None:
            return False
        try:
            return bool(_ORDERINGS[comparison](a, b))
        except TypeError:
            return False

    return ordered


def parse_filter(text: str, types: Sequence[ResourceType]) -> Filter:
    """Compile a ``$filter`` expression into a predicate over an object's Graph properties."""
    return _Parser(text, types).parse()


_TRY_ADVANCED = "Try adding $count with a value of true and the ConsistencyLevel header with a value of eventual."


def require_advanced_query(filter_: Filter, request: GraphRequest) -> None:
    """Graph refuses advanced-query operators without ``ConsistencyLevel: eventual`` and ``$count``."""
    if filter_.advanced is None or (request.eventual and request.counted):
        return
    raise unsupported_query(
        f"Operator '{filter_.advanced}' is not supported because the required parameters might be missing. "
        + _TRY_ADVANCED
    )


MAX_IN_VALUES = 15
MAX_EQ_LENGTH = 120
MAX_ADVANCED_URL_LENGTH = 2048


def require_filter_limits(filter_: Filter, request: GraphRequest) -> None:
    """At most 15 values in an ``in`` list and 120 characters matched by ``eq``; with the advanced
    query parameters, a URL of at most 2,048 characters instead."""
    if request.eventual and request.counted:
        if request.url_length > MAX_ADVANCED_URL_LENGTH:
            raise unsupported_query(
                f"The request URL is {request.url_length} characters long; an advanced query allows "
                f"{MAX_ADVANCED_URL_LENGTH}."
            )
        return
    if filter_.in_values > MAX_IN_VALUES:
        raise unsupported_query(
            f"Too many child clauses specified in search filter expression containing 'OR' operators: "
            f"{filter_.in_values}. Max allowed: {MAX_IN_VALUES}."
        )
    if filter_.eq_length > MAX_EQ_LENGTH:
        raise unsupported_query(
            f"The value to match is {filter_.eq_length} characters long; at most {MAX_EQ_LENGTH} are allowed "
            "without advanced query capabilities. " + _TRY_ADVANCED
        )


def require_eventual_count(request: GraphRequest) -> None:
    """``$count=true`` on directory objects is an advanced query: it needs ``ConsistencyLevel: eventual``."""
    if request.counted and not request.eventual:
        raise unsupported_query(
            "$count is not supported because the 'ConsistencyLevel:eventual' header is missing. Refer to "
            "https://aka.ms/graph-docs/advanced-queries for more information"
        )


def require_membership_advanced_query(request: GraphRequest, cast: str | None) -> None:
    """A cast or a ``$filter`` on a membership navigation needs the header and ``$count=true``."""
    if request.eventual and request.counted:
        return
    if cast is not None:
        raise unsupported_query(
            f"The OData cast to '{cast}' is not supported because the required parameters might be missing. "
            + _TRY_ADVANCED
        )
    if "$filter" in request.query:
        raise unsupported_query(
            "$filter on this relationship is not supported because the required parameters might be missing. "
            + _TRY_ADVANCED
        )
