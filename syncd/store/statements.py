"""Statements shared by the SQL store and the lock."""

from __future__ import annotations

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite

from .schema import sync_state, utc_now


def upsert_state(dialect_name: str, key: str, value: str) -> Insert:
    """INSERT … ON CONFLICT (key) DO UPDATE for one ``sync_state`` entry."""
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = insert(sync_state).values(key=key, value=value, updated_at=utc_now())
    return statement.on_conflict_do_update(
        index_elements=[sync_state.c.key],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
    )
