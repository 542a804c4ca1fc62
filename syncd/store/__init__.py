"""The store: what syncd asks of one (:mod:`~syncd.store.protocol`), and where it is kept.

:class:`SqlStore` keeps it in SQLite or PostgreSQL (every SQL statement lives under this package:
tables, migrations, the writer, the reports and the run lock); :class:`MemoryStore` keeps it in
this process's memory, for tests and demos.  Both pass one contract test class.
"""

from .memory import MemoryStore, MemoryWriter
from .protocol import AuditRow, Generations, LocalAdmin, Rejected, Reports, Store, Writer
from .sql import SqlStore
from .sql_writer import SqlWriter

__all__ = ["AuditRow", "Generations", "LocalAdmin", "MemoryStore", "Rejected", "Reports", "SqlStore", "Store", "Writer"]


def _implementations(
    sql: SqlStore, memory: MemoryStore, sql_writer: SqlWriter, memory_writer: MemoryWriter
) -> tuple[Store, Store, Writer, Writer]:
    """Never called: mypy checks here that both stores and both writers keep the protocol."""
    return sql, memory, sql_writer, memory_writer
