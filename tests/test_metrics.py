"""Metrics and health, scraped over HTTP from a real server on loopback."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from syncd.apply import Failure
from syncd.changes import AddMember, CreateTeam, Plan, Problem
from syncd.errors import ExitCode
from syncd.metrics import Metrics, MetricsServer, parse_address
from syncd.reconcile import RunResult
from syncd.redaction import register_secret


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics(interval_seconds=2400, clock=clock)


@pytest.fixture
def server(metrics: Metrics) -> Iterator[MetricsServer]:
    server = MetricsServer("127.0.0.1:0", metrics)
    server.start()
    yield server
    server.stop()


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def samples(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = get(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def health(server: MetricsServer) -> tuple[int, dict[str, Any]]:
    status, headers, body = get(server.url + "/healthz")
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def plan_with_changes() -> Plan:
    return Plan(
        changes=(
            CreateTeam(entra_id="g-1", name="Sales"),
            AddMember(team_entra_id="g-1", team_name="Sales", user_entra_id="u-1", email="a@x.com"),
            AddMember(team_entra_id="g-1", team_name="Sales", user_entra_id="u-2", email="b@x.com"),
        ),
        errors=(Problem("USER_NO_EMAIL", "user", "u-3", "u-3", "no email"),),
    )


def partial_result() -> RunResult:
    return RunResult(
        "partial",
        ExitCode.PARTIAL,
        plan_with_changes(),
        run_id=7,
        message="Plan: 1 create team, 2 add member.",
        applied=2,
        failed=[Failure(AddMember("g-1", "Sales", "u-2", "b@x.com"), "APPLY_FAILED", "x")],
        graph_requests=12,
        graph_throttled=2,
        applied_counts={"create_team": 1, "add_member": 1},
    )


def test_metrics_are_served_in_prometheus_text(metrics: Metrics, server: MetricsServer, clock: Clock) -> None:
    metrics.record_result(partial_result(), duration=3.5)
    metrics.record_counts({"active_users": 28, "inactive_users": 2, "teams": 3})
    metrics.record_error("GRAPH_UNAVAILABLE", "Graph answered 503", duration=1.0)
    metrics.record_error("LOCKED", "another syncd run holds the lock", duration=0.1)
    found = samples(server)
    assert found[("syncd_runs_total", (("status", "partial"),))] == 1
    assert found[("syncd_runs_total", (("status", "failed"),))] == 1
    assert found[("syncd_runs_total", (("status", "locked"),))] == 1
    assert found[("syncd_runs_total", (("status", "success"),))] == 0
    assert found[("syncd_changes_applied_total", (("op", "create_team"),))] == 1
    assert found[("syncd_changes_applied_total", (("op", "add_member"),))] == 1
    assert found[("syncd_changes_applied_total", (("op", "create_user"),))] == 0
    assert found[("syncd_objects_failed_total", (("code", "USER_NO_EMAIL"),))] == 1
    assert found[("syncd_objects_failed_total", (("code", "APPLY_FAILED"),))] == 1
    assert found[("syncd_cycle_errors_total", (("code", "GRAPH_UNAVAILABLE"),))] == 1
    assert found[("syncd_cycle_duration_seconds_count", ())] == 3
    assert found[("syncd_cycle_duration_seconds_sum", ())] == pytest.approx(4.6)
    assert found[("syncd_graph_requests_total", ())] == 12
    assert found[("syncd_graph_throttled_total", ())] == 2
    assert found[("syncd_last_success_timestamp_seconds", ())] == clock.now
    assert found[("syncd_users", (("state", "active"),))] == 28
    assert found[("syncd_users", (("state", "inactive"),))] == 2
    assert found[("syncd_teams", ())] == 3
    assert found[("syncd_paused", ())] == 0


def test_metrics_live_in_their_own_registry(metrics: Metrics) -> None:
    assert metrics.registry is not REGISTRY
    assert REGISTRY.get_sample_value("syncd_runs_total", {"status": "success"}) is None
    Metrics(interval_seconds=60)  # a second one does not clash


def test_openmetrics_is_served_when_asked_for(metrics: Metrics, server: MetricsServer) -> None:
    request = urllib.request.Request(
        server.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().endswith(b"# EOF\n")


def test_health_before_the_first_cycle_finishes_is_503(metrics: Metrics, server: MetricsServer) -> None:
    metrics.cycle_started()
    status, body = health(server)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["reason"] == "no cycle finished yet"
    assert body["cycle_running"] is True


def test_health_is_ok_after_a_successful_cycle(metrics: Metrics, server: MetricsServer) -> None:
    metrics.record_result(RunResult("success", ExitCode.OK, message="Plan: no changes."), duration=1)
    status, body = health(server)
    assert status == 200
    assert body["status"] == "ok"
    assert body["last_status"] == "success"
    assert body["last_success_age_seconds"] == 0


def test_one_failed_cycle_after_a_success_is_still_healthy(
    metrics: Metrics, server: MetricsServer, clock: Clock
) -> None:
    metrics.record_result(RunResult("success", ExitCode.OK), duration=1)
    clock.now += 2400
    metrics.record_error("GRAPH_UNAVAILABLE", "Graph answered 503", duration=1)
    status, body = health(server)
    assert status == 200
    assert body["last_status"] == "failed"


def test_health_is_503_when_the_last_success_is_older_than_two_intervals(
    metrics: Metrics, server: MetricsServer, clock: Clock
) -> None:
    metrics.record_result(RunResult("success", ExitCode.OK), duration=1)
    clock.now += 2 * 2400 + 1
    metrics.record_error("GRAPH_UNAVAILABLE", "Graph answered 503", duration=1)
    status, body = health(server)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert "more than two intervals" in body["reason"]
    assert "[GRAPH_UNAVAILABLE] Graph answered 503" in body["reason"]


def test_a_first_cycle_that_failed_is_unhealthy_with_its_reason(metrics: Metrics, server: MetricsServer) -> None:
    metrics.record_error("GRAPH_AUTH", "Graph rejected the credentials (401)", duration=1)
    status, body = health(server)
    assert status == 503
    assert (
        body["reason"]
        == "no successful cycle yet; last cycle: failed: [GRAPH_AUTH] Graph rejected the credentials (401)"
    )


@pytest.mark.parametrize("outcome", ["partial", "paused"])
def test_partial_and_paused_cycles_count_as_healthy(metrics: Metrics, server: MetricsServer, outcome: str) -> None:
    metrics.record_result(RunResult(outcome, ExitCode.OK), duration=1)
    assert health(server)[0] == 200


@pytest.mark.parametrize("outcome", ["incomplete", "refused"])
def test_incomplete_and_refused_cycles_are_not_a_success(metrics: Metrics, server: MetricsServer, outcome: str) -> None:
    metrics.record_result(RunResult(outcome, ExitCode.PARTIAL), duration=1)
    assert health(server)[0] == 503


def test_a_locked_cycle_is_healthy_only_while_the_store_shows_someone_syncing(
    metrics: Metrics, server: MetricsServer, clock: Clock
) -> None:
    metrics.record_error("LOCKED", "another syncd run holds the lock", duration=0)
    assert health(server)[0] == 503
    metrics.record_store_success(clock.now - 60)
    assert health(server)[0] == 200
    clock.now += 3 * 2400
    metrics.record_error("LOCKED", "another syncd run holds the lock", duration=0)
    assert health(server)[0] == 503, "a lock that is never released is unhealthy"
    assert samples(server)[("syncd_last_success_timestamp_seconds", ())] == clock.now - 3 * 2400 - 60


def test_a_refused_cycle_is_not_a_success(metrics: Metrics, server: MetricsServer) -> None:
    metrics.record_result(RunResult("refused", ExitCode.REFUSED, message="would deactivate 900 users"), duration=1)
    status, body = health(server)
    assert status == 503
    assert "refused: would deactivate 900 users" in body["reason"]


def test_paused_cycles_set_the_paused_gauge(metrics: Metrics, server: MetricsServer) -> None:
    metrics.record_result(RunResult("paused", ExitCode.OK), duration=0)
    assert samples(server)[("syncd_paused", ())] == 1


def test_health_never_shows_a_secret(metrics: Metrics, server: MetricsServer) -> None:
    secret = "health-check-secret-4f9a1c"
    register_secret(secret)
    metrics.record_error(
        "GRAPH_AUTH", f"Graph said: client_secret={secret} and Authorization: Bearer abc.def.ghi", duration=1
    )
    status, _, raw = get(server.url + "/healthz")
    assert status == 503
    assert secret not in raw.decode() and "abc.def.ghi" not in raw.decode()
    body = json.loads(raw)
    assert "[redacted]" in body["reason"] and "[redacted]" in body["last_message"]


def test_query_strings_and_absolute_targets_reach_the_same_path(server: MetricsServer) -> None:
    assert get(server.url + "/metrics?name[]=syncd_runs_total")[0] == 200
    host = server.url.removeprefix("http://")
    answer = exchange(server, f"GET http://{host}/healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 503 ")


def exchange(server: MetricsServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_other_paths_are_404_and_head_has_no_body(server: MetricsServer) -> None:
    assert get(server.url + "/nothing")[0] == 404
    status, headers, body = get(server.url + "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_ipv6_loopback_is_served(metrics: Metrics) -> None:
    server = MetricsServer("[::1]:0", metrics)
    try:
        server.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert server.url.startswith("http://[::1]:")
        assert get(server.url + "/metrics")[0] == 200
    finally:
        server.stop()


def test_an_address_in_use_raises_oserror(metrics: Metrics, server: MetricsServer) -> None:
    with pytest.raises(OSError):
        MetricsServer(f"127.0.0.1:{server.port}", metrics).start()


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    with pytest.raises(ValueError):
        parse_address("9464")
