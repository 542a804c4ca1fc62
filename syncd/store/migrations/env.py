"""Alembic environment for the syncd store.

syncd drives Alembic from code (:mod:`syncd.store.migrate`) and hands over an open connection
in ``config.attributes["connection"]``; the migrations run inside that connection's transaction.
"""

from __future__ import annotations

from alembic import context

from syncd.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the syncd migrations run through syncd (`syncd db upgrade`), not the alembic command")

context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
