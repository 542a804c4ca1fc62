"""Daemon cycles on demand: the daemon's code path, one cycle per ``run`` line on stdin.

    python -m benchmarks.cycles CONFIG

Each cycle is ``run_once`` with the daemon's :class:`~syncd.reconcile.RunMemory`, as ``syncd run``
makes it; one JSON line per cycle: seconds, Graph requests, status, changes applied.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from syncd.config import load
from syncd.reconcile import RunMemory, RunOptions, run_once


def main() -> None:
    config = load(sys.argv[1])
    logging.getLogger("syncd").setLevel(logging.ERROR)
    memory = RunMemory()
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        started = time.perf_counter()
        result = run_once(config, RunOptions(trigger="daemon", memory=memory))
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "requests": result.graph_requests,
                    "status": str(result.status),
                    "applied": result.applied,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
