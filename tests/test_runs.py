"""Run statuses are defined once (syncd.runs) and everything else agrees with that definition."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from syncd.errors import ExitCode
from syncd.metrics import HEALTHY_STATUSES
from syncd.runs import RUN_STATUSES, SUCCESS_STATUSES, RunStatus

ROOT = Path(__file__).resolve().parent.parent


def test_the_first_migrations_constraint_holds_exactly_the_run_statuses():
    migration = (ROOT / "syncd" / "store" / "migrations" / "versions" / "0001_initial.py").read_text()
    (listed,) = re.findall(r"status IN \(('running'[^)]*)\)", migration)
    assert tuple(re.findall(r"'(\w+)'", listed)) == RUN_STATUSES


@pytest.mark.parametrize(
    ("status", "code", "ok", "level"),
    [
        (RunStatus.SUCCESS, ExitCode.OK, True, logging.INFO),
        (RunStatus.PAUSED, ExitCode.OK, True, logging.INFO),
        (RunStatus.PARTIAL, ExitCode.PARTIAL, True, logging.WARNING),
        (RunStatus.INCOMPLETE, ExitCode.PARTIAL, False, logging.WARNING),
        (RunStatus.REFUSED, ExitCode.REFUSED, False, logging.ERROR),
        (RunStatus.FAILED, ExitCode.FAILED, False, logging.ERROR),
    ],
)
def test_each_ending_has_its_exit_code_health_and_log_level(status, code, ok, level):
    assert (status.exit_code, status.ok, status.log_level) == (code, ok, level)


def test_health_and_the_last_success_follow_the_definition():
    assert {status.value for status in RunStatus if status.ok} == HEALTHY_STATUSES
    assert set(SUCCESS_STATUSES) <= HEALTHY_STATUSES


def test_a_status_is_its_string_in_json_and_in_the_store():
    assert RunStatus.INCOMPLETE == "incomplete" and f"{RunStatus.INCOMPLETE}" == "incomplete"


def test_the_readme_names_every_run_status():
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("A run's status") :][:600]
    for status in RUN_STATUSES:
        if status != "dry_run":
            assert f"`{status}`" in paragraph, status
