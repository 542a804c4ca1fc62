"""The README stays true: every error code, exit code, command and config key is in it."""

from __future__ import annotations

import re
from pathlib import Path

from syncd import config
from syncd.errors import CODES, ExitCode

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_lists_every_error_code_with_its_meaning():
    for entry in CODES.values():
        assert f"| `{entry.code}` | {entry.meaning} | {entry.remedy} |" in README


def test_readme_lists_every_exit_code():
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \| ", README, re.MULTILINE), code


def test_readme_lists_every_config_key():
    for section, keys in config.SCHEMA.items():
        for key in keys:
            assert f"`{section}.{key}`" in README, f"{section}.{key}"


def test_readme_lists_every_command():
    from syncd.cli import cli

    for name in cli.commands:
        assert f"syncd {name}" in README, name
