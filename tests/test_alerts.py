"""Notifications: one message per change of condition, the command to run next, secrets never shown.

The messages go through the real Apprise library to a JSON webhook (``json://``) served on loopback
by the test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from syncd.alerts import NotifyConfig, Outcome, after_run, condition_after, message_for
from syncd.store import MemoryStore
from tests.test_cli import snapshot_doc
from tests.test_cli import syncd as syncd  # the fixture, re-exported for pytest

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Webhook:
    """A JSON webhook on loopback that keeps what it is sent."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


# ------------------------------------------------------------------ the conditions


def test_one_incomplete_read_pages_nobody_two_in_a_row_do():
    config = NotifyConfig(urls=("json://x",))
    first = condition_after({}, Outcome("incomplete"), config, NOW, NOW)
    assert first["condition"] == "ok"
    second = condition_after(first, Outcome("incomplete"), config, NOW, NOW)
    assert second["condition"] == "incomplete"
    assert condition_after(second, Outcome("success"), config, NOW, NOW)["condition"] == "ok"


def test_refused_and_failed_are_at_once_and_stale_comes_with_time():
    config = NotifyConfig(urls=("json://x",), stale_after_minutes=60)
    assert condition_after({}, Outcome("refused"), config, NOW, NOW)["condition"] == "refused"
    assert condition_after({}, Outcome("failed"), config, NOW, NOW)["condition"] == "failed"
    locked_long = condition_after({}, Outcome("locked"), config, NOW - timedelta(minutes=61), NOW)
    assert locked_long["condition"] == "stale"
    locked_now = condition_after({}, Outcome("locked"), config, NOW - timedelta(minutes=5), NOW)
    assert locked_now["condition"] == "ok"


@pytest.mark.parametrize(
    ("condition", "command"),
    [("refused", "syncd sync --allow-deletes"), ("failed", "syncd check"), ("incomplete", "syncd explain")],
)
def test_a_message_says_what_happened_and_the_command_to_run_next(condition, command):
    message = message_for(condition, "ok", Outcome(condition, 7, 3, 2, "the plan deactivates 40 users"), NotifyConfig())
    assert message is not None and command in message.body
    assert "run 7" in message.body and "the plan deactivates 40 users" in message.body


def test_events_not_wanted_are_not_sent_and_recovery_is_its_own_event():
    config = NotifyConfig(events=("recovered",))
    assert message_for("failed", "ok", Outcome("failed"), config) is None
    recovered = message_for("ok", "failed", Outcome("success", 8), config)
    assert recovered is not None and recovered.event == "recovered" and "failed" in recovered.body


# ------------------------------------------------------------------ through Apprise


def test_one_message_per_change_of_condition_not_per_run(webhook):
    config = NotifyConfig(urls=(webhook.url,))
    store = MemoryStore()
    sent = [
        after_run(config, store, Outcome(status, n), NOW, NOW)
        for n, status in enumerate(["success", "refused", "refused", "refused", "success", "success"], start=1)
    ]
    assert [message.event if message else None for message in sent] == [None, "refused", None, None, "recovered", None]
    assert [item["title"] for item in webhook.received] == [
        "syncd: a sync was refused by a safety limit",
        "syncd: provisioning recovered",
    ]


def test_an_undelivered_message_is_tried_again_after_the_next_run(webhook):
    config = NotifyConfig(urls=("json://127.0.0.1:9/hook",))  # nobody listens there
    store = MemoryStore()
    after_run(config, store, Outcome("failed", 1), NOW, NOW)
    assert json.loads(store.get_state("notify.state") or "{}")["notified"] == "ok"
    working = NotifyConfig(urls=(webhook.url,))
    after_run(working, store, Outcome("failed", 2), NOW, NOW)
    assert [item["title"] for item in webhook.received] == ["syncd: provisioning failed"]


# ------------------------------------------------------------------ the command line


def test_a_refused_sync_notifies_once_and_the_recovery_too(syncd, webhook):
    syncd.config.write_text(syncd.config.read_text() + f'\n[notify]\nurls = ["{webhook.url}"]\n')
    syncd.write(snapshot_doc())
    assert syncd("sync", "--from-snapshot", str(syncd.snapshot))[0] == 0
    syncd.write(snapshot_doc(users=[], groups=[], assignments=[]))
    for _ in range(2):
        assert syncd("sync", "--from-snapshot", str(syncd.snapshot))[0] == 4
    assert [item["title"] for item in webhook.received] == ["syncd: a sync was refused by a safety limit"]
    assert "syncd sync --allow-deletes" in webhook.received[0]["message"]
    syncd.write(snapshot_doc())
    assert syncd("sync", "--from-snapshot", str(syncd.snapshot))[0] == 0
    assert [item["title"] for item in webhook.received][-1] == "syncd: provisioning recovered"


def test_notify_test_sends_one_message_and_needs_urls(syncd, webhook):
    code, _, err = syncd("notify", "test")
    assert code == 78 and "notify.urls" in err
    syncd.config.write_text(syncd.config.read_text() + f'\n[notify]\nurls = ["{webhook.url}"]\n')
    code, out, _ = syncd("notify", "test")
    assert code == 0 and "1 URL" in out
    assert [item["title"] for item in webhook.received] == ["syncd: test notification"]


def test_a_secret_in_a_url_is_never_shown(syncd):
    secret = "hunter2-notify-secret-771"
    syncd.config.write_text(syncd.config.read_text() + f'\n[notify]\nurls = ["json://bot:{secret}@127.0.0.1:9/hook"]\n')
    code, out, err = syncd("notify", "test")
    assert code == 1 and "NOTIFY_FAILED" in err
    assert secret not in out + err
    code, out, err = syncd("config", "check")
    assert secret not in out + err
