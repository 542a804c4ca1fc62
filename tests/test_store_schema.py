"""The store's schema comes from its migrations, and opening a database explains what is wrong."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect, text

from syncd.errors import StoreError
from syncd.store import SqlStore
from syncd.store.engine import parse_url
from syncd.store.schema import metadata


@pytest.fixture
def store(sql_store):
    """These tests look beneath the store contract: SQLite and PostgreSQL only."""
    return sql_store


TABLES = {"users", "teams", "team_members", "sync_runs", "audit", "sync_state"}


def _schema_differences(store: SqlStore, target: MetaData) -> list:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, target)


def test_an_empty_database_is_upgraded_to_the_newest_schema(store_url):
    with SqlStore.open(store_url) as store:
        assert store.schema_revision() is None
        store.ensure_schema()
        assert store.schema_revision() == SqlStore.head_revision()
        with store.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) >= TABLES


def test_ensure_schema_twice_changes_nothing(store):
    store.ensure_schema()
    assert store.schema_revision() == SqlStore.head_revision()


def test_the_migrations_create_exactly_the_tables_of_schema_py(store):
    assert _schema_differences(store, metadata) == []


def test_the_comparison_would_notice_a_difference(store):
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["users"].append_column(Column("nickname", Integer))
    assert [difference[0] for difference in _schema_differences(store, changed)] == ["add_column"]


def test_audit_is_indexed_by_run(store):
    with store.engine.connect() as connection:
        indexes = inspect(connection).get_indexes("audit")
    assert any(index["column_names"] == ["run_id"] for index in indexes)


def test_a_database_from_a_newer_syncd_is_refused(store):
    with store.transaction() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError) as raised:
        store.ensure_schema()
    assert raised.value.code == "STORE_SCHEMA"
    assert "9999" in raised.value.message
    assert "upgrade syncd" in raised.value.message


def test_a_database_with_foreign_tables_named_like_syncd_tables_is_refused(store_url):
    with SqlStore.open(store_url) as store:
        with store.transaction() as connection:
            connection.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY)"))
        with pytest.raises(StoreError) as raised:
            store.ensure_schema()
    assert raised.value.code == "STORE_SCHEMA"


def test_reading_before_the_schema_exists_says_to_upgrade(store_url):
    with SqlStore.open(store_url) as store, pytest.raises(StoreError) as raised:
        store.load_state()
    assert raised.value.code == "STORE_SCHEMA"
    assert "syncd db upgrade" in raised.value.message


def test_a_missing_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "syncd.db"
    with pytest.raises(StoreError) as raised:
        SqlStore(f"sqlite:///{missing}")
    assert raised.value.code == "STORE_UNREACHABLE"
    assert "does not exist" in raised.value.message
    assert str(missing.parent) in raised.value.message


def test_an_unreachable_server_is_reported_without_its_password():
    with pytest.raises(StoreError) as raised:
        SqlStore.open("postgresql://syncd:hunter2-secret@127.0.0.1:1/syncd")
    assert raised.value.code == "STORE_UNREACHABLE"
    assert "hunter2-secret" not in raised.value.message
    assert "***" in raised.value.message
    assert "127.0.0.1:1" in raised.value.message


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"])
def test_postgres_urls_use_psycopg(url):
    assert parse_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_refused(url):
    with pytest.raises(StoreError) as raised:
        SqlStore(url)
    assert raised.value.code == "STORE_UNREACHABLE"
    assert "store.url" in raised.value.message


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url):
    with SqlStore.open(sqlite_url) as store, store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_the_revisions_read_from_the_scripts_are_alembics(store):
    from alembic.script import ScriptDirectory

    from syncd.store import migrate

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.head_revision() == scripts.get_current_head()
    assert migrate.known_revisions() == {script.revision for script in scripts.walk_revisions()}
    store.ensure_schema()
    with store.engine.connect() as connection:
        assert migrate.current_revision(connection) == MigrationContext.configure(connection).get_current_revision()


def test_a_database_that_records_two_revisions_is_refused(store):
    store.ensure_schema()
    with store.engine.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
    with pytest.raises(StoreError) as error:
        store.ensure_schema()
    assert error.value.code == "STORE_SCHEMA" and "2 schema revisions" in str(error.value)


@pytest.mark.parametrize(
    "down",
    ['down_revision: Union[str, Sequence[str], None] = "0004"', 'down_revision = ("0004",)'],
    ids=["annotated", "a tuple"],
)
def test_revisions_written_in_alembics_other_styles_are_read_as_alembic_reads_them(tmp_path, monkeypatch, down):
    from alembic.script import ScriptDirectory

    from syncd.store import migrate

    (tmp_path / "9001_more.py").write_text(
        f'"""more"""\nfrom typing import Sequence, Union\n\nrevision: str = "9001"\n{down}\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade() -> None:\n    pass\n"
    )
    monkeypatch.setattr(migrate, "VERSION_LOCATIONS", [*migrate.VERSION_LOCATIONS, tmp_path])
    for cached in (migrate._revisions, migrate.head_revision):
        cached.cache_clear()
    try:
        scripts = ScriptDirectory.from_config(migrate.alembic_config())
        assert migrate.head_revision() == scripts.get_current_head() == "9001"
        assert migrate.known_revisions() == {script.revision for script in scripts.walk_revisions()}
    finally:
        monkeypatch.undo()
        for cached in (migrate._revisions, migrate.head_revision):
            cached.cache_clear()
