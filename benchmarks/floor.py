"""The floor: the requests of a sync replayed by a bare HTTP client, decoding the JSON and nothing else.

    python -m benchmarks.floor REQUESTS.json CONCURRENCY

REQUESTS.json holds ``{"base": URL, "token": TOKEN, "requests": [[method, target, headers, body], ...]}``
(target below the origin, body in latin-1).  Prints ``{"seconds": ..., "requests": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx


async def replay(base: str, token: str, requests: list[list[Any]], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    decoded = 0

    async def one(client: httpx.AsyncClient, method: str, target: str, extra: dict[str, str], body: str) -> None:
        nonlocal decoded
        async with gate:
            content = body.encode("latin-1") if body else None
            answer = await client.request(method, base + target, content=content, headers={**headers, **extra})
            json.loads(answer.content)
            decoded += 1

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(one(client, *request) for request in requests))
    return decoded


def main() -> None:
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    concurrency = int(sys.argv[2])
    started = time.perf_counter()
    count = asyncio.run(replay(spec["base"], spec["token"], spec["requests"], concurrency))
    print(json.dumps({"seconds": time.perf_counter() - started, "requests": count}))


if __name__ == "__main__":
    main()
