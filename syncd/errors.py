"""One error tree for syncd.  Every error carries a code; every code has a meaning and a remedy.

The table below is what ``syncd errors`` prints and what the README reproduces.  Exit codes are a
contract with scripts and live in :class:`ExitCode`; :func:`exit_code_for` maps errors to them in
one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .model import escape
from .redaction import redact


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    PARTIAL = 3
    REFUSED = 4
    LOCKED = 75
    CONFIG = 78


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    meaning: str
    remedy: str


_CODES = (
    # per-object problems: the object is skipped, the run goes on and exits 3
    ErrorCode(
        "USER_NO_EMAIL",
        "A user in scope has no usable email (the configured email attribute is empty or not an address).",
        'Fill in userPrincipalName (or mail, if sync.email_attribute is "mail") in Entra ID.',
    ),
    ErrorCode(
        "USER_EMAIL_CONFLICT",
        "Another user already has this email, or two users in scope map to the same email.",
        "Make the addresses unique in Entra ID, or remove or rename the conflicting local user (`syncd users`).",
    ),
    ErrorCode(
        "USER_NOT_READ",
        "A user in scope (assigned, or a member of an assigned group) has no user object in what Graph "
        "returned; it is left exactly as it is (never deactivated, changed or removed from a team).",
        "Nothing if it passes; the next run reads the user again. If it persists, check the user in Entra ID "
        "and run `syncd check`.",
    ),
    ErrorCode(
        "USER_INVALID",
        "A user's id, jobTitle or other value cannot be stored (a control character, NUL, a lone surrogate, "
        "or longer than its column); the user is left exactly as it is.",
        "Correct the named attribute in Entra ID.",
    ),
    ErrorCode(
        "TEAM_NAME_CONFLICT",
        "Two assigned groups have the same name, or a group's name is taken by a team another group manages.",
        "Rename one of the groups in Entra ID.",
    ),
    ErrorCode(
        "TEAM_INVALID",
        "A group's id or displayName cannot be stored (empty, a control character, NUL, a lone surrogate, or "
        "more than 255 characters); its team is left exactly as it is.",
        "Rename the group in Entra ID.",
    ),
    ErrorCode(
        "LAST_ADMIN",
        "Unassigning or demoting this user would leave the store without an active admin; that one change "
        "is held back and everything else is applied.",
        "Assign another admin in Entra ID; or, if intended, run `syncd sync --allow-last-admin`.",
    ),
    ErrorCode(
        "NO_ADMIN_LEFT",
        "The last active admin was deactivated because Entra disabled or deleted the account; the store has "
        "no active admin.",
        "Assign an admin in Entra ID (or make one locally with `syncd users create --type admin`).",
    ),
    ErrorCode(
        "APPLY_FAILED",
        "The store rejected one change.",
        "Read the message in `syncd log`; the change is retried at the next run.",
    ),
    # warnings: the object is synced, the audit keeps the note
    ErrorCode(
        "NAME_NORMALISED",
        "Special characters were removed from a display name (warning).",
        "Nothing; rename the user in Entra ID if the stored name reads badly.",
    ),
    ErrorCode(
        "OUT_OF_SCOPE",
        "An assigned user is admitted by no scope rule ([[scope.rules]]) and is deactivated (reason "
        "out_of_scope); the message names the conditions that failed (warning).",
        "Nothing if intended; otherwise correct the user's attributes in Entra ID or the rules.",
    ),
    ErrorCode(
        "ROLE_UNKNOWN",
        "A user holds an app role that maps to no user type; the default type was used (warning).",
        "Name the role admin, member, viewer, guest or a number, or map it in [roles.map].",
    ),
    # Graph
    ErrorCode(
        "GRAPH_AUTH",
        "Microsoft Graph rejected the credentials (401).",
        "Check graph.tenant_id, graph.client_id and the secret, certificate or token; run `syncd check`.",
    ),
    ErrorCode(
        "GRAPH_PERMISSION",
        "The application lacks a Graph permission (403, or group members listed with their ids only, "
        "which means User.Read.All is missing); the reads that need it fail, the run is incomplete "
        "and nothing is deprovisioned by absence.",
        "Grant the named "
        "application permission (Application.Read.All, User.Read.All, GroupMember.Read.All) "
        "with admin consent; `syncd check` tests each one.",
    ),
    ErrorCode(
        "GRAPH_NOT_FOUND",
        "An object Graph was asked for does not exist (404): the service principal, an assigned "
        "group deleted between two reads, or a user or group assigned moments ago that Graph does not "
        "find by id yet (replication lag).",
        "Check graph.service_principal_id or graph.app_id; an assigned object is read again at the next run.",
    ),
    ErrorCode(
        "GRAPH_THROTTLED",
        "Graph kept answering 429 after every retry.",
        "Nothing; the next run retries. Lower graph.max_concurrency if it persists.",
    ),
    ErrorCode(
        "GRAPH_UNAVAILABLE",
        "Graph could not be reached or answered 5xx after every retry.",
        "Nothing; the next run retries. Check the network and graph.base_url.",
    ),
    ErrorCode(
        "GRAPH_BAD_RESPONSE",
        "Graph answered something syncd could not read (a required field missing or not understood, "
        "a next link that leads back); that read fails and the run is incomplete.",
        "Report it with the message; run `syncd check`.",
    ),
    ErrorCode(
        "SNAPSHOT_INCOMPLETE",
        "Part of the snapshot could not be read, so nothing was deprovisioned by absence.",
        "See the failures listed with it; the next run retries.",
    ),
    ErrorCode(
        "SNAPSHOT_INVALID",
        "A snapshot file could not be read.",
        "Check the file against the format in the README (`syncd snapshot --out FILE` writes it).",
    ),
    # safety
    ErrorCode(
        "SAFETY_DEACTIVATIONS",
        "The plan deactivates more users than safety.max_deactivations, more than safety.max_percent of the "
        "active managed users, or all of them; nothing was applied.",
        "Review `syncd plan`; if intended, run `syncd sync --allow deactivations`.",
    ),
    ErrorCode(
        "SAFETY_TEAM_DELETIONS",
        "The plan deletes more teams than safety.max_team_deletions, more than safety.max_percent of the "
        "managed teams, or all of them; nothing was applied.",
        "Review `syncd plan`; if intended, run `syncd sync --allow team_deletions`.",
    ),
    ErrorCode(
        "SAFETY_MEMBER_REMOVALS",
        "The plan removes more members from teams than safety.max_member_removals, more than "
        "safety.max_percent of the memberships of managed teams, or all of them; nothing was applied.",
        "Review `syncd plan`; if intended, run `syncd sync --allow member_removals`.",
    ),
    ErrorCode(
        "SAFETY_TYPE_DOWNGRADES",
        "The plan changes more users to a lower-ranked type (roles.precedence) than safety.max_type_downgrades, "
        "more than safety.max_percent of the active managed users, or all of them; nothing was applied.",
        "Review `syncd plan`; if intended, run `syncd sync --allow type_downgrades`.",
    ),
    ErrorCode(
        "PLAN_STALE",
        "A saved plan was not applied: the store changed since it was made, or it is older than "
        "safety.plan_max_age_minutes.",
        "Make a new plan with `syncd plan --out FILE`, review it, and apply that.",
    ),
    ErrorCode(
        "PLAN_INVALID",
        "The file given to `syncd apply` is not a plan syncd made, or was changed after it was made.",
        "Save the plan again with `syncd plan --out FILE`; never edit a saved plan.",
    ),
    ErrorCode(
        "NOTIFY_FAILED",
        "A notification could not be delivered to every URL in [notify] urls.",
        "Check the URLs (Apprise's syntax) and that the services can be reached; `syncd notify test` tries again.",
    ),
    # infrastructure
    ErrorCode(
        "CONFIG_INVALID",
        "The configuration file is missing, malformed or has invalid keys.",
        "Fix the keys named in the message; `syncd config check` validates a file.",
    ),
    ErrorCode(
        "STORE_UNREACHABLE",
        "The database could not be opened or reached.",
        "Check store.url, that the database server runs, and file permissions.",
    ),
    ErrorCode(
        "STORE_SCHEMA",
        "The database schema is missing or newer than this syncd.",
        "Run `syncd db upgrade`, or upgrade syncd.",
    ),
    ErrorCode(
        "STORE_FAILED",
        "A database error aborted the run; nothing of it was written.",
        "Read the message; the next run retries.",
    ),
    ErrorCode("LOCKED", "Another syncd run holds the lock.", "Wait for it, or pass --wait SECONDS."),
    ErrorCode(
        "NOT_FOUND", "The user or group named on the command line does not exist.", "Check the name, email or id."
    ),
    ErrorCode("INVALID_INPUT", "A value given on the command line is not valid.", "Read the message."),
)

CODES: dict[str, ErrorCode] = {entry.code: entry for entry in _CODES}
USAGE_CODES = frozenset({"NOT_FOUND", "INVALID_INPUT", "PLAN_INVALID"})
"""Codes that mean the command line named something wrong: exit 2, like any usage error."""


class SyncdError(Exception):
    """Base of every error syncd reports to the user.  ``code`` is a key of :data:`CODES`."""

    code = "STORE_FAILED"
    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, code: str | None = None) -> None:
        # a token Graph echoes in an error never travels on; nor does a control character, NUL or
        # lone surrogate it sent (line breaks stay: a configuration error lists a problem a line)
        super().__init__(redact("\n".join(escape(line) for line in message.split("\n"))))
        if code is not None:
            self.code = code
        if self.code in USAGE_CODES:
            self.exit_code = ExitCode.USAGE
        assert self.code in CODES, self.code

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(SyncdError):
    code = "CONFIG_INVALID"
    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class StoreError(SyncdError):
    code = "STORE_FAILED"


class GraphError(SyncdError):
    code = "GRAPH_UNAVAILABLE"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, graph_code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.graph_code = graph_code
        """The error code Graph's answer carried (``syncStateNotFound``), if any."""


class SnapshotError(SyncdError):
    code = "SNAPSHOT_INVALID"


class LockedError(SyncdError):
    code = "LOCKED"
    exit_code = ExitCode.LOCKED


class InputError(SyncdError):
    code = "INVALID_INPUT"
    exit_code = ExitCode.USAGE


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, SyncdError):
        return error.exit_code
    return ExitCode.FAILED
