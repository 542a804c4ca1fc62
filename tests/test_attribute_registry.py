"""A new user attribute is one line in the registry plus a migration that adds its column.

The registry (``syncd.model.USER_ATTRIBUTES``) is read when syncd's modules are imported, so the
fixture runs in a process of its own: it adds ``department`` to the registry and a migration to
the store's revisions before it imports the rest of syncd, then syncs a simulated tenant twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MIGRATION = '''
"""users.department

Revision ID: 9001
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("department", sa.String(length=255), nullable=True))
    op.add_column("users", sa.Column("office", sa.String(length=255), nullable=True))
'''

FIXTURE = """
import json
import sys
from pathlib import Path

import syncd.model as model

model.USER_ATTRIBUTES = (
    *model.USER_ATTRIBUTES,
    model.UserAttribute("department", "department"),  # the one line
    model.UserAttribute("office", "officeLocation", audited=False),  # and one kept out of the audit
)

import syncd.store.migrate as migrate

migrate.VERSION_LOCATIONS.append(Path(sys.argv[1]))  # and the migration

from sqlalchemy import select

from syncd.config import build
from syncd.graph.reads import USER_FIELDS
from syncd.graph.snapshot_file import snapshot_to_json
from syncd.reconcile import RunOptions, load_snapshot, run_once
from syncd.simulator import Simulator, generate_tenant
from syncd.store import SqlStore
from syncd.store.schema import users

folder = Path(sys.argv[2])
tenant = generate_tenant(seed=5, users=20, groups=2, direct_assignments=5)
(folder / "token").write_text("registry-token")
with Simulator(tenant, token="registry-token") as simulator:
    config = build(
        {
            "store": {"url": str(folder / "syncd.db")},
            "graph": {
                "auth": "token_file",
                "token_file": str(folder / "token"),
                "base_url": simulator.base_url,
                "service_principal_id": tenant.service_principal_id,
            },
        },
        base=folder,
    )
    first = run_once(config, RunOptions(trigger="test"))
    with SqlStore(config.store.url) as store:
        stored = {
            row.entra_id: row.department
            for row in store.engine.connect().execute(select(users.c.entra_id, users.c.department))
        }
        revision = store.schema_revision()
    with SqlStore(config.store.url) as store:
        created_audit = [row["after"] for row in store.reports.audit(first.run_id) if row["op"] == "create_user"]
    in_tenant = {user_id: tenant.get_user(user_id).get("department") for user_id in stored if user_id}
    mover = sorted(entra_id for entra_id in stored if entra_id)[0]
    tenant.update_user(mover, department="Research")
    second = run_once(config, RunOptions(trigger="test"))
    with SqlStore(config.store.url) as store:
        audit = [row for row in store.reports.audit(second.run_id) if row["op"] == "update_user"]
    snapshot = snapshot_to_json(load_snapshot(config, RunOptions()))
    print(json.dumps({
        "select": USER_FIELDS,
        "revision": revision,
        "created": [[f[0] for f in c.fields] for c in first.plan.changes if c.op == "create_user"],
        "stored": stored,
        "tenant": in_tenant,
        "mover": mover,
        "updates": [{"entra_id": c.entra_id, "fields": [list(f) for f in c.fields]} for c in second.plan.changes],
        "audit": audit,
        "snapshot_user_keys": sorted(snapshot["users"][0]),
        "created_audit": created_audit,
    }))
"""


@pytest.fixture(scope="module")
def department(tmp_path_factory) -> dict:
    from syncd.store.migrate import head_revision

    folder = tmp_path_factory.mktemp("registry")
    versions = folder / "versions"
    versions.mkdir()
    (versions / "9001_department.py").write_text(MIGRATION.format(head=head_revision()))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FIXTURE), str(versions), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_new_attribute_is_selected_from_graph(department):
    assert department["select"].split(",")[-3:] == ["department", "officeLocation", "accountEnabled"]


def test_the_migration_adds_its_column_and_the_store_is_at_its_revision(department):
    assert department["revision"] == "9001"


def test_created_users_carry_it_into_the_store(department):
    assert all("department" in fields and "office" in fields for fields in department["created"])
    managed = {entra_id: value for entra_id, value in department["stored"].items() if entra_id}
    assert managed and managed == {entra_id: department["tenant"][entra_id] for entra_id in managed}
    assert any(managed.values())


def test_a_change_in_graph_is_an_update_in_the_plan_and_in_the_audit(department):
    (update,) = department["updates"]
    assert update["entra_id"] == department["mover"]
    (field,) = update["fields"]
    assert field[0] == "department" and field[2] == "Research"
    (row,) = department["audit"]
    assert row["after"] == {"department": "Research"}
    assert row["before"] == {"department": department["stored"][department["mover"]]}


def test_snapshot_files_carry_it_by_its_graph_name(department):
    assert "department" in department["snapshot_user_keys"]


def test_an_attribute_the_registry_keeps_out_of_the_audit_is_not_in_its_rows(department):
    assert department["created_audit"]
    assert all("department" in after and "office" not in after for after in department["created_audit"])
