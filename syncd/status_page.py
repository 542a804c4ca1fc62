"""The daemon's read-only status page: what the person on call wants to see at a glance.

``GET /`` on ``[daemon] metrics_address`` answers one HTML page: paused or not, healthy or not and
why, seats and inactive users, teams, the last run and its changes, a chart of the last
:data:`RUNS_CHARTED` runs (changes, errors, duration, Graph requests), the pending safety refusal
with its plan, and the error codes seen lately with their remedies.

The page is plain HTML and CSS with the charts as inline SVG: no script, nothing fetched from
elsewhere (its ``Content-Security-Policy`` forbids both), readable on a phone, and it reloads
itself every minute with a ``<meta>`` refresh.  It changes nothing and holds no secret: every
text from a run or from Graph passes through :func:`~syncd.redaction.redact` and is escaped.

The HTTP thread must answer quickly, so the page is drawn from a :class:`StatusView` the daemon
gathers from the store after each cycle and every :data:`REFRESH_SECONDS` (:func:`gather`), never
from the database while a browser waits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

from .errors import CODES
from .redaction import redact
from .store.protocol import Store

RUNS_CHARTED = 100
PROBLEM_RUNS = 20
"""The error codes shown are those of the last this-many runs."""
REFUSAL_ROWS_SHOWN = 50
REFRESH_SECONDS = 30
"""How often the daemon reads the store for the page between cycles (a pause, another process's run)."""
APPLYING_STATUSES = frozenset({"success", "partial", "incomplete"})
"""Runs that applied their plan: one of them after a refusal means the refusal is no longer pending."""
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"

STATUS_COLOURS = {
    "success": "#2e7d32",
    "partial": "#f9a825",
    "incomplete": "#ef6c00",
    "refused": "#c62828",
    "failed": "#6a1b9a",
    "paused": "#78909c",
    "running": "#1565c0",
}
CHARTS = (
    ("changes", "Changes"),
    ("errors", "Errors"),
    ("duration", "Duration (s)"),
    ("graph_requests", "Graph requests"),
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The newest run, refused by a safety limit, with no applied run after it."""

    run: Mapping[str, Any]
    rows: tuple[Mapping[str, Any], ...]
    """Its plan, as ``syncd log --run N`` shows it (at most :data:`REFUSAL_ROWS_SHOWN`)."""
    total: int


@dataclass(frozen=True, slots=True)
class StatusView:
    """What the store said, when it was asked."""

    taken_at: datetime
    paused: bool
    counts: Mapping[str, int]
    runs: tuple[Mapping[str, Any], ...] = ()
    """Newest first, at most :data:`RUNS_CHARTED`."""
    refusal: Refusal | None = None
    problems: tuple[Mapping[str, Any], ...] = ()
    reads: Mapping[str, Any] = field(default_factory=dict)


def gather(store: Store, now: datetime | None = None) -> StatusView:
    """Read everything the page shows from the store: a handful of small queries."""
    reports = store.reports
    runs = tuple(run for run in reports.runs(RUNS_CHARTED) if run["status"] != "dry_run")
    return StatusView(
        taken_at=now or datetime.now(UTC),
        paused=store.is_paused(),
        counts=reports.counts(),
        runs=runs,
        refusal=_pending_refusal(store, runs),
        problems=tuple(reports.problems(PROBLEM_RUNS)),
        reads=reports.reads(),
    )


def _pending_refusal(store: Store, runs: Sequence[Mapping[str, Any]]) -> Refusal | None:
    for run in runs:
        if run["status"] == "refused":
            rows = store.reports.audit(run["id"], limit=None)
            return Refusal(run, tuple(rows[:REFUSAL_ROWS_SHOWN]), len(rows))
        if run["status"] in APPLYING_STATUSES:
            return None
    return None


# ---------------------------------------------------------------------- drawing


def render(view: StatusView | None, health: tuple[int, Mapping[str, Any]], now: datetime | None = None) -> str:
    """The whole page.  ``health`` is what ``/healthz`` answers (:meth:`syncd.metrics.Metrics.health`)."""
    now = now or datetime.now(UTC)
    sections = [_banner(view, health, now)]
    if view is None:
        sections.append(
            '<section class="card"><p>The store has not been read yet; this page fills in once it is '
            "(see the daemon's log if that takes longer than a cycle).</p></section>"
        )
    else:
        sections += [_tiles(view, now), _refusal(view.refusal), _chart(view.runs), _problems(view.problems)]
    body = "\n".join(section for section in sections if section)
    return _PAGE.format(refresh=60, body=body, taken=_when(view.taken_at, now) if view else "never")


def _banner(view: StatusView | None, health: tuple[int, Mapping[str, Any]], now: datetime) -> str:
    status, details = health
    healthy = status == 200
    if view is not None and view.paused:
        state, css, why = "Paused", "paused", "Provisioning is off: syncs change nothing until `syncd resume`."
    elif healthy:
        state, css = "Healthy", "ok"
        why = f"Last successful cycle {_when(_parse(details.get('last_success')), now)}."
    else:
        state, css, why = "Unhealthy", "bad", str(details.get("reason") or "unknown")
    running = " A cycle is running now." if details.get("cycle_running") else ""
    return (
        f'<header class="banner {css}"><h1>syncd <span class="state">{state}</span></h1>'
        f"<p>{_text(why)}{running}</p></header>"
    )


def _tiles(view: StatusView, now: datetime) -> str:
    counts = view.counts
    last = view.runs[0] if view.runs else None
    tiles = [
        _tile("Seats", f"{counts.get('active_users', 0):,}", "active users"),
        _tile("Inactive users", f"{counts.get('inactive_users', 0):,}", "deprovisioned, kept"),
        _tile("Teams", f"{counts.get('teams', 0):,}", ""),
    ]
    if last is None:
        tiles.append(_tile("Last run", "none yet", "the first cycle has not recorded a run"))
    else:
        tiles.append(
            _tile(
                "Last run",
                f'<span class="dot" style="background:{_colour(last["status"])}"></span>{_text(last["status"])}',
                f"#{last['id']} {_when(_parse(last.get('finished_at') or last['started_at']), now)}, "
                f"{last['changes']} changes, {last['errors']} errors, {_requests(last)}",
                raw=True,
            )
        )
    mode = view.reads.get("mode")
    if mode:
        full = _when(_parse(view.reads.get("last_full_at")), now)
        tiles.append(_tile("Graph reads", str(mode), f"last full read {full}"))
    changes = ""
    if last is not None:
        summary = last.get("summary") or {}
        listed = "".join(f"<li>{count:,} {_text(op.replace('_', ' '))}</li>" for op, count in summary.items() if count)
        pending = view.refusal is not None and view.refusal.run["id"] == last["id"]
        message = "" if pending else f"<p>{_text(last.get('message') or '')}</p>"
        applied = last["status"] in APPLYING_STATUSES
        heading = f"Last run #{last['id']}" + ("" if applied else f": {_text(last['status'])}, nothing applied")
        changes = (
            f'<section class="card"><h2>{heading}</h2>{message}'
            + (
                f"<p>Its plan ({last['changes']:,} changes written):</p><ul>{listed}</ul>"
                if listed
                else "<p>No changes.</p>"
            )
            + f'<p class="hint">Every change: <code>syncd log --run {last["id"]}</code></p></section>'
        )
    return f'<section class="tiles">{"".join(tiles)}</section>{changes}'


def _tile(title: str, value: str, note: str, *, raw: bool = False) -> str:
    shown = value if raw else _text(value)
    return f'<div class="tile"><h2>{title}</h2><p class="value">{shown}</p><p class="hint">{_text(note)}</p></div>'


def _refusal(refusal: Refusal | None) -> str:
    if refusal is None:
        return ""
    run = refusal.run
    rows = "".join(
        "<tr>"
        f"<td>{_text(row.get('op'))}</td><td>{_text(row.get('target'))}</td>"
        f"<td>{_text(_values(row.get('before')))}</td><td>{_text(_values(row.get('after')))}</td>"
        f"<td>{_text(row.get('error_code') or '')}</td>"
        "</tr>"
        for row in refusal.rows
    )
    more = refusal.total - len(refusal.rows)
    tail = f"<p>… and {more:,} more: <code>syncd log --run {run['id']}</code> lists them all.</p>" if more > 0 else ""
    return (
        '<section class="card alert"><h2>A safety limit is holding run #'
        f"{run['id']}'s plan</h2><p>{_text(run.get('message') or '')}</p>"
        "<p>Nothing of it was applied. Look at the plan below (or <code>syncd plan</code> for today's), then "
        "either correct Entra ID or let it through once with <code>syncd sync --allow CATEGORY</code> "
        "(or <code>--allow-deletes</code>).</p>"
        '<div class="scroll"><table><thead><tr><th>change</th><th>target</th><th>before</th><th>after</th>'
        f"<th>code</th></tr></thead><tbody>{rows}</tbody></table></div>{tail}</section>"
    )


def _values(value: Any) -> str:
    if not value:
        return ""
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def _chart(runs: Sequence[Mapping[str, Any]]) -> str:
    if not runs:
        return ""
    ordered = list(reversed(runs))  # oldest on the left
    points = [
        {
            "changes": run.get("changes") or 0,
            "errors": run.get("errors") or 0,
            "duration": _duration(run),
            "graph_requests": run.get("graph_requests"),
        }
        for run in ordered
    ]
    panels = "".join(_panel(title, key, ordered, points) for key, title in CHARTS)
    legend = "".join(
        f'<li><span class="dot" style="background:{colour}"></span>{status}</li>'
        for status, colour in STATUS_COLOURS.items()
        if any(run["status"] == status for run in runs)
    )
    return (
        f'<section class="card"><h2>The last {len(runs)} runs</h2><ul class="legend">{legend}</ul>'
        f'<div class="charts">{panels}</div>'
        '<p class="hint">Oldest on the left. Every run: <code>syncd history</code></p></section>'
    )


def _panel(title: str, key: str, runs: Sequence[Mapping[str, Any]], points: Sequence[Mapping[str, Any]]) -> str:
    width, height, slot = 300, 80, 300 / RUNS_CHARTED
    values = [point[key] for point in points]
    top = max((value for value in values if value is not None), default=0) or 1
    bars = []
    offset = width - slot * len(points)  # the newest run is always at the right edge
    for index, (run, value) in enumerate(zip(runs, values, strict=True)):
        x = offset + index * slot
        label = f"run #{run['id']} {run['status']}: {'unknown' if value is None else _number(value)} {title.lower()}"
        shown = max(1.0, height * (value or 0) / top) if value else 1.0
        bars.append(
            f'<rect x="{x:.2f}" y="{height - shown:.2f}" width="{max(slot - 0.6, 0.6):.2f}" height="{shown:.2f}" '
            f'fill="{_colour(run["status"])}"><title>{_text(label)}</title></rect>'
        )
    latest = values[-1]
    return (
        f'<figure><figcaption>{title} <span class="hint">max {_number(top)}, last '
        f"{'?' if latest is None else _number(latest)}</span></figcaption>"
        f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{title} of the last {len(points)} runs">{"".join(bars)}</svg></figure>'
    )


def _problems(problems: Sequence[Mapping[str, Any]]) -> str:
    if not problems:
        return (
            f'<section class="card"><h2>Error codes seen lately</h2><p>None in the last {PROBLEM_RUNS} runs.</p>'
            "</section>"
        )
    rows = []
    for problem in problems:
        known = CODES.get(problem["code"])
        rows.append(
            f'<tr class="{_text(problem["level"])}"><td><code>{_text(problem["code"])}</code></td>'
            f"<td>{_text(problem['level'])}</td><td>{problem['runs']}</td><td>{problem['objects']:,}</td>"
            f"<td>#{problem['last_run']}</td>"
            f"<td>{_text(known.meaning if known else '')}</td><td>{_text(known.remedy if known else '')}</td></tr>"
        )
    return (
        f'<section class="card"><h2>Error codes seen lately</h2><p class="hint">In the last {PROBLEM_RUNS} runs; '
        "<code>syncd log --run N</code> names the objects, <code>syncd explain</code> says why.</p>"
        '<div class="scroll"><table><thead><tr><th>code</th><th>level</th><th>runs</th><th>objects</th>'
        f"<th>last</th><th>meaning</th><th>what to do</th></tr></thead><tbody>{''.join(rows)}</tbody>"
        "</table></div></section>"
    )


# ---------------------------------------------------------------------- small helpers


def _text(value: Any) -> str:
    """Redacted, then escaped: the only way a value reaches the page."""
    return escape(redact("" if value is None else str(value)))


def _colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "#9e9e9e")


def _requests(run: Mapping[str, Any]) -> str:
    count = run.get("graph_requests")
    return "Graph requests not counted" if count is None else f"{count:,} Graph requests"


def _number(value: float) -> str:
    return f"{value:,.1f}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(run: Mapping[str, Any]) -> float | None:
    started, finished = _parse(run.get("started_at")), _parse(run.get("finished_at"))
    if started is None or finished is None:
        return None
    return round(max(0.0, (finished - started).total_seconds()), 1)


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if seconds < 0:
        return f"at {stamp}"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago ({stamp})"
    return f"{seconds} s ago ({stamp})"


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh}">
<title>syncd status</title>
<style>
:root {{ color-scheme: light dark; --fg: #1b1f24; --bg: #f5f6f8; --card: #fff; --muted: #5f6b7a; --line: #d8dde3; }}
@media (prefers-color-scheme: dark) {{
  :root {{ --fg: #e6e8eb; --bg: #121417; --card: #1c1f24; --muted: #9aa5b1; --line: #323840; }}
}}
* {{ box-sizing: border-box; }}
body {{ margin: 0; padding: 12px; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); max-width: 1100px; margin-inline: auto; }}
h1 {{ font-size: 1.4rem; margin: 0; }}
h2 {{ font-size: 1rem; margin: 0 0 .4rem; }}
p {{ margin: .3rem 0; }}
code {{ font: .9em ui-monospace, SFMono-Regular, Menlo, monospace; }}
.banner {{ border-radius: 10px; padding: 12px 16px; color: #fff; margin-bottom: 12px; }}
.banner.ok {{ background: #2e7d32; }} .banner.bad {{ background: #c62828; }} .banner.paused {{ background: #546e7a; }}
.banner code {{ color: inherit; }}
.state {{ font-weight: 400; opacity: .9; margin-left: .4rem; }}
.tiles {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-bottom: 12px; }}
.tile, .card {{ background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px; }}
.card {{ margin-bottom: 12px; }}
.card.alert {{ border: 2px solid #c62828; }}
.value {{ font-size: clamp(1.05rem, 4.6vw, 1.5rem); font-weight: 600; margin: 0; overflow-wrap: break-word; }}
.hint {{ color: var(--muted); font-size: .85rem; }}
.dot {{ display: inline-block; width: .7em; height: .7em; border-radius: 50%; margin-right: .35em; }}
.legend {{ list-style: none; padding: 0; margin: 0 0 .5rem; display: flex; flex-wrap: wrap; gap: .3rem 1rem;
  font-size: .85rem; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 400px), 1fr)); gap: 12px; }}
figure {{ margin: 0; }}
figcaption {{ font-size: .9rem; font-weight: 600; }}
svg {{ width: 100%; height: 80px; display: block; background: var(--bg); border-radius: 4px; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; width: 100%; font-size: .88rem; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }}
tr.error td:first-child {{ border-left: 3px solid #c62828; }}
tr.warning td:first-child {{ border-left: 3px solid #f9a825; }}
footer {{ color: var(--muted); font-size: .8rem; margin-top: 8px; }}
footer a {{ color: inherit; }}
</style>
</head>
<body>
{body}
<footer>Read from the store {taken}. This page changes nothing and reloads every minute.
<a href="/healthz">/healthz</a> · <a href="/metrics">/metrics</a></footer>
</body>
</html>
"""
