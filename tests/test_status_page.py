"""The daemon's status page at ``/``: the state at a glance, drawn from the store, read-only, without
scripts, with nothing secret or unescaped on it."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from syncd.daemon import Daemon
from syncd.metrics import Metrics, MetricsServer
from syncd.runs import RunStatus
from syncd.status_page import RUNS_CHARTED, StatusView, gather, render
from syncd.store import MemoryStore
from tests.status_history import HOSTILE_TEAM, History, history
from tests.test_daemon import Running, wait_for

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMifQ.c2lnbmF0dXJl"
UNHEALTHY = (503, {"status": "unhealthy", "reason": "no successful cycle yet; last cycle: refused"})


class Page(HTMLParser):
    """The text of a page by element, its tags, and its SVG bars."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.bars: list[dict[str, str | None]] = []
        self.tooltips: list[str] = []
        self._hidden = 0
        self._in_svg = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._hidden += tag in ("head", "svg")
        self._in_svg = self._in_svg or tag == "svg"
        if tag == "rect":
            self.bars.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("head", "svg")
        self._in_svg = self._in_svg and tag != "svg"

    def handle_data(self, data: str) -> None:
        if self._in_svg and self.tags[-1] == "title":
            self.tooltips.append(data)
        if data.strip() and not self._hidden:
            self.text.append(" ".join(data.split()))

    @property
    def words(self) -> str:
        return " ".join(self.text)


