"""Configuration: every problem at once, each with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import config as config_module
from syncd.config import build, load
from syncd.errors import ConfigError, ExitCode

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def test_example_config_parses_and_holds_the_defaults(monkeypatch):
    loaded = load(str(EXAMPLE))
    assert loaded.sync.scope == "assigned"
    assert loaded.safety.max_deactivations == 500
    assert loaded.safety.max_team_deletions == 50
    assert loaded.daemon.interval_minutes == 40
    assert loaded.graph.auth == "client_secret"


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text()
    for section, keys in config_module.SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            if key != "map":
                assert f"{key} =" in text, f"{section}.{key} is not documented"


def test_every_problem_is_reported_at_once_with_its_key_path():
    with pytest.raises(ConfigError) as caught:
        build(
            {
                "sync": {"scope": "everyone", "nested_groups": "yes", "colour": 1},
                "safety": {"max_deactivations": -1},
                "roles": {"precedence": ["admin", "boss"], "map": {"Owner": "superuser"}},
                "weird": {},
            }
        )
    problems = caught.value.problems
    assert 'sync.scope: must be "assigned" or "all"' in problems
    assert "sync.nested_groups: must be true or false" in problems
    assert "sync.colour: unknown key" in problems
    assert "safety.max_deactivations: must be at least 0" in problems
    assert any(p.startswith("roles.precedence: unknown entries ['boss']") for p in problems)
    assert any(p.startswith("roles.map: Owner") for p in problems)
    assert any(p.startswith("weird: unknown section") for p in problems)
    assert caught.value.exit_code == ExitCode.CONFIG


def test_graph_section_needs_an_application_and_credentials():
    with pytest.raises(ConfigError) as caught:
        build({"graph": {"client_id": "x"}})
    assert "graph: set service_principal_id or app_id (the enterprise application to sync)" in caught.value.problems
    assert 'graph.tenant_id: required for auth "client_secret"' in caught.value.problems


def test_token_file_auth_is_implied_by_token_file():
    loaded = build({"graph": {"service_principal_id": "sp", "token_file": "/run/token"}})
    assert loaded.graph.auth == "token_file"


def test_missing_and_malformed_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load(str(tmp_path / "absent.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[sync\nscope = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(str(bad))


def test_relative_sqlite_path_is_taken_from_the_config_folder(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text('[store]\nurl = "data/syncd.db"\n')
    assert load(str(file)).store.url == f"sqlite:///{tmp_path / 'data' / 'syncd.db'}"


def test_default_store_is_sqlite_in_the_state_directory(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/syncd")
    assert build({}).store.url == "sqlite:////var/lib/syncd/syncd.db"


def test_secret_is_not_in_the_repr():
    loaded = build(
        {"graph": {"service_principal_id": "sp", "tenant_id": "t", "client_id": "c", "client_secret": "hunter2"}}
    )
    assert "hunter2" not in repr(loaded)


def test_the_example_store_url_names_an_absolute_path():
    """``sqlite:///var/lib/...`` (three slashes) would be a path relative to the working directory."""
    from sqlalchemy.engine import make_url

    (line,) = [line for line in EXAMPLE.read_text().splitlines() if line.startswith("# url = ")]
    url = line.split('"')[1]
    database = make_url(build({"store": {"url": url}}).store.url).database
    assert database is not None and Path(database).is_absolute(), database
