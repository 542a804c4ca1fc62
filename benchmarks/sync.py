"""Benchmark: a full sync of a seeded tenant through the real Graph client, the simulator and SQLite.

    python -m benchmarks.sync [--users 5000] [--groups 50] [--direct 500] [--store URL]

Prints the time of each stage (fetch, plan, apply) for a first sync and for a second, unchanged one,
with the Graph request counts. Times are measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from syncd.config import build
from syncd.graph.fetch import fetch_snapshot
from syncd.plan import diff
from syncd.reconcile import RunOptions, run_once
from syncd.simulator import Simulator, generate_tenant
from syncd.store import SqlStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--direct", type=int, default=500)
    parser.add_argument("--store", default="", help="SQLAlchemy URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    logging.getLogger("syncd").setLevel(logging.ERROR)  # the per-change lines would drown the timings

    folder = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    started = time.perf_counter()
    tenant = generate_tenant(seed=1, users=args.users, groups=args.groups, direct_assignments=args.direct)
    print(
        f"tenant: {args.users} users, {args.groups} groups, {args.direct} direct ({time.perf_counter() - started:.2f}s)"
    )
    token = folder / "token"
    token.write_text("bench-token")
    with Simulator(tenant, token="bench-token") as simulator:
        config = build(
            {
                "store": {"url": args.store or str(folder / "syncd.db")},
                "graph": {
                    "auth": "token_file",
                    "token_file": str(token),
                    "base_url": simulator.base_url,
                    "service_principal_id": tenant.service_principal_id,
                },
                "safety": {"max_deactivations": 10**9, "max_team_deletions": 10**9},
            },
            base=folder,
        )
        store = SqlStore(config.store.url)
        store.ensure_schema()
        try:
            for label in ("first sync", "unchanged sync"):
                simulator.reset_counts()
                t0 = time.perf_counter()
                snapshot = fetch_snapshot(config.graph, config.sync)
                t1 = time.perf_counter()
                state = store.load_state()
                t2 = time.perf_counter()
                plan = diff(snapshot, state, config.policy)
                t3 = time.perf_counter()
                requests = simulator.requests
                result = run_once(config, RunOptions(), store=store)
                t4 = time.perf_counter()
                print(
                    f"{label}: fetch {t1 - t0:.2f}s ({requests} requests, {simulator.batch_items} batch items), "
                    f"load {t2 - t1:.2f}s, plan {t3 - t2:.2f}s ({len(plan.changes)} changes), "
                    f"whole run_once {t4 - t3:.2f}s ({result.status}, {result.applied} applied)"
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()