@pytest.fixture(scope="module")
def past(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    with history(tmp_path_factory.mktemp("status")) as world:
        yield world


@pytest.fixture(scope="module")
def page(past: History) -> Page:
    return Page(render(gather(past.store), UNHEALTHY))


def test_the_view_holds_what_the_store_says(past: History) -> None:
    view = gather(past.store)
    assert view.counts == past.store.reports.counts() and view.counts["active_users"] == 25
    assert [run["status"] for run in view.runs] == [
        "refused",
        "partial",
        "incomplete",
        "failed",
        "partial",
        "success",
    ]
    assert view.refusal is not None and view.refusal.run["id"] == past.results["refused"].run_id
    refused = {row["target"] for row in view.refusal.rows if row["op"] == "deactivate_user"}
    assert refused == set(past.unassigned.values()) and view.refusal.total == len(view.refusal.rows)
    assert [problem["code"] for problem in view.problems] == [
        "SAFETY_DEACTIVATIONS",
        "USER_INVALID",
        "GRAPH_UNAVAILABLE",
        "GRAPH_AUTH",
        "NAME_NORMALISED",
    ]
    assert view.reads["mode"] == "incremental" and not view.paused


def test_the_page_shows_health_seats_teams_and_the_last_run(page: Page) -> None:
    words = page.words
    assert "Unhealthy" in words and "no successful cycle yet; last cycle: refused" in words
    assert re.search(r"Seats 25 active users", words)
    assert re.search(r"Inactive users 0 ", words) and re.search(r"Teams 2\b", words)
    assert re.search(r"Last run refused #6 .*0 changes, 0 errors, 5 Graph requests", words)
    assert "Last run #6: refused, nothing applied" in words and "8 deactivate user" in words


def test_the_pending_refusal_shows_its_limit_and_its_plan(page: Page, past: History) -> None:
    words = page.words
    assert "A safety limit is holding run #6's plan" in words
    assert "more than safety.max_deactivations = 5" in words
    for email in past.unassigned.values():
        assert f"deactivate_user {email} active=True active=False, inactive_reason=unassigned" in words
    assert "syncd sync --allow CATEGORY" in words


def test_the_error_codes_seen_lately_come_with_their_meaning_and_remedy(page: Page) -> None:
    words = page.words
    assert "USER_INVALID error 3 1 #5 A user's id, jobTitle or other value cannot be stored" in words
    assert "GRAPH_AUTH error 1 1 #3 Microsoft Graph rejected the credentials (401)." in words
    assert "NAME_NORMALISED warning 1 1 #2" in words
    assert "Check graph.tenant_id" in words


def test_the_chart_has_a_bar_per_run_for_each_measure_coloured_by_status(page: Page, past: History) -> None:
    runs = past.store.reports.runs()
    assert len(page.bars) == 4 * len(runs)
    assert {bar["fill"] for bar in page.bars} >= {"#2e7d32", "#f9a825", "#ef6c00", "#c62828", "#6a1b9a"}
    assert "run #1 success: 42 changes" in page.tooltips
    first = next(run for run in runs if run["id"] == 1)
    assert f"run #1 success: {first['graph_requests']} graph requests" in page.tooltips
    assert "run #3 failed: 1 graph requests" in page.tooltips, "a failed run keeps the requests it made"


def test_the_page_has_no_script_and_loads_nothing_from_elsewhere(page: Page, past: History) -> None:
    html = render(gather(past.store), UNHEALTHY)
    assert "script" not in page.tags and "iframe" not in page.tags and "img" not in page.tags
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert re.search(r'<meta name="viewport" content="width=device-width, initial-scale=1">', html)


def test_the_page_is_served_at_the_root_with_a_policy_that_forbids_scripts(past: History) -> None:
    metrics = Metrics(60)
    server = MetricsServer("127.0.0.1:0", metrics, page=lambda: render(gather(past.store), metrics.health()))
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/", timeout=5) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "script-src" not in response.headers["Content-Security-Policy"]
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert response.headers["X-Frame-Options"] == "DENY"
        assert "no cycle finished yet" in Page(body).words
    finally:
        server.stop()


def _view(**changes: object) -> StatusView:
    now = datetime.now(UTC)
    run = {
        "id": 7,
        "status": "failed",
        "trigger": "daemon",
        "started_at": (now - timedelta(seconds=30)).isoformat(),
        "finished_at": now.isoformat(),
        "changes": 0,
        "errors": 1,
        "summary": {},
        "message": f"GRAPH_AUTH: Graph said Bearer {JWT} was wrong for {HOSTILE_TEAM}",
        "graph_requests": 2,
    }
    fields: dict[str, object] = {"taken_at": now, "paused": False, "counts": {"active_users": 3}, "runs": (run,)}
    fields.update(changes)
    return StatusView(**fields)  # type: ignore[arg-type]


def test_what_a_run_or_graph_said_is_escaped_and_never_shows_a_secret() -> None:
    html = render(_view(), (503, {"reason": f"last cycle: failed: token {JWT} <img src=x>"}))
    assert JWT not in html and "[redacted]" in html
    assert "<script>alert" not in html and "<img src=x>" not in html and "<b>R&D</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x&gt;" in html
    assert "script" not in Page(html).tags


def test_a_paused_store_says_so_before_anything_else() -> None:
    words = Page(render(_view(paused=True), (200, {"last_success": None}))).words
    assert words.startswith("syncd Paused Provisioning is off") and "`syncd resume`" in words


def test_a_healthy_daemon_says_when_it_last_succeeded() -> None:
    moment = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds").replace("+00:00", "Z")
    words = Page(render(_view(), (200, {"last_success": moment, "cycle_running": True}))).words
    assert re.search(r"Healthy Last successful cycle 5 min ago \(.*\)\. A cycle is running now\.", words)


def test_before_the_store_is_read_the_page_says_so() -> None:
    words = Page(render(None, (503, {"reason": "no cycle finished yet"}))).words
    assert "The store has not been read yet" in words and "Read from the store never" in words


def test_a_refusal_is_pending_only_until_a_run_applies_its_plan(tmp_path: Path) -> None:
    with history(tmp_path) as world:
        for user in world.unassigned:
            world.tenant.assign(user)
        applied = world.sync()
        assert applied.status in (RunStatus.SUCCESS, RunStatus.PARTIAL)
        view = gather(world.store)
        assert view.refusal is None
        assert "A safety limit is holding" not in render(view, UNHEALTHY)


def test_the_chart_shows_the_last_hundred_runs(tmp_path: Path) -> None:
    store = MemoryStore()
    for _ in range(RUNS_CHARTED + 20):
        run_id = store.begin_run("daemon")
        store.finish_run(run_id, "success", changes=1, errors=0, summary={}, message="", graph_requests=4)
    view = gather(store)
    assert len(view.runs) == RUNS_CHARTED and view.runs[0]["id"] == RUNS_CHARTED + 20
    page = Page(render(view, UNHEALTHY))
    assert len(page.bars) == 4 * RUNS_CHARTED
    assert f"The last {RUNS_CHARTED} runs" in page.words


def test_the_daemon_serves_the_page_and_follows_a_pause_between_cycles(tmp_path: Path) -> None:
    with history(tmp_path) as world:
        config = replace(world.config, daemon=replace(world.config.daemon, metrics_address="127.0.0.1:0"))
        daemon = Daemon(config)
        daemon.status_refresh_seconds = 0.2
        running = Running(daemon)
        try:
            wait_for(lambda: daemon.metrics_server is not None)
            assert daemon.metrics_server is not None
            url = f"{daemon.metrics_server.url}/"

            def words() -> str:
                return Page(urllib.request.urlopen(url, timeout=5).read().decode()).words

            wait_for(lambda: "A safety limit is holding run #7's plan" in words())
            assert "Seats 25" in words()
            world.store.set_paused(True)
            wait_for(lambda: words().startswith("syncd Paused"))
        finally:
            assert running.stop() == 0
