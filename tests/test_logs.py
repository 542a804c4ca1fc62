"""Log setup (text, JSON, journald, dry run, redaction) and the terminal progress bar."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config import LogConfig
from syncd.logs import JsonFormatter, levels, redact, setup_logging
from syncd.progress import StageBars, make_progress

SECRET = "s3cr3t-Value~123"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMifQ.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    syncd_level = logging.getLogger("syncd").level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("syncd").setLevel(syncd_level)


def capture(
    log_config: LogConfig, *, verbosity: int = 0, dry_run: bool = False, stream: io.TextIOBase | None = None
) -> io.StringIO:
    output = stream if stream is not None else io.StringIO()
    setup_logging(log_config, verbosity=verbosity, dry_run=dry_run, stream=output)  # type: ignore[arg-type]
    return output  # type: ignore[return-value]


def test_json_lines_carry_ts_level_logger_message_and_extra_fields() -> None:
    output = capture(LogConfig(format="json"))
    logging.getLogger("syncd").info(
        "+ create user %s", "ada@example.com", extra={"op": "create_user", "entra_id": "e-1", "target": "ada"}
    )
    entry = json.loads(output.getvalue())
    assert entry["level"] == "INFO"
    assert entry["logger"] == "syncd"
    assert entry["message"] == "+ create user ada@example.com"
    assert (entry["op"], entry["entra_id"], entry["target"]) == ("create_user", "e-1", "ada")
    assert entry["ts"].endswith("Z") and "T" in entry["ts"]
    assert "dry_run" not in entry


def test_json_lines_escape_what_would_act_on_a_terminal_and_keep_plain_letters() -> None:
    """Formatted directly: a lone surrogate must not reach pytest's own log capture."""
    name = "Zoë \u202egnp.exe\u0085 \u200b x\udfff"
    record = logging.LogRecord("syncd", logging.INFO, __file__, 1, "+ create user %s", (name,), None)
    record.target = name
    line = JsonFormatter().format(record)
    assert not any(char in line for char in "\u202e\u0085\u200b\udfff")
    assert "Zoë" in line
    entry = json.loads(line)
    assert entry["message"] == f"+ create user {name}" and entry["target"] == name


def test_json_lines_include_the_exception() -> None:
    output = capture(LogConfig(format="json"))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("syncd.daemon").exception("cycle failed unexpectedly")
    entry = json.loads(output.getvalue())
    assert "RuntimeError: boom" in entry["exception"]


def test_text_lines_have_timestamps_outside_the_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    output = capture(LogConfig())
    logging.getLogger("syncd").warning("careful")
    line = output.getvalue().strip()
    assert line.endswith("WARNING syncd: careful")
    assert line[:4].isdigit()


def test_text_lines_leave_timestamps_to_journald(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        capture(LogConfig(), stream=stream)  # type: ignore[arg-type]
        logging.getLogger("syncd").error("graph down")
        logging.getLogger("syncd").info("cycle success")
        stream.seek(0)
        assert stream.read().splitlines() == ["<3>ERROR syncd: graph down", "<6>INFO syncd: cycle success"]


def test_journal_stream_of_another_file_keeps_timestamps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with (tmp_path / "terminal").open("w+") as stream:
        capture(LogConfig(), stream=stream)  # type: ignore[arg-type]
        logging.getLogger("syncd").info("hello")
        stream.seek(0)
        assert stream.read()[:4].isdigit()


def test_dry_run_lines_are_labelled() -> None:
    output = capture(LogConfig(), dry_run=True)
    logging.getLogger("syncd").info("+ create user ada")
    assert "INFO syncd: [dry run] + create user ada" in output.getvalue()
    output = capture(LogConfig(format="json"), dry_run=True)
    logging.getLogger("syncd").info("+ create user ada")
    assert json.loads(output.getvalue())["dry_run"] is True


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {SECRET}",
        f"headers={{'Authorization': 'Bearer {SECRET}'}}",
        f"sending bearer {SECRET} to graph",
        f"POST /token body=grant_type=client_credentials&client_secret={SECRET}&scope=x",
        f'{{"client_secret": "{SECRET}"}}',
        f"postgresql://syncd:{SECRET}@db.example.com/syncd",
        f"access_token={SECRET}",
    ],
)
def test_secret_looking_text_is_redacted(text: str) -> None:
    output = capture(LogConfig())
    logging.getLogger("azure.core").warning("%s", text)
    assert SECRET not in output.getvalue()
    assert SECRET not in redact(text)


