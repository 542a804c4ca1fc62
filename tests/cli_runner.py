"""Run the syncd CLI in-process against one config file, as the CLI tests do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.cli import main


class CliRunner:
    """``runner("plan", "--json")`` -> (exit code, stdout, stderr); ``runner.json(...)`` parses stdout."""

    config: Path

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return exited.value.code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)
