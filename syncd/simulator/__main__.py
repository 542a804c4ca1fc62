"""Run the Graph simulator in the foreground: ``python -m syncd.simulator --port 8080 --seed 1``."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

from syncd.simulator.generate import generate_tenant
from syncd.simulator.server import Simulator


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m syncd.simulator", description="Serve a generated Entra ID tenant as Microsoft Graph."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated tenant")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--direct-assignments", type=int, default=20)
    parser.add_argument("--nested-groups", type=int, default=0)
    parser.add_argument("--app-name", default="Workspace", help="display name of the enterprise application")
    parser.add_argument("--token", default="test-token", help="the bearer token the simulator accepts")
    parser.add_argument("--token-file", type=Path, help="also write the token to this file (mode 600)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    tenant = generate_tenant(
        seed=args.seed,
        users=args.users,
        groups=args.groups,
        direct_assignments=args.direct_assignments,
        nested_groups=args.nested_groups,
        app_display_name=args.app_name,
    )
    simulator = Simulator(tenant, token=args.token, host=args.host, port=args.port).start()
    if args.token_file is not None:
        args.token_file.write_text(args.token)
        os.chmod(args.token_file, 0o600)
        token_hint = f"token written to {args.token_file}"
    else:
        token_hint = "pass --token-file PATH to have the token written to a file for the client"
    print(f"Graph simulator serving {simulator.base_url}", flush=True)
    print(f"  service principal id  {tenant.service_principal_id}")
    print(f"  app id                {tenant.app_id}")
    print(f"  bearer token          {args.token} ({token_hint})")
    print(f"  control API           {simulator.url}/_sim/tenant")
    print("Press Ctrl+C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
