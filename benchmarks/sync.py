"""Benchmark: full and incremental syncs of seeded tenants of 1,000, 10,000 and 100,000 users.

    python -m benchmarks.sync [--sizes 1000,10000,100000] [--json benchmarks/results.json] [--no-postgres]

For each tenant (a tenth of its users assigned directly, the rest through groups of about 90, three
roles; :mod:`benchmarks.tenant`) served by the simulator, syncd runs as its own process, as cron,
the timer or the daemon run it, and the table shows:

1. the first full sync into an empty SQLite store (``syncd sync``): wall time, Graph requests,
   peak RSS of the syncd process;
2. the floor: the same HTTP requests replayed by a bare HTTP client at the same concurrency,
   decoding the JSON and nothing else (:mod:`benchmarks.floor`), and the ratio of 1 to it;
3. an unchanged incremental run and a run after 1% of the users changed (renames, unassignments,
   role changes, membership moves), both as a one-shot ``syncd sync`` and as a cycle of a running
   daemon (:mod:`benchmarks.cycles`): wall time and Graph requests.  The one-shot unchanged run is
   measured twice: first right after the full sync (it plans in full and settles the store), then
   once more (settled: it takes the last plan, :mod:`syncd.settled`), as cron every minute would;
4. the first full sync into PostgreSQL (127.0.0.1:5432) and its ratio to SQLite;
5. the growth from the smallest tenant to the largest, per user.

Times are measured here and written to the JSON file; no test asserts them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.tenant import build_tenant, change_one_percent
from syncd.simulator import Simulator

TOKEN = "benchmark-token"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CONCURRENCY = 8


def write_config(folder: Path, store_url: str, sim: Simulator, name: str) -> Path:
    token = folder / "token"
    token.write_text(TOKEN)
    config = folder / f"{name}.toml"
    config.write_text(
        f'[store]\nurl = "{store_url}"\n\n'
        f'[graph]\nauth = "token_file"\ntoken_file = "{token}"\nbase_url = "{sim.base_url}"\n'
        f'service_principal_id = "{sim.tenant.service_principal_id}"\nmax_concurrency = {CONCURRENCY}\n\n'
        "[safety]\nmax_deactivations = 1000000000\nmax_team_deletions = 1000000000\nmax_percent = 100\n"
    )
    return config


def syncd(config: Path, *args: str) -> tuple[float, int]:
    """``syncd sync`` in a process of its own: seconds and peak RSS (MB)."""
    command = [sys.executable, "-m", "syncd", "--config", str(config), "-q", "sync", *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"syncd sync exited {code}: {process.stderr.read()[-2000:] if process.stderr else ''}")
    return seconds, usage.ru_maxrss // 1024


def floor(folder: Path, sim: Simulator, captured: list[tuple[str, str, dict[str, str], bytes]]) -> float:
    spec = folder / "requests.json"
    spec.write_text(
        json.dumps(
            {
                "base": sim.url,
                "token": TOKEN,
                "requests": [
                    [method, target, headers, body.decode("latin-1")] for method, target, headers, body in captured
                ],
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", str(spec), str(CONCURRENCY)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out)["seconds"])


class Daemon:
    """A process that runs daemon cycles when told to (:mod:`benchmarks.cycles`)."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cycles", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def cycle(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        _, _, usage = os.wait4(self.process.pid, 0)
        return usage.ru_maxrss // 1024


def postgres_url() -> str | None:
    try:
        import psycopg

        schema = f"syncd_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        return f"{POSTGRES}?options=-csearch_path%3D{schema}"
    except Exception as error:
        print(f"  (PostgreSQL at 127.0.0.1:5432 not measured: {error})", file=sys.stderr)
        return None


def measure(users: int, with_postgres: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"syncd-bench-{users}-"))
    rng = random.Random(users)
    started = time.perf_counter()
    tenant = build_tenant(users)
    row: dict[str, Any] = {"users": users, "tenant_seconds": round(time.perf_counter() - started, 2)}
    print(f"{users} users: tenant built in {row['tenant_seconds']}s", file=sys.stderr)
    with Simulator(tenant, token=TOKEN) as sim:
        config = write_config(folder, str(folder / "syncd.db"), sim, "sqlite")
        sim.reset_counts()
        sim.captured = []
        seconds, rss = syncd(config)
        captured, sim.captured = sim.captured, None
        row["full"] = {"seconds": round(seconds, 2), "requests": sim.requests, "peak_rss_mb": rss}
        row["floor_seconds"] = round(floor(folder, sim, captured), 2)
        row["full_to_floor"] = round(seconds / row["floor_seconds"], 2)

        sim.reset_counts()
        seconds, rss = syncd(config)
        row["unchanged_first_oneshot"] = {"seconds": round(seconds, 2), "requests": sim.requests, "peak_rss_mb": rss}
        sim.reset_counts()
        seconds, rss = syncd(config)  # settled: the run before it changed nothing
        row["unchanged_oneshot"] = {"seconds": round(seconds, 2), "requests": sim.requests, "peak_rss_mb": rss}
        row["one_percent_changes"] = change_one_percent(tenant, rng)
        sim.reset_counts()
        seconds, rss = syncd(config)
        row["one_percent_oneshot"] = {"seconds": round(seconds, 2), "requests": sim.requests, "peak_rss_mb": rss}

        daemon = Daemon(config)
        try:
            row["daemon_first_cycle"] = daemon.cycle()
            row["daemon_unchanged"] = daemon.cycle()
            change_one_percent(tenant, rng)
            row["daemon_one_percent"] = daemon.cycle()
            row["daemon_after_change"] = daemon.cycle()
        finally:
            row["daemon_peak_rss_mb"] = daemon.close()

        if with_postgres and (url := postgres_url()) is not None:
            pg_config = write_config(folder, url, sim, "postgres")
            sim.reset_counts()
            seconds, rss = syncd(pg_config)
            row["postgres_full"] = {"seconds": round(seconds, 2), "requests": sim.requests, "peak_rss_mb": rss}
            row["postgres_to_sqlite"] = round(seconds / row["full"]["seconds"], 2)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| users | full sync | requests | peak RSS | floor | full/floor | unchanged, first (one-shot) "
        "| unchanged (one-shot) | unchanged (daemon) | 1% (one-shot) | 1% (daemon) | PostgreSQL full | PG/SQLite |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        pg = row.get("postgres_full")
        lines.append(
            f"| {row['users']:,} | {row['full']['seconds']} s | {row['full']['requests']:,} "
            f"| {row['full']['peak_rss_mb']} MB | {row['floor_seconds']} s | {row['full_to_floor']} "
            f"| {row['unchanged_first_oneshot']['seconds']} s ({row['unchanged_first_oneshot']['requests']} req) "
            f"| {row['unchanged_oneshot']['seconds']} s ({row['unchanged_oneshot']['requests']} req) "
            f"| {row['daemon_unchanged']['seconds']:.2f} s ({row['daemon_unchanged']['requests']} req) "
            f"| {row['one_percent_oneshot']['seconds']} s ({row['one_percent_oneshot']['requests']} req) "
            f"| {row['daemon_one_percent']['seconds']:.2f} s ({row['daemon_one_percent']['requests']} req) "
            f"| {pg['seconds'] if pg else '-'} s | {row.get('postgres_to_sqlite', '-')} |"
        )
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        growth = (large["full"]["seconds"] / large["users"]) / (small["full"]["seconds"] / small["users"])
        lines.append("")
        lines.append(
            f"Growth: a full sync costs {small['full']['seconds'] / small['users'] * 1000:.2f} ms per user at "
            f"{small['users']:,} users and {large['full']['seconds'] / large['users'] * 1000:.2f} ms at "
            f"{large['users']:,} (x{growth:.2f} per user)."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--json", default="benchmarks/results.json", help="where to write the measurements")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL measurement")
    args = parser.parse_args()
    rows = [measure(int(size), not args.no_postgres) for size in args.sizes.split(",")]
    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
