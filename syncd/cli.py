"""The command line: parse options, call one library function, print, exit with a contract code.

Business logic lives elsewhere; see README.md for every command and exit code.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from .cancel import Cancelled
from .config import CONFIG_ENV, Config, load
from .errors import CODES, ConfigError, ExitCode, SyncdError, exit_code_for
from .model import EMAIL_LENGTH, escape, unstorable
from .safety import CATEGORIES

if TYPE_CHECKING:
    from .store import Store

# --------------------------------------------------------------------------- plumbing


class Context:
    """Lazily loaded configuration and store, shared by the commands of one invocation."""

    def __init__(self, config_path: str | None, verbosity: int) -> None:
        self.config_path = config_path
        self.verbosity = verbosity
        self._config: Config | None = None
        self._store: Any = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.config_path)
        return self._config

    @property
    def store(self) -> Any:
        if self._store is None:
            from .store import SqlStore

            store = SqlStore(self.config.store.url)
            store.ensure_schema()
            self._store = store
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_context = click.make_pass_decorator(Context)


def emit_json(data: Any) -> None:
    """JSON output: ``ensure_ascii`` escapes every control character, lone surrogate and bidi
    override as ``\\uXXXX``, so nothing Graph sent can act on the terminal."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=True))


def show(value: object) -> str:
    """A value from Graph or the store, safe to print: control characters (ESC, NUL, newlines),
    lone surrogates and bidirectional overrides appear as escapes such as ``\\x1b``."""
    return escape(str(value))


def show_message(message: object) -> str:
    """A message that may span lines on purpose (a configuration error lists one problem a line):
    each line is escaped, the line breaks kept."""
    return "\n".join(escape(line) for line in str(message).split("\n"))


def error_line(error: SyncdError) -> str:
    return f"syncd: error [{error.code}]: {show_message(error)}"


def fail(error: SyncdError) -> NoReturn:
    click.echo(error_line(error), err=True)
    raise SystemExit(int(error.exit_code))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar=CONFIG_ENV,
    help=f"Configuration file (TOML). Also ${CONFIG_ENV}; default $CONFIGURATION_DIRECTORY/config.toml "
    "or /etc/syncd/config.toml.",
)
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option(
    "-q",
    "--quiet",
    count=True,
    help="Only problems: warnings and errors in the log, no summary when all went well (for cron).",
)
@click.version_option(__version__, prog_name="syncd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: int) -> None:
    """syncd keeps a local directory of users and teams in step with the users and groups assigned
    to one Microsoft Entra ID enterprise application."""
    context = Context(config_path, verbose - quiet)
    ctx.obj = context
    ctx.call_on_close(context.close)


def _setup_logging(context: Context, *, dry_run: bool = False) -> None:
    from .logs import setup_logging

    setup_logging(context.config.log, verbosity=context.verbosity, dry_run=dry_run)


# --------------------------------------------------------------------------- plan / sync


def _run(context: Context, options: Any) -> Any:
    from .reconcile import run_once

    return run_once(context.config, options)


def _print_plan_text(result: Any) -> None:
    from .render import to_text

    click.echo(to_text(result.plan))
    _print_failures(result)
    for refusal in result.refusals:
        click.echo(f"! refused [{refusal.code}]: {show(refusal.message)}", err=True)


def _print_failures(result: Any) -> None:
    for failure in result.failures:
        click.echo(
            f"! graph read failed [{show(failure.code)}] {show(failure.path)}: {show(failure.message)}",
            err=True,
        )


def _result_json(result: Any) -> dict[str, Any]:
    from .render import to_json

    data = to_json(result.plan)
    data["status"] = result.status.value
    data["failures"] = result.failures_json()
    data["refusals"] = [{"code": r.code, "message": r.message} for r in result.refusals]
    if result.run_id is not None:
        data["run_id"] = result.run_id
        data["applied"] = result.applied
        data["failed"] = result.failed_json()
    return data


snapshot_option = click.option(
    "--from-snapshot",
    "snapshot_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Reconcile from a snapshot file (written by `syncd snapshot`) instead of Microsoft Graph.",
)


wait_option = click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for another run to finish before giving up (exit 75).",
)
"""``--wait SECONDS``: the commands that take the run lock."""


