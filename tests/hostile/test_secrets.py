"""No secret leaves the process: a Graph that echoes the token in its error messages is masked on
every path out (stdout, stderr, logs in both formats, the store, snapshot files)."""

from __future__ import annotations

import sqlite3

import pytest

from syncd.config import GraphConfig
from syncd.errors import GraphError, SyncdError
from syncd.graph.auth import resolve_client_secret
from syncd.redaction import REDACTED, redact, register_secret
from tests.test_cli_graph import TOKEN, Graphed
from tests.test_cli_graph import graphed as graphed  # the fixture, re-exported for pytest

ECHO = {"error": {"code": "generalException", "message": f"cannot serve the request with token {TOKEN}"}}
HEADER_ECHO = {"error": {"code": "InvalidAuthenticationToken", "message": f"Authorization header was {TOKEN}"}}


def every_output(graphed: Graphed, *commands: tuple[str, ...]) -> str:
    """stdout and stderr of each command, joined."""
    seen = []
    for command in commands:
        _, out, err = graphed(*command)
        seen.extend([out, err])
    return "\n".join(seen)


def store_dump(graphed: Graphed) -> str:
    connection = sqlite3.connect(graphed.tmp_path / "syncd.db")
    try:
        tables = [row[0] for row in connection.execute("select name from sqlite_master where type = 'table'")]
        return "\n".join(repr(row) for table in tables for row in connection.execute(f'select * from "{table}"'))
    finally:
        connection.close()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_token_echoed_in_graph_errors_is_masked_everywhere(graphed, log_format, tmp_path):
    graphed.write_config(f'\n[log]\nformat = "{log_format}"\n')
    graphed("sync")
    graphed.sim.fail(r"appRoleAssignedTo", status=503, times=None, retry_after="0", body=ECHO)
    snapshot = tmp_path / "snapshot.json"
    seen = every_output(
        graphed,
        ("sync",),
        ("sync", "--json"),
        ("plan",),
        ("plan", "--json"),
        ("snapshot", "--out", str(snapshot)),
        ("check",),
        ("history",),
        ("history", "--json"),
        ("status", "--json"),
        ("log", "--json"),
    )
    graphed.sim.clear_faults()
    sp = graphed.tenant.service_principal_id
    graphed.sim.fail(rf"/servicePrincipals/{sp}", status=401, times=None, body=HEADER_ECHO)
    seen += every_output(graphed, ("sync",), ("sync", "--json"), ("history", "--json"))
    assert "cannot serve the request" in seen and "Authorization header was" in seen, "the echo was not exercised"
    assert TOKEN not in seen
    assert TOKEN not in snapshot.read_text()
    assert TOKEN not in store_dump(graphed)
    assert REDACTED in seen


def test_a_registered_secret_is_masked_in_every_error_message():
    register_secret("s3cr3t-Value-With-No-Pattern")
    error = GraphError("Graph said: s3cr3t-Value-With-No-Pattern is not accepted", code="GRAPH_AUTH")
    assert "s3cr3t-Value-With-No-Pattern" not in error.message and REDACTED in error.message
    assert "s3cr3t-Value-With-No-Pattern" not in str(SyncdError("again: s3cr3t-Value-With-No-Pattern"))


def test_the_client_secret_is_registered_as_soon_as_it_is_read(tmp_path, monkeypatch):
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("an-unremarkable-client-secret-42\n")
    resolve_client_secret(GraphConfig(client_secret_file=str(secret_file)))
    assert redact("echo: an-unremarkable-client-secret-42!") == f"echo: {REDACTED}!"


def test_short_values_are_not_registered_so_output_stays_readable():
    register_secret("abc")
    assert redact("abc def") == "abc def"
