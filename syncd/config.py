"""Load and validate the TOML configuration into a frozen :class:`Config`.

Every problem is reported at once, each with its key path (``sync.scope: must be "assigned" or
"all"``), as a :class:`~syncd.errors.ConfigError` (exit 78).  ``config.example.toml`` documents
every key with its default and is parsed by a test.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .alerts import EVENTS as NOTIFY_EVENTS
from .alerts import NotifyConfig
from .errors import ConfigError
from .model import BUILTIN_USER_TYPES, DEFAULT_PRECEDENCE, Policy, is_custom_role_id
from .safety import Limits as SafetyConfig
from .scope_rules import Rule
from .scope_rules import graph_properties as scope_graph_properties
from .scope_rules import parse as parse_scope_rules

CONFIG_ENV = "SYNCD_CONFIG"
SECRET_ENV = "SYNCD_CLIENT_SECRET"
AUTH_MODES = ("client_secret", "certificate", "managed_identity", "workload_identity", "token_file")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
GRAPH_VERSION_PATH = "/v1.0"


@dataclass(frozen=True, slots=True)
class Cloud:
    """One Microsoft cloud: its Graph host and its sign-in (authority) host.

    From Microsoft's "National cloud deployments" page: each national cloud is a separate instance
    of Graph and of Entra ID; a token from one authority is only accepted by its own Graph host.
    """

    name: str
    graph_host: str
    login_host: str

    @property
    def base_url(self) -> str:
        return f"https://{self.graph_host}{GRAPH_VERSION_PATH}"

    @property
    def scope(self) -> str:
        """The application-permission scope a token for this cloud's Graph is requested with."""
        return f"https://{self.graph_host}/.default"

    @property
    def authority(self) -> str:
        return f"https://{self.login_host}"


CLOUDS: dict[str, Cloud] = {
    "global": Cloud("global", "graph.microsoft.com", "login.microsoftonline.com"),
    "usgov": Cloud("usgov", "graph.microsoft.us", "login.microsoftonline.us"),
    "usgov-dod": Cloud("usgov-dod", "dod-graph.microsoft.us", "login.microsoftonline.us"),
    "china": Cloud("china", "microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"),
}
"""``graph.cloud``: global, US Government L4 (usgov), US Government L5 / DoD (usgov-dod), China (21Vianet)."""
DEFAULT_BASE_URL = CLOUDS["global"].base_url
NO_GRAPH = "graph: no [graph] section with service_principal_id or app_id; see config.example.toml"
"""Every command that reads Graph says this when the enterprise application to sync is not named."""


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (the Graph simulator), where any Graph host is fine."""
    try:
        return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = ""


@dataclass(frozen=True, slots=True)
class GraphConfig:
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    client_secret_file: str = ""
    certificate_path: str = ""
    auth: str = ""
    token_file: str = ""
    cloud: str = "global"
    base_url: str = ""
    """Empty: the Graph of ``cloud``; set it only for the simulator (or a Graph host of ``cloud``)."""
    service_principal_id: str = ""
    app_id: str = ""
    max_concurrency: int = 8
    timeout_seconds: float = 30.0
    max_retries: int = 6
    extra_user_properties: tuple[str, ...] = ()
    """User properties read beside the registry's: those the scoping rules test (set from [scope])."""

    def __post_init__(self) -> None:
        if not self.base_url:
            object.__setattr__(self, "base_url", self.sign_in_cloud.base_url)

    @property
    def configured(self) -> bool:
        return bool(self.service_principal_id or self.app_id)

    def require_application(self, hint: str = "") -> None:
        """Raise ConfigError unless the enterprise application to sync is named (``hint``: what else
        the caller could do)."""
        if not self.configured:
            raise ConfigError(NO_GRAPH + (f" {hint}" if hint else ""))

    @property
    def sign_in_cloud(self) -> Cloud:
        """The cloud whose authority issues the token and whose Graph scope it is for."""
        return CLOUDS.get(self.cloud, CLOUDS["global"])