allow_option = click.option(
    "--allow",
    "allow",
    multiple=True,
    type=click.Choice(CATEGORIES),
    metavar="CATEGORY",
    help="Lift one safety limit (repeatable): " + ", ".join(CATEGORIES) + ".",
)
"""``--allow CATEGORY``: ``plan``, ``sync`` and ``apply``."""


def brake_and_read_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--allow CATEGORY``, ``--allow-last-admin`` and ``--full``, shared by ``plan`` and ``sync``."""
    options = (
        allow_option,
        click.option(
            "--allow-last-admin",
            is_flag=True,
            help="Apply even the change that leaves the store without an active admin.",
        ),
        click.option(
            "--full",
            is_flag=True,
            help="Read the whole application from Graph, not only its changes since the last run.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--allow-deletes", is_flag=True, help="Report the plan as allowed even past the safety limits.")
@brake_and_read_options
@click.option(
    "--out",
    metavar="FILE",
    help="Also save the plan to FILE, for review and `syncd apply FILE`.",
)
@snapshot_option
@pass_context
def plan(
    context: Context,
    as_json: bool,
    allow_deletes: bool,
    allow: tuple[str, ...],
    allow_last_admin: bool,
    full: bool,
    out: str | None,
    snapshot_path: str | None,
) -> None:
    """Show the changes a sync would make (a dry run; writes nothing).

    Exit 0: nothing wrong; 3: some objects have errors or Graph could not be read completely;
    4: a sync would be refused by a safety limit.
    """
    from .reconcile import RunOptions

    _setup_logging(context, dry_run=True)
    if full and snapshot_path:
        raise click.UsageError(
            "--full reads the whole application from Graph; it cannot be combined with --from-snapshot"
        )
    options = RunOptions(
        dry_run=True,
        allow_deletes=allow_deletes,
        allow=frozenset(allow),
        allow_last_admin=allow_last_admin,
        full=full,
        snapshot_path=snapshot_path,
        fingerprint=out is not None,
    )
    result = _run(context, options)
    if out is not None:
        _save_plan(result, out)
    if as_json:
        emit_json(_result_json(result))
    else:
        _print_plan_text(result)
    raise SystemExit(int(result.exit_code))


@cli.command()
@click.option("--dry-run", is_flag=True, help="Show the plan and change nothing (same as `syncd plan`).")
@click.option(
    "--allow-deletes",
    is_flag=True,
    help="Apply even when the plan deactivates or deletes more than the safety limits allow.",
)
@brake_and_read_options
@click.option("--user", metavar="UPN_OR_ID", help="Provision one user on demand (only its changes).")
@click.option("--group", metavar="NAME_OR_ID", help="Provision one group on demand: its team, members and roles.")
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@snapshot_option
@pass_context
def sync(
    context: Context,
    dry_run: bool,
    allow_deletes: bool,
    allow: tuple[str, ...],
    allow_last_admin: bool,
    full: bool,
    user: str | None,
    group: str | None,
    wait_seconds: float,
    as_json: bool,
    snapshot_path: str | None,
) -> None:
    """Reconcile once, then print a summary.  This is what cron and the systemd timer run.

    Exit 0: done or nothing to do; 1: failed; 3: finished but some objects failed; 4: refused by a
    safety check (nothing applied); 75: another run holds the lock; 78: configuration error.
    """
    from .progress import make_progress
    from .reconcile import RunOptions

    for option, value in (("--user", user), ("--group", group)):
        if value is not None and not value.strip():
            raise click.UsageError(f"{option} needs a name, an email or an id, not an empty value")
        if value is not None and (problem := unstorable(value, EMAIL_LENGTH)):
            raise click.UsageError(f"{option} {show(value)}: {problem}")
    if user is not None and group is not None:
        raise click.UsageError("give --user or --group, not both")
    if (user or group) and snapshot_path:
        raise click.UsageError("--user/--group read Microsoft Graph; they cannot be combined with --from-snapshot")
    if full and (user or group or snapshot_path):
        raise click.UsageError(
            "--full reads the whole application; it cannot be combined with --user, --group or --from-snapshot"
        )
    _setup_logging(context, dry_run=dry_run)
    options = RunOptions(
        dry_run=dry_run,
        allow_deletes=allow_deletes,
        allow=frozenset(allow),
        allow_last_admin=allow_last_admin,
        full=full,
        snapshot_path=snapshot_path,
        user=user,
        group=group,
        trigger="on-demand" if (user or group) else "cli",
        wait_seconds=wait_seconds,
        progress=None if as_json else make_progress(sys.stderr),
        cancel=threading.Event(),
    )
    assert options.cancel is not None
    try:
        with _sigterm_cancels(options.cancel):
            result = _run(context, options)
    except Cancelled as stopped:
        click.echo(f"Stopped: {stopped.outcome}.", err=True)
        raise SystemExit(130) from None
    if as_json:
        emit_json(_result_json(result))
    elif dry_run:
        _print_plan_text(result)
    elif not (context.verbosity < 0 and result.exit_code == ExitCode.OK):
        _print_sync_summary(result)
    raise SystemExit(int(result.exit_code))


@contextmanager
def _sigterm_cancels(cancel: threading.Event) -> Iterator[None]:
    """SIGTERM (systemd stopping the timer's unit, a kill) asks a one-shot sync to stop at its next
    step, as the daemon does: before it commits, its transaction rolls back and nothing of it is
    applied; after, only the logging of its changes is cut short.  A second SIGTERM interrupts at
    once, like Ctrl-C.  Nothing is raised inside the run by the first signal."""

    def stop(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_sync_summary(result: Any) -> None:

    if result.status == "paused":
        click.echo(f"Paused: {show(result.message)}")
        return
    _print_failures(result)
    if result.status == "refused":
        for refusal in result.refusals:
            click.echo(f"syncd: refused [{refusal.code}]: {show(refusal.message)}", err=True)
        return
    counts = result.applied_counts
    changes = ", ".join(f"{n} {op.replace('_', ' ')}" for op, n in counts.items()) or "no changes"
    click.echo(
        f"Run {result.run_id} {result.status}: applied {result.applied} changes ({changes}); "
        f"{len(result.plan.errors) + len(result.failed)} errors; {result.duration:.1f}s."
    )


def _save_plan(result: Any, out: str) -> None:
    from datetime import UTC, datetime

    from .saved_plan import document, write

    if result.store_fingerprint is None:
        return
    write(out, document(result.plan, _result_json(result), result.store_fingerprint, datetime.now(UTC)))
    click.echo(f"Plan saved to {show(out)}; apply it, exactly, with `syncd apply {show(out)}`.", err=True)


@cli.command("apply")
@click.argument("plan_file", metavar="FILE")
@click.option(
    "--allow-deletes",
    is_flag=True,
    help="Apply even when the plan goes over the safety limits.",
)
@allow_option
@wait_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def apply_command(
    context: Context, plan_file: str, allow_deletes: bool, allow: tuple[str, ...], wait_seconds: float, as_json: bool
) -> None:
    """Apply a plan saved by `syncd plan --out FILE`, exactly, if the store has not changed since.

    Exit 0: applied; 1: failed; 2: not a syncd plan, or an edited one (PLAN_INVALID); 3: applied but
    some objects failed; 4: refused (PLAN_STALE, or a safety limit); 75: another run holds the lock.
    """
    from .reconcile import RunOptions, apply_saved
    from .saved_plan import read

    _setup_logging(context, dry_run=False)
    try:
        saved = read(plan_file)
    except SyncdError as error:
        fail(error)
    options = RunOptions(
        allow_deletes=allow_deletes,
        allow=frozenset(allow),
        trigger="apply",
        wait_seconds=wait_seconds,
        cancel=threading.Event(),
    )
    assert options.cancel is not None
    try:
        with _sigterm_cancels(options.cancel):
            result = apply_saved(context.config, saved, options)
    except Cancelled as stopped:
        click.echo(f"Stopped: {stopped.outcome}.", err=True)
        raise SystemExit(130) from None
    if as_json:
        emit_json(_result_json(result))
    elif not (context.verbosity < 0 and result.exit_code == ExitCode.OK):
        _print_sync_summary(result)
    raise SystemExit(int(result.exit_code))


@cli.command("explain")
@click.argument("key", metavar="USER_OR_GROUP")
@click.option("--live", is_flag=True, help="Read the user or group from Graph now, not from the last read.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def explain_command(context: Context, key: str, live: bool, as_json: bool) -> None:
    """Why a user (email, UPN or Entra id) or a group (name or id) is in the state it is in.

    Exit 0: explained; 2: syncd knows nothing of it (or, with --live, Entra ID does not have it).
    """
    from .explain import Facts, explain, find_user
    from .mirror import snapshot_of
    from .plan import diff
    from .records import RecordError, plan_from_record

    if not key.strip() or unstorable(key, EMAIL_LENGTH):
        raise click.UsageError("explain needs a user's email, UPN or id, or a group's name or id")
    store = context.store
    state = store.load_state()
    policy = context.config.policy
    if live:
        snapshot = _live_snapshot(context, key, state)
        source = "live"
    else:
        mirror = store.load_mirror()
        snapshot = snapshot_of(mirror, mirror.app_roles) if mirror is not None else None
        source = "the last read" if mirror is not None else "the store only (no read yet)"
    plan = diff(snapshot, state, policy) if snapshot is not None else None
    refused, refused_message = None, ""
    last = store.reports.last_run()
    if last is not None and last["status"] == "refused":
        kept = store.reports.run_plan(int(last["id"]))
        try:
            refused = plan_from_record(json.loads(kept)) if kept else None
        except (ValueError, RecordError):
            refused = None
        refused_message = str(last["message"])
    facts = Facts(snapshot, state, policy, plan, refused, refused_message, (), source)
    graph_user, row = find_user(facts, key)
    entra_id = graph_user.id if graph_user is not None else (row.entra_id if row is not None else None)
    if entra_id is None:
        from .explain import find_group

        group, team = find_group(facts, key)
        entra_id = group.id if group is not None else (team.entra_id if team is not None else None)
    audit = store.reports.audit_of(entra_id, limit=10) if entra_id else []
    explanation = explain(Facts(snapshot, state, policy, plan, refused, refused_message, audit, source), key)
    if as_json:
        emit_json(explanation.to_json())
    else:
        for line in explanation.to_text().split("\n"):
            click.echo(show(line))
    raise SystemExit(2 if explanation.kind == "unknown" else 0)


def _live_snapshot(context: Context, key: str, state: Any) -> Any:
    """A fresh on-demand read of the user (or, failing that, the group) ``key``."""
    from .graph.fetch import fetch_principal

    config = context.config
    config.graph.require_application()
    errors: list[SyncdError] = []
    for kind in ("user", "group"):
        try:
            return fetch_principal(
                config.graph, config.sync, user=key if kind == "user" else None, group=key if kind == "group" else None
            )
        except SyncdError as error:
            if error.code != "NOT_FOUND":
                fail(error)
            errors.append(error)
    fail(SyncdError(f"{show(key)} is neither a user nor a group in Entra ID", code="NOT_FOUND"))


@cli.group("notify")
def notify_group() -> None:
    """Notifications to people ([notify] urls)."""


@notify_group.command("test")
@pass_context
def notify_test(context: Context) -> None:
    """Send one test message to every URL in [notify] urls.

    Exit 0: delivered; 1: not delivered to every URL; 78: no URLs configured.
    """
    from .alerts import Message, Notifier

    config = context.config.notify
    if not config.urls:
        fail(ConfigError("notify.urls: no notification URLs configured (Apprise URLs, see the README)"))
    sent = Notifier(config).send(
        Message(
            "test",
            "syncd: test notification",
            f"This is a test from syncd (configuration {context.config.path or 'built in'}): notifications work.",
        )
    )
    if not sent:
        fail(SyncdError("the test notification could not be delivered to every URL; see the log", code="NOTIFY_FAILED"))
    click.echo(f"Test notification sent to {len(config.urls)} URL(s).")


# --------------------------------------------------------------------------- Graph commands


@cli.command()
@click.option(
    "--out",
    "out_path",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Where to write the snapshot (JSON); `-` for standard output.",
)
@pass_context
def snapshot(context: Context, out_path: str) -> None:
    """Fetch the application's assignments from Graph and write them as a snapshot file.

    `syncd plan --from-snapshot FILE` and `syncd sync --from-snapshot FILE` replay it offline.
    """
    from pathlib import Path

    from .errors import InputError
    from .graph.snapshot_file import snapshot_to_json, write_snapshot
    from .reconcile import RunOptions, load_snapshot

    if out_path != "-" and not Path(out_path).resolve().parent.is_dir():
        fail(InputError(f"--out {out_path}: the folder {Path(out_path).resolve().parent} does not exist"))
    _setup_logging(context)
    captured = load_snapshot(context.config, RunOptions())
    if out_path == "-":
        emit_json(snapshot_to_json(captured))
    else:
        write_snapshot(captured, out_path)
        click.echo(
            f"Wrote {show(out_path)}: {len(captured.users)} users, {len(captured.groups)} groups, "
            f"{len(captured.assignments)} assignments" + ("" if captured.complete else " (incomplete)"),
            err=True,
        )
    if not captured.complete:
        raise SystemExit(int(ExitCode.PARTIAL))


@cli.command()
@pass_context
def check(context: Context) -> None:
    """Test the connection: a token, then every kind of Graph read a sync makes, each naming its permission."""
    from .graph import fetch

    config = context.config
    config.graph.require_application()
    steps = fetch.check(config.graph, config.sync)
    for step in steps:
        click.echo(f"{'OK  ' if step.ok else 'FAIL'} {show(step.name)}: {show(step.detail)}")
    raise SystemExit(0 if all(step.ok for step in steps) else 1)


@cli.command()
@click.option(
    "--dir",
    "directory",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Where to keep the demo database (default: a new temporary folder).",
)
@click.option(
    "--users",
    "user_count",
    type=click.IntRange(1, 100_000),
    default=24,
    show_default=True,
    help="Size of the generated tenant.",
)
def demo(directory: str | None, user_count: int) -> None:
    """Run syncd end to end against the built-in Graph simulator (no credentials, no setup)."""
    from .demo import run_demo

    raise SystemExit(run_demo(directory, user_count, echo=click.echo))


@cli.command()
@pass_context
def run(context: Context) -> None:
    """Run as a daemon: a sync every [daemon] interval_minutes (default 40) until stopped."""
    from .daemon import main as daemon_main

    raise SystemExit(daemon_main(context.config_path, verbosity=context.verbosity))


# --------------------------------------------------------------------------- users and teams


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def users(ctx: click.Context, as_json: bool) -> None:
    """List all users (active and inactive), sorted by email."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.ensure_object(Context).store.reports.users()
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        state = "active" if row["active"] else f"inactive ({show(row.get('inactive_reason') or 'local')})"
        managed = "managed" if row["managed"] else "local"
        click.echo(f"{show(row['email'])}\t{show(row['name'])}\t{show(row['user_type'])}\t{state}\t{managed}")
    active = sum(1 for row in rows if row["active"])
    click.echo(f"{len(rows)} users, {active} active (seats).")


@users.command("create")
@click.argument("email")
@click.option("--name", required=True, help="Display name.")
@click.option(
    "--type",
    "user_type",
    default="member",
    show_default=True,
    help="admin, member, viewer, guest, or a custom role id (digits).",
)
@pass_context
def users_create(context: Context, email: str, name: str, user_type: str) -> None:
    """Create a local (unmanaged) user, as the application's own admins do by hand."""
    from .errors import InputError
    from .model import BUILTIN_USER_TYPES, email_problem, is_custom_role_id, normalise_name, shown

    if user_type not in BUILTIN_USER_TYPES and not is_custom_role_id(user_type):
        fail(InputError(f"--type {shown(user_type)}: must be admin, member, viewer, guest or a custom role id"))
    address = email.strip().lower()
    why = email_problem(address)  # the rule a Graph user's email meets, so both backends take it
    if why is not None:
        fail(InputError(f"{shown(email)} is not an email address: it {why}"))
    if not normalise_name(name):
        fail(InputError(f"--name {shown(name)}: a user needs a name (letters or digits)"))
    row = context.store.local.create_user(address, normalise_name(name), user_type)
    click.echo(f"Created local user {show(row['email'])}.")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def teams(ctx: click.Context, as_json: bool) -> None:
    """List all teams with their members, sorted by name."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.ensure_object(Context).store.reports.teams()
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        managed = f"managed by {show(row['entra_id'])}" if row["managed"] else "local"
        members = ", ".join(show(member) for member in row["members"])
        click.echo(f"{show(row['name'])}\t{managed}\t{len(row['members'])} members: {members}")
    click.echo(f"{len(rows)} teams.")


@teams.command("create")
@click.argument("name")
@click.option("--member", "members", multiple=True, metavar="EMAIL", help="A member (repeatable).")
@pass_context
def teams_create(context: Context, name: str, members: tuple[str, ...]) -> None:
    """Create a local (unmanaged) team."""
    from .errors import InputError
    from .model import NAME_LENGTH, email_problem, shown, unstorable

    name = " ".join(name.split())
    if not name:
        fail(InputError("a team needs a name"))
    why = unstorable(name, NAME_LENGTH)  # the rule a group's name meets, so both backends take it
    if why is not None:
        fail(InputError(f"team name {shown(name)} {why}"))
    emails = [member.strip().lower() for member in members]
    for email in emails:
        why = email_problem(email)
        if why is not None:
            fail(InputError(f"--member {shown(email)} is not an email address: it {why}"))
    row = context.store.local.create_team(name, emails)
    click.echo(f"Created local team {show(row['name'])} with {len(row['members'])} members.")


# --------------------------------------------------------------------------- state and history


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def status(context: Context, as_json: bool) -> None:
    """Provisioning status: paused or not, seats, teams and the last run."""
    store = context.store
    counts = store.reports.counts()
    reads = store.reports.reads()
    from .graph.incremental import tracks

    if not tracks(context.config.sync):
        reads["mode"] = "full (sync.scope is all or sync.nested_groups is on)"
    reads["settled"] = _settled(context.config, store)
    data = {"paused": store.is_paused(), **counts, "last_run": store.reports.last_run(), "reads": reads}
    if as_json:
        emit_json(data)
        return
    click.echo(f"Provisioning: {'Off (paused)' if data['paused'] else 'On'}")
    click.echo(f"Users: {counts['active_users']} active (seats), {counts['inactive_users']} inactive")
    click.echo(f"Teams: {counts['teams']}")
    last = data["last_run"]
    if last:
        click.echo(
            f"Last run: #{last['id']} {show(last['status'])}, started {last['started_at']}, "
            f"finished {last['finished_at'] or '-'}, {last['changes']} changes"
        )
    else:
        click.echo("Last run: none yet")
    click.echo(
        f"Graph reads: {reads['mode']}; last full read {reads['last_full_at'] or 'none yet'}, "
        f"last incremental {reads['last_incremental_at'] or 'none yet'}"
    )
    click.echo(
        "Store: settled (the next run reads and plans only what changed in Graph)"
        if reads["settled"]
        else "Store: not settled (the next run reads the store and plans in full)"
    )


def _settled(config: Config, store: Store) -> bool:
    """Whether the next sync may read and plan only what changed: the store holds the record of a
    run that left it settled, for this configuration, and no full read is due."""
    from .reconcile import RunOptions, settled_record

    return settled_record(config, RunOptions(), store) is not None


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def history(context: Context, limit: int, as_json: bool) -> None:
    """Past runs, newest first."""
    rows = context.store.reports.runs(limit)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(
            f"#{row['id']}\t{row['started_at']}\t{show(row['status'])}\t{show(row['trigger'])}\t"
            f"{row['changes']} changes\t{row['errors']} errors\t{_requests(row)}\t{show(row.get('message') or '')}"
        )
    if not rows:
        click.echo("No runs yet.")


def _requests(row: dict[str, Any]) -> str:
    count = row.get("graph_requests")
    return "? requests" if count is None else f"{count} requests"


@cli.command("log")
@click.option("--run", "run_id", type=int, metavar="ID", help="Which run (default: the last one).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many rows (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def log_command(context: Context, run_id: int | None, limit: int | None, as_json: bool) -> None:
    """The audited changes of one run."""
    if run_id is not None and context.store.reports.run(run_id) is None:
        fail(SyncdError(f"no run {run_id}; `syncd history` lists the runs", code="NOT_FOUND"))
    rows = context.store.reports.audit(run_id, limit=limit)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        code = f" [{show(row['error_code'])}]" if row.get("error_code") else ""
        message = f": {show(row['message'])}" if row.get("message") else ""
        click.echo(
            f"{row['at']}\t{show(row['status'])}{code}\t{show(row['op'])}\t{show(row['target'])}\t"
            f"{json.dumps(row.get('before'))} -> {json.dumps(row.get('after'))}{message}"
        )
    if not rows:
        click.echo("No audited changes.")


@cli.command()
@pass_context
def pause(context: Context) -> None:
    """Turn provisioning off: syncs change nothing until `syncd resume`."""
    context.store.set_paused(True)
    click.echo("Provisioning paused (Off). `syncd resume` turns it back on.")


@cli.command()
@pass_context
def resume(context: Context) -> None:
    """Turn provisioning back on."""
    context.store.set_paused(False)
    click.echo("Provisioning resumed (On).")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def errors(as_json: bool) -> None:
    """The table of error codes: code, meaning, what to do."""
    if as_json:
        emit_json([{"code": e.code, "meaning": e.meaning, "remedy": e.remedy} for e in CODES.values()])
        return
    width = max(len(code) for code in CODES)
    for entry in CODES.values():
        click.echo(f"{entry.code:<{width}}  {entry.meaning}\n{'':<{width}}  -> {entry.remedy}")


# --------------------------------------------------------------------------- admin


@cli.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Create or upgrade the database schema to this version of syncd."""
    from .store import SqlStore

    store = SqlStore(context.config.store.url)
    try:
        store.upgrade()
        click.echo(f"Database at revision {store.schema_revision()}.")
    finally:
        store.close()


@cli.group("config")
def config_group() -> None:
    """Configuration helpers."""


@config_group.command("check")
@pass_context
def config_check(context: Context) -> None:
    """Validate the configuration file and report every problem (exit 78 if any).

    Also checks that the Graph credential can be found (secret, certificate or token file); `syncd
    check` then tests it against Entra ID.
    """
    from .errors import ConfigError

    config = context.config
    if config.graph.configured:
        from .graph.auth import credential_problems

        problems = credential_problems(config.graph)
        if problems:
            raise ConfigError(problems)
    click.echo(f"{show(config.path or '(no file: all defaults)')}: OK")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI and map every outcome to an exit code; never show a traceback for a known error."""
    code: int
    try:
        cli.main(args=argv, prog_name="syncd", standalone_mode=False)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except click.exceptions.Exit as exit_:
        code = exit_.exit_code
    except click.ClickException as error:
        error.show()
        code = ExitCode.USAGE if isinstance(error, click.UsageError) else error.exit_code
    except click.Abort as abort:
        if isinstance(abort.__cause__, KeyboardInterrupt):  # Ctrl-C or SIGTERM, turned into Abort by click
            click.echo("Interrupted; nothing half-applied was kept.", err=True)
            code = 130
        else:
            click.echo("Aborted.", err=True)
            code = 1
    except SyncdError as error:
        click.echo(error_line(error), err=True)
        code = int(exit_code_for(error))
    except KeyboardInterrupt:
        click.echo("Interrupted; nothing half-applied was kept.", err=True)
        code = 130
    except Exception as error:  # the last net: a message, never a traceback, unless debugging
        if os.environ.get("SYNCD_DEBUG"):
            raise
        click.echo(
            f"syncd: internal error: {type(error).__name__}: {show_message(_redact(str(error)))} "
            "(set SYNCD_DEBUG=1 for a traceback)",
            err=True,
        )
        code = 1
    sys.exit(int(code))


def _redact(text: str) -> str:
    from .redaction import redact

    return redact(text)
