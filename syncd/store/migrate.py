"""Schema migrations: Alembic driven from code, with the scripts shipped inside the package.

No ``alembic.ini`` is needed: :func:`alembic_config` points Alembic at ``migrations/`` beside
this module and hands it the connection to migrate.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect

from ..errors import StoreError
from .schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: a run that finds its schema current never needs it, and
# importing it (with Mako) costs a run about 70 ms.

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


@cache
def head_revision() -> str:
    """The newest revision this syncd knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@cache
def known_revisions() -> frozenset[str]:
    """Every revision this syncd ships."""
    from alembic.script import ScriptDirectory

    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


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
