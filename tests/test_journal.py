"""A run's record is begun once and ended once; its summary line is written by one reporter."""

from __future__ import annotations

import logging

import pytest

from syncd.apply import Failure
from syncd.cancel import Cancelled
from syncd.changes import AddMember, CreateTeam, Plan, Problem
from syncd.errors import ExitCode, GraphError
from syncd.journal import recorded
from syncd.model import FetchFailure
from syncd.outcome import RunResult, report
from syncd.runs import RunStatus


def test_a_refused_run_is_recorded_once_with_its_plan_summary(store):
    plan = Plan(changes=(CreateTeam("g-1", "Sales"),))
    with recorded(store, "cli") as journal:
        journal.end(RunStatus.REFUSED, "too many", plan=plan)
        with pytest.raises(RuntimeError, match="already recorded"):
            journal.end(RunStatus.PAUSED, "again")
    run = store.reports.run(journal.run_id)
    assert (run["status"], run["message"], run["summary"]) == ("refused", "too many", {"create_team": 1})


def test_an_error_in_the_block_records_the_run_failed_with_its_code(store):
    with pytest.raises(GraphError), recorded(store, "cli") as journal:
        raise GraphError("Graph is down", code="GRAPH_UNAVAILABLE")
    run = store.reports.run(journal.run_id)
    assert (run["status"], run["changes"]) == ("failed", 0)
    assert run["message"] == "GRAPH_UNAVAILABLE: Graph is down"


def test_a_stop_request_says_what_the_store_holds(store):
    with pytest.raises(Cancelled) as stopped, recorded(store, "daemon") as journal:
        raise Cancelled()
    assert stopped.value.outcome == f"nothing of it was applied; run {journal.run_id} is recorded as failed"


def test_a_block_that_forgets_to_end_the_run_fails_it_and_says_so(store):
    with pytest.raises(RuntimeError, match="without recording how"), recorded(store, "cli") as journal:
        pass
    assert store.reports.run(journal.run_id)["status"] == "failed"


def test_a_run_that_committed_its_outcome_is_never_relabelled(store):
    with pytest.raises(KeyboardInterrupt), recorded(store, "cli") as journal:
        store.finish_run(journal.run_id, RunStatus.SUCCESS, changes=3, errors=0, summary={}, message="done")
        journal.committed()
        raise KeyboardInterrupt
    assert store.reports.run(journal.run_id)["status"] == "success"


def partial() -> RunResult:
    plan = Plan(
        changes=(CreateTeam("g-1", "Sales"), AddMember("g-1", "Sales", "u-1", "a@x.com")),
        errors=(Problem("USER_NO_EMAIL", "user", "u-3", "u-3", "no email"),),
    )
    return RunResult(
        RunStatus.PARTIAL,
        ExitCode.PARTIAL,
        plan,
        run_id=7,
        message="Plan: 1 create team, 1 add member.",
        applied=1,
        failed=[Failure(plan.changes[1], "APPLY_FAILED", "gone")],
        failures=[FetchFailure("GRAPH_UNAVAILABLE", "down", "/groups/g-2/members")],
        duration=1.25,
        applied_counts={"create_team": 1},
    )


def test_the_daemon_and_the_command_line_report_a_run_with_one_line(caplog):
    caplog.set_level(logging.DEBUG)
    report(logging.getLogger("syncd"), partial(), cycle=True)
    report(logging.getLogger("syncd"), partial())
    cycle, one_shot = caplog.records
    assert cycle.getMessage() == "cycle partial in 1.2s (run 7): applied 1 changes (1 create team), 3 errors"
    assert cycle.levelno == logging.WARNING
    assert one_shot.getMessage() == "run 7 partial in 1.2s: applied 1 changes (1 create team), 3 errors"
    assert one_shot.levelno == logging.INFO


def test_a_refused_run_says_why_in_its_line(caplog):
    caplog.set_level(logging.DEBUG)
    result = RunResult(RunStatus.REFUSED, ExitCode.REFUSED, run_id=3, message="would deactivate 600 users")
    report(logging.getLogger("syncd"), result, cycle=True)
    (line,) = caplog.records
    assert line.getMessage().endswith("applied 0 changes, 0 errors; would deactivate 600 users")
    assert line.levelno == logging.ERROR


def test_failed_changes_and_failed_reads_are_kept_apart():
    result = partial()
    assert result.failed_json() == [{"op": "add_member", "target": "Sales", "code": "APPLY_FAILED", "message": "gone"}]
    assert result.failures_json() == [{"code": "GRAPH_UNAVAILABLE", "message": "down", "path": "/groups/g-2/members"}]
    assert RunResult("success", ExitCode.OK).status is RunStatus.SUCCESS
