"""Schema migrations: Alembic driven from code, with the scripts shipped inside the package.

No ``alembic.ini`` is needed: :func:`alembic_config` points Alembic at ``migrations/`` beside
this module and hands it the connection to migrate.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from ..errors import StoreError
from .schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: a run that finds its schema current never needs it (its
# revision is read from Alembic's table, the newest one from the scripts' text), and importing it
# (with Mako) costs a run about 70 ms.

VERSION_TABLE = "alembic_version"

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_LOCATIONS: list[Path] = [MIGRATIONS / "versions"]
"""Where the revisions live: the packaged ones (a test adds a folder of its own beside them)."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations, bound to ``connection`` if given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in VERSION_LOCATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


_REVISION = re.compile(r"""^revision(?:\s*:[^=\n]*)?\s*=\s*["']([^"']+)["']\s*$""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision(?:\s*:[^=\n]*)?\s*=\s*(?:None|["']([^"']+)["'])\s*$""", re.MULTILINE)


@cache
def _revisions() -> dict[str, str | None] | None:
    """Revision -> the revision it follows, read from the scripts' ``revision`` and
    ``down_revision`` lines (a test holds this to what Alembic reads from them); None when a script
    says it otherwise (a merge, say): Alembic is then asked."""
    found: dict[str, str | None] = {}
    for folder in VERSION_LOCATIONS:
        for script in sorted(folder.glob("*.py")):
            text = script.read_text(encoding="utf-8")
            revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
            if revision is None or down is None:
                return None
            found[revision.group(1)] = down.group(1)
    return found


@cache
def head_revision() -> str:
    """The newest revision this syncd knows: the one no other follows."""
    revisions = _revisions()
    if revisions is None:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        if head is None:
            raise StoreError("the migrations have no head revision", code="STORE_SCHEMA")
        return head
    heads = set(revisions) - {down for down in revisions.values() if down is not None}
    if len(heads) != 1:
        raise StoreError(f"the migrations have {len(heads)} heads; expected one", code="STORE_SCHEMA")
    return heads.pop()


def known_revisions() -> frozenset[str]:
    """Every revision this syncd ships."""
    revisions = _revisions()
    if revisions is None:
        from alembic.script import ScriptDirectory

        return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())
    return frozenset(revisions)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (Alembic's ``alembic_version`` table); None when it has
    never been migrated."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = [row[0] for row in connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]
    if len(rows) > 1:
        raise StoreError(
            f"the database records {len(rows)} schema revisions ({', '.join(sorted(rows))}); expected one",
            code="STORE_SCHEMA",
        )
    return rows[0] if rows else None


def has_syncd_tables(connection: Connection) -> bool:
    present = set(inspect(connection).get_table_names())
    return bool(present & set(metadata.tables))


def check_revision(revision: str | None, connection: Connection) -> None:
    """Raise STORE_SCHEMA unless the database can be brought to head by upgrading."""
    if revision is None:
        if has_syncd_tables(connection):
            raise StoreError(
                "the database has syncd tables but no schema revision; it was not created by "
                "`syncd db upgrade`: use an empty database",
                code="STORE_SCHEMA",
            )
        return
    if revision not in known_revisions():
        raise StoreError(
            f"the database schema is at revision {revision}, which this syncd does not know "
            f"(newest known: {head_revision()}); it was written by a newer syncd: upgrade syncd",
            code="STORE_SCHEMA",
        )


def upgrade(connection: Connection) -> None:
    """``alembic upgrade head`` inside the caller's transaction."""
    check_revision(current_revision(connection), connection)
    from alembic import command

    command.upgrade(alembic_config(connection), "head")
