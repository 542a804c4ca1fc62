"""``syncd demo``: the whole flow against the built-in Graph simulator, with no credentials.

It starts the simulator on loopback with a small seeded tenant, syncs it into a fresh SQLite file,
shows the plan and the resulting users and teams, then changes the tenant (a group rename, an
unassignment, a role change, a disabled account) and syncs again to show the difference.
"""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config, build
from .reconcile import RunOptions, run_once
from .render import to_text

Echo = Callable[[str], None]


def _show_directory(store: Any, echo: Echo) -> None:
    users = store.reports.users()
    teams = store.reports.teams()
    echo(f"\nUsers ({sum(1 for u in users if u['active'])} active seats, {len(users)} in all):")
    for row in users:
        state = "active" if row["active"] else f"inactive ({row['inactive_reason']})"
        echo(f"  {row['email']:<42} {row['name']:<28} {row['user_type']:<8} {state}")
    echo(f"\nTeams ({len(teams)}):")
    for row in teams:
        echo(f"  {row['name']:<20} {len(row['members'])} members")


def _config_for(directory: Path, base_url: str, token_file: Path, service_principal_id: str) -> str:
    return (
        "# written by `syncd demo`: the simulator's Graph endpoint and a bring-your-own token\n"
        f'[store]\nurl = "{directory / "syncd.db"}"\n\n'
        f'[graph]\nauth = "token_file"\ntoken_file = "{token_file}"\nbase_url = "{base_url}"\n'
        f'service_principal_id = "{service_principal_id}"\n'
    )


def _plan_then_sync(config: Config, store: Any, simulator: Any, echo: Echo, what: str) -> None:
    """`syncd plan`, then `syncd sync`, then the directory, as the demo shows them."""
    echo(f"\n== syncd plan: {what}")
    echo(to_text(run_once(config, RunOptions(dry_run=True), store=store).plan))
    echo("\n== syncd sync")
    simulator.reset_counts()
    result = run_once(config, RunOptions(), store=store)
    requests = simulator.requests
    echo(f"Run {result.run_id} {result.status}: applied {result.applied} changes with {requests} Graph requests.")
    _show_directory(store, echo)


def _command() -> str:
    """How this syncd was started, so the hint can be pasted as it is."""
    started_as = sys.argv[0] if sys.argv else ""
    if started_as.endswith("__main__.py") or not started_as:
        return f"{sys.executable} -m syncd"
    return started_as


def run_demo(directory: str | None, user_count: int, echo: Echo = print) -> int:
    from .simulator import Simulator, generate_tenant
    from .simulator.demo_changes import apply_demo_changes
    from .store import SqlStore

    # the plan output already shows every warning; keep the log quiet
    logging.getLogger("syncd").setLevel(logging.ERROR)

    folder = Path(directory or tempfile.mkdtemp(prefix="syncd-demo-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "syncd.db").unlink(missing_ok=True)
    tenant = generate_tenant(seed=7, users=user_count, groups=3, direct_assignments=max(2, user_count // 6))
    token = secrets.token_urlsafe(24)
    token_file = folder / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)

    with Simulator(tenant, token=token) as simulator:
        config_text = _config_for(folder, simulator.base_url, token_file, tenant.service_principal_id)
        (folder / "config.toml").write_text(config_text)
        import tomllib

        config = build(tomllib.loads(config_text), path=str(folder / "config.toml"))
        store = SqlStore(config.store.url)
        try:
            echo(f"Graph simulator at {simulator.base_url}; store {config.store.url}")
            _plan_then_sync(config, store, simulator, echo, "the first sync would do this")
            echo("\n== Entra changes: a group renamed, a user unassigned, a role changed, an account disabled")
            for line in apply_demo_changes(tenant):
                echo(f"  {line}")
            _plan_then_sync(config, store, simulator, echo, "what changed in Entra")
            echo(f"\nThe demo's files are in {folder}; try: {_command()} --config {folder / 'config.toml'} history")
            echo("(the simulator has stopped, so commands that read Graph will not reach it).")
        finally:
            store.close()
    return 0
