"""The SQL store: tables, migrations, the :class:`Store` repository and the run lock."""

from .repository import Store

__all__ = ["Store"]