def test_tokens_are_redacted_from_extra_fields_and_tracebacks() -> None:
    output = capture(LogConfig(format="json"))
    try:
        raise ValueError(f"token {JWT} rejected")
    except ValueError:
        logging.getLogger("syncd").exception("failed", extra={"target": f"Bearer {SECRET}"})
    assert JWT not in output.getvalue()
    assert SECRET not in output.getvalue()
    assert "ValueError: token [redacted] rejected" in json.loads(output.getvalue())["exception"]


@pytest.mark.parametrize(
    "text",
    [
        "+ create user ada@example.com [3d9390b9]: name 'Ada', user_type 'member'",
        "graph.client_secret: no client secret found; set client_secret_file",
        "graph.client_secret_file: set either client_secret or client_secret_file, not both",
        "store sqlite:////var/lib/syncd/syncd.db",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_levels_follow_config_and_verbosity() -> None:
    assert levels(LogConfig(level="INFO")) == (logging.INFO, logging.WARNING)
    assert levels(LogConfig(level="WARNING")) == (logging.WARNING, logging.WARNING)
    assert levels(LogConfig(level="ERROR")) == (logging.ERROR, logging.ERROR)
    assert levels(LogConfig(level="INFO"), verbosity=1) == (logging.DEBUG, logging.WARNING)
    assert levels(LogConfig(level="INFO"), verbosity=2) == (logging.DEBUG, logging.DEBUG)
    assert levels(LogConfig(level="DEBUG"), verbosity=-1) == (logging.WARNING, logging.WARNING)


def test_libraries_are_quiet_unless_very_verbose() -> None:
    output = capture(LogConfig())
    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("syncd").info("kept")
    assert "Added job" not in output.getvalue() and "kept" in output.getvalue()
    output = capture(LogConfig(), verbosity=2)
    logging.getLogger("apscheduler.scheduler").debug("Looking for jobs")
    assert "Looking for jobs" in output.getvalue()


def test_setting_up_twice_keeps_one_handler() -> None:
    first = capture(LogConfig())
    second = capture(LogConfig())
    logging.getLogger("syncd").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


# --------------------------------------------------------------------------- progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_bar_when_the_stream_is_not_a_terminal() -> None:
    assert make_progress(io.StringIO()) is None


def screen(terminal: io.StringIO) -> list[str]:
    """What the terminal shows: each line as its last redraw left it, escape codes left out."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())
    return [line.split("\r")[-1].rstrip() for line in text.split("\n")]


def test_progress_bar_redraws_one_line_per_stage() -> None:
    terminal = Terminal()
    progress = make_progress(terminal)
    assert progress is not None
    progress("users", 0, 4)
    progress("users", 4, 4)
    progress("groups", 1, 2)
    progress("groups", 2, 2)
    assert screen(terminal) == ["users  [" + "#" * 30 + "]  4/4", "groups  [" + "#" * 30 + "]  2/2", ""]


def test_a_half_done_stage_shows_its_part_and_ends_its_line_when_the_next_begins() -> None:
    terminal = Terminal()
    bars = StageBars(terminal, clock=lambda: 0.0)
    bars("users", 5, 10)
    bars("apply changes", 0, 3)
    assert screen(terminal)[0] == "users  [" + "#" * 15 + "-" * 15 + "]  5/10"
    assert screen(terminal)[1].startswith("apply changes  [")


def test_progress_bar_throttles_redraws_but_always_draws_the_end() -> None:
    terminal = Terminal()
    bars = StageBars(terminal, clock=lambda: 0.0)  # the clock never moves
    for done in range(100):
        bars("apply", done, 100)
    bars("apply", 100, 100)
    drawn = terminal.getvalue().count("/100")
    assert drawn <= 3, f"{drawn} redraws"
    assert screen(terminal) == ["apply  [" + "#" * 30 + "]  100/100", ""]


def test_a_count_without_a_known_total_gets_its_end_when_the_total_is_known() -> None:
    terminal = Terminal()
    bars = StageBars(terminal)
    bars("fetch assignments", 999, 0)
    assert "999" in screen(terminal)[0]
    bars("fetch assignments", 1500, 1500)
    assert screen(terminal) == ["fetch assignments  [" + "#" * 30 + "]  1500/1500", ""]


def test_progress_accepts_a_single_status_line() -> None:
    terminal = Terminal()
    bars = StageBars(terminal)
    bars("users", 1, 3)
    bars("assignments: 40 (30 users, 10 groups)")
    assert screen(terminal)[-2:] == ["assignments: 40 (30 users, 10 groups)", ""]
