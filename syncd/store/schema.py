"""The tables of the syncd store, in SQLAlchemy Core.

The migrations in ``migrations/versions`` create exactly this schema; a test compares the two on
SQLite and PostgreSQL.  Every timestamp is stored in UTC and read back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

# the column lengths are the limits of what syncd.model calls storable, defined there once
from ..model import EMAIL_LENGTH, ENTRA_ID_LENGTH, NAME_LENGTH, USER_ATTRIBUTES, USER_TYPE_LENGTH

# the run statuses and which count as success are defined once, in syncd.runs
from ..runs import RUN_STATUSES

AUDIT_STATUSES = ("applied", "failed", "error", "warning")
MEMBER_SOURCES = ("sync", "local")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: syncd stores UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment


def utc_now() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(EMAIL_LENGTH), nullable=False, unique=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    # one column per attribute of the registry, created by the migration that added it
    *(Column(attribute.field, String(attribute.length), nullable=True) for attribute in USER_ATTRIBUTES),
    Column("user_type", String(USER_TYPE_LENGTH), nullable=False),
    Column("active", Boolean(create_constraint=False), nullable=False),
    Column("entra_id", String(ENTRA_ID_LENGTH), nullable=True, unique=True),
    Column("inactive_reason", String(32), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("deactivated_at", UTCDateTime(), nullable=True),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("entra_id", String(ENTRA_ID_LENGTH), nullable=True, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("status", String(16), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("changes", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("summary", Text, nullable=True),
    Column("message", Text, nullable=False),
    Column("plan", Text, nullable=True),  # a refused run's plan (syncd.records.plan_record), as JSON
    Column("graph_requests", Integer, nullable=True),
    CheckConstraint(_in("status", RUN_STATUSES), name="status"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("source", String(8), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False),
    Column("added_by_run", Integer, ForeignKey("sync_runs.id"), nullable=True),
    CheckConstraint(_in("source", MEMBER_SOURCES), name="source"),
    Index(None, "user_id"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("sync_runs.id"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("op", String(32), nullable=False),
    Column("object_kind", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("entra_id", String(ENTRA_ID_LENGTH), nullable=True),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("error_code", String(32), nullable=True),
    Column("message", Text, nullable=True),
    CheckConstraint(_in("status", AUDIT_STATUSES), name="status"),
    Index(None, "run_id"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)


# --------------------------------------------------------------------------- the mirror (syncd.mirror)

mirror_users = Table(
    "mirror_users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("properties", Text, nullable=False),  # the Graph properties as JSON (syncd.mirror.user_json)
    Column("hidden", Boolean(create_constraint=False), nullable=False),
)

mirror_groups = Table(
    "mirror_groups",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("display_name", Text, nullable=False),
    Column("member_ids", Text, nullable=False),
)

mirror_assignments = Table(
    "mirror_assignments",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("principal_id", String(64), nullable=False),
    Column("principal_type", String(16), nullable=False),
    Column("app_role_id", String(64), nullable=False),
)