@dataclass(frozen=True, slots=True)
class SyncConfig:
    scope: str = "assigned"
    email_attribute: str = "userPrincipalName"
    nested_groups: bool = False
    default_user_type: str = "member"
    provision_user_type: bool = True
    full_every_hours: float = 24.0
    """An incremental run becomes a full read when the last full read is older than this."""


@dataclass(frozen=True, slots=True)
class RolesConfig:
    precedence: tuple[str, ...] = DEFAULT_PRECEDENCE
    map: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    interval_minutes: float = 40.0
    jitter_seconds: float = 0.0
    metrics_address: str = ""
    stop_timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class ScopeConfig:
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: str = "text"
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class Config:
    store: StoreConfig = field(default_factory=StoreConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    roles: RolesConfig = field(default_factory=RolesConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    log: LogConfig = field(default_factory=LogConfig)
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    path: str = ""

    @property
    def policy(self) -> Policy:
        return Policy(
            email_attribute="mail" if self.sync.email_attribute == "mail" else "userPrincipalName",
            default_user_type=self.sync.default_user_type,
            provision_user_type=self.sync.provision_user_type,
            precedence=self.roles.precedence,
            role_map=dict(self.roles.map),
            scope_rules=self.scope.rules,
        )


# --------------------------------------------------------------------------- schema

Check = Callable[[Any], str | None]


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _is_str(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return "must be " + " or ".join(f'"{choice}"' for choice in choices)

    return check


def _number(minimum: float, *, integer: bool = False, exclusive: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and isinstance(value, float)):
            return "must be a whole number" if integer else "must be a number"
        if value < minimum or (exclusive and value == minimum):
            return f"must be {'greater than' if exclusive else 'at least'} {minimum:g}"
        return None

    return check


def _strings(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        return "must be a list of non-empty strings"
    return None


def _events(value: Any) -> str | None:
    if not isinstance(value, list) or not all(item in NOTIFY_EVENTS for item in value):
        return f"must be a list of events among {', '.join(NOTIFY_EVENTS)}"
    return None


def _percent(value: Any) -> str | None:
    problem = _number(0)(value)
    if problem is None and value > 100:
        return "must be at most 100"
    return problem


def _user_type(value: Any) -> str | None:
    if isinstance(value, str) and (value in BUILTIN_USER_TYPES or is_custom_role_id(value)):
        return None
    return 'must be "admin", "member", "viewer", "guest" or a custom role id (1 to 32 ASCII digits)'


def _precedence(value: Any) -> str | None:
    allowed = (*BUILTIN_USER_TYPES, "custom")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "must be a list of strings"
    unknown = [item for item in value if item not in allowed]
    if unknown:
        return f"unknown entries {unknown}; allowed: {', '.join(allowed)}"
    if len(set(value)) != len(value):
        return "must not repeat an entry"
    return None


def _role_map(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a table of role name = user type"
    bad = sorted(name for name, target in value.items() if _user_type(target) is not None)
    if bad:
        return f"{', '.join(bad)}: " + str(_user_type(None))
    return None


def _address(value: Any) -> str | None:
    if not isinstance(value, str):
        return 'must be a string like "127.0.0.1:9464"'
    if value == "":
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return 'must be "HOST:PORT", e.g. "127.0.0.1:9464"'
    return None


def _base_url(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        return "must be an http(s) URL such as https://graph.microsoft.com/v1.0"
    try:
        urlsplit(value).port  # noqa: B018 - reading the port is the check
    except ValueError:
        return "the port must be a number"
    if value.startswith("http://") and not is_loopback(value):
        return "plain http is only allowed to localhost/127.0.0.1/::1 (the simulator); use https"
    return None


def _cloud_problems(graph: Mapping[str, Any]) -> list[str]:
    """A base_url off this machine must be the Graph (v1.0) of ``graph.cloud``: a token is only
    accepted by the Graph of the cloud whose authority issued it."""
    cloud = CLOUDS.get(graph.get("cloud", "global"))
    base_url = graph.get("base_url")
    if cloud is None or not isinstance(base_url, str) or _base_url(base_url) is not None or is_loopback(base_url):
        return []
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if host != cloud.graph_host:
        owner = next((other.name for other in CLOUDS.values() if other.graph_host == host), None)
        said = f'is the Graph of the "{owner}" cloud' if owner else "is not a Microsoft Graph host"
        return [
            f'graph.base_url: {base_url} {said}, but graph.cloud is "{cloud.name}", which signs in at '
            f"{cloud.login_host} for {cloud.graph_host}; remove base_url (graph.cloud sets it) "
            "or set graph.cloud to match"
        ]
    if parts.path.rstrip("/") != GRAPH_VERSION_PATH:
        return [f"graph.base_url: syncd speaks Graph v1.0; use {cloud.base_url}"]
    return []


def _level(value: Any) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    if isinstance(value, str) and value.upper() in levels:
        return None
    return "must be one of " + ", ".join(levels)


def _store_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if "://" not in value:
        return None  # a SQLite file path
    scheme = value.split("://", 1)[0].lower()
    if scheme.split("+", 1)[0] not in ("sqlite", "postgresql", "postgres"):
        return f"unsupported database {scheme!r}: use sqlite:///PATH, a file path, or postgresql+psycopg://…"
    try:
        urlsplit(value).port  # noqa: B018 - reading the port is the check
    except ValueError:
        return "the port must be a number"
    return None


SCHEMA: dict[str, dict[str, Check]] = {
    "store": {"url": _store_url},
    "graph": {
        "tenant_id": _is_str,
        "client_id": _is_str,
        "client_secret": _is_str,
        "client_secret_file": _is_str,
        "certificate_path": _is_str,
        "auth": _one_of(*AUTH_MODES),
        "token_file": _is_str,
        "cloud": _one_of(*CLOUDS),
        "base_url": _base_url,
        "service_principal_id": _is_str,
        "app_id": _is_str,
        "max_concurrency": _number(1, integer=True),
        "timeout_seconds": _number(0, exclusive=True),
        "max_retries": _number(0, integer=True),
    },
    "sync": {
        "scope": _one_of("assigned", "all"),
        "email_attribute": _one_of("userPrincipalName", "mail"),
        "nested_groups": _is_bool,
        "default_user_type": _user_type,
        "provision_user_type": _is_bool,
        "full_every_hours": _number(0, exclusive=True),
    },
    "roles": {"precedence": _precedence, "map": _role_map},
    "safety": {
        "max_deactivations": _number(0, integer=True),
        "max_team_deletions": _number(0, integer=True),
        "max_member_removals": _number(0, integer=True),
        "max_type_downgrades": _number(0, integer=True),
        "max_percent": _percent,
        "plan_max_age_minutes": _number(0, exclusive=True),
    },
    "daemon": {
        "interval_minutes": _number(0, exclusive=True),
        "jitter_seconds": _number(0),
        "metrics_address": _address,
        "stop_timeout_seconds": _number(0, exclusive=True),
    },
    "log": {"format": _one_of("text", "json"), "level": _level},
    "scope": {"rules": lambda value: None},  # checked whole by scope_rules.parse (see validate)
    "notify": {
        "urls": _strings,
        "events": _events,
        "incomplete_after": _number(1, integer=True),
        "stale_after_minutes": _number(0, exclusive=True),
    },
}


def validate(data: Mapping[str, Any]) -> list[str]:
    """Every problem in a parsed TOML document, each prefixed with its key path."""
    problems = []
    for section, body in data.items():
        if section not in SCHEMA:
            problems.append(f"{section}: unknown section (known: {', '.join(SCHEMA)})")
            continue
        if not isinstance(body, dict):
            problems.append(f"{section}: must be a table ([{section}])")
            continue
        if section == "scope":
            problems.extend(f"scope.{key}: unknown key" for key in body if key != "rules")
            if "rules" in body:
                problems.extend(parse_scope_rules(body["rules"])[1])
            continue
        for key, value in body.items():
            check = SCHEMA[section].get(key)
            if check is None:
                problems.append(f"{section}.{key}: unknown key")
            elif (problem := check(value)) is not None:
                problems.append(f"{section}.{key}: {problem}")
    graph = data.get("graph")
    if isinstance(graph, dict):
        problems.extend(_graph_problems(graph))
    return problems


def _graph_problems(graph: Mapping[str, Any]) -> list[str]:
    problems = []
    if graph and not (graph.get("service_principal_id") or graph.get("app_id")):
        problems.append("graph: set service_principal_id or app_id (the enterprise application to sync)")
    auth = graph.get("auth") or _implied_auth(graph)
    needs_tenant = auth in ("client_secret", "certificate", "workload_identity")
    if graph and needs_tenant:
        for key in ("tenant_id", "client_id"):
            if not graph.get(key):
                problems.append(f'graph.{key}: required for auth "{auth}"')
    if auth == "token_file" and not graph.get("token_file"):
        problems.append('graph.token_file: required for auth "token_file"')
    if auth == "certificate" and not graph.get("certificate_path"):
        problems.append('graph.certificate_path: required for auth "certificate"')
    if graph.get("client_secret") and graph.get("client_secret_file"):
        problems.append("graph.client_secret_file: set either client_secret or client_secret_file, not both")
    problems.extend(_cloud_problems(graph))
    return problems


def _implied_auth(graph: Mapping[str, Any]) -> str:
    if graph.get("token_file"):
        return "token_file"
    if graph.get("certificate_path"):
        return "certificate"
    return "client_secret"


def default_store_url() -> str:
    """SQLite in systemd's StateDirectory when run as the service, else ./syncd.db."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return f"sqlite:///{Path(state or '.') / 'syncd.db'}"


def normalise_store_url(url: str, base: Path | None = None) -> str:
    """Accept a plain file path for SQLite; relative paths are taken from the config file's folder."""
    if not url:
        return default_store_url()
    if "://" not in url:
        path = Path(url).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return f"sqlite:///{path}"
    return url


def build(data: Mapping[str, Any], *, path: str = "", base: Path | None = None) -> Config:
    """A :class:`Config` from an already parsed document; raises ConfigError listing every problem."""
    problems = validate(data)
    if problems:
        raise ConfigError(problems)

    def section(name: str) -> dict[str, Any]:
        return dict(data.get(name, {}))

    graph = section("graph")
    if graph and not graph.get("auth"):
        graph["auth"] = _implied_auth(graph)
    roles = section("roles")
    if "precedence" in roles:
        roles["precedence"] = tuple(roles["precedence"])
    store = section("store")
    store["url"] = normalise_store_url(store.get("url", ""), base)
    rules, _ = parse_scope_rules(section("scope").get("rules", []))
    if rules:
        graph["extra_user_properties"] = scope_graph_properties(rules)
    return Config(
        store=StoreConfig(**store),
        graph=GraphConfig(**graph),
        scope=ScopeConfig(rules),
        notify=_notify(section("notify")),
        sync=SyncConfig(**section("sync")),
        roles=RolesConfig(**roles),
        safety=SafetyConfig(**section("safety")),
        daemon=DaemonConfig(**section("daemon")),
        log=LogConfig(**{k: (v.upper() if k == "level" else v) for k, v in section("log").items()}),
        path=path,
    )


def _notify(raw: dict[str, Any]) -> NotifyConfig:
    values: dict[str, Any] = dict(raw)
    for key in ("urls", "events"):
        if key in values:
            values[key] = tuple(values[key])
    return NotifyConfig(**values)


def resolve_path(explicit: str | None) -> str | None:
    """--config, else $SYNCD_CONFIG, else $CONFIGURATION_DIRECTORY/config.toml, else /etc/syncd/config.toml."""
    if explicit:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    candidates = [Path(d) / "config.toml" for d in os.environ.get("CONFIGURATION_DIRECTORY", "").split(":") if d]
    candidates.append(Path("/etc/syncd/config.toml"))
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return None


def load(path: str | None) -> Config:
    """Load the file at ``path`` (see :func:`resolve_path`); no file at all means every default."""
    resolved = resolve_path(path)
    if resolved is None:
        return build({})
    file = Path(resolved)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{resolved}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{resolved}: cannot read: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{resolved}: not valid TOML: {error}") from None
    return build(data, path=resolved, base=file.resolve().parent)
