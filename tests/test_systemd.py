"""The systemd units: they verify, they are hardened, they schedule every 40 minutes, and syncd
runs inside the sandbox they describe."""

from __future__ import annotations

import ctypes
import itertools
import json
import re
import shutil
import signal
import subprocess
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from syncd.config import DaemonConfig

from .test_daemon_process import Setup, free_port
from .test_daemon_process import setup as setup  # the fixture, re-exported for pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
SERVICE = UNITS / "syncd.service"
ONESHOT = UNITS / "syncd-sync.service"
TIMER = UNITS / "syncd-sync.timer"
DOCS = (ROOT / "README.md",)
ANALYZE = shutil.which("systemd-analyze")
BINARY = "/usr/local/bin/syncd"

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def service_docs() -> str:
    """The service documentation in the README."""
    return "\n".join(path.read_text() for path in DOCS if path.exists())


def directives(path: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, values in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def hardening(path: Path) -> list[str]:
    text = path.read_text()
    block = text[text.index("DynamicUser=yes") :]
    block = block[: block.index("[Install]")] if "[Install]" in block else block
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- verify and security


@needs_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    executable = tmp_path / "bin" / "syncd"
    executable.parent.mkdir()
    executable.write_text("#!/bin/sh\nexit 0\n")
    executable.chmod(0o755)
    copies = []
    for unit in (SERVICE, ONESHOT, TIMER):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(BINARY, str(executable)))
        copies.append(str(copy))
    result = analyze("verify", "--man=no", *copies)
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if "syncd" in line]
    assert problems == []


@needs_analyze
@pytest.mark.parametrize("unit", [SERVICE, ONESHOT], ids=lambda path: path.name)
def test_the_services_score_as_the_docs_say_in_systemd_analyze_security(unit: Path) -> None:
    result = analyze("security", "--offline=yes", str(unit))
    if "--offline" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip("this systemd-analyze has no offline mode")
    score = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([0-9.]+) (\w+)", result.stdout)
    assert score is not None, result.stdout + result.stderr
    assert float(score.group(1)) <= 1.5
    stated = re.search(r"scores \*\*([0-9.]+) (\w+)\*\*", service_docs())
    assert stated is not None, "the service documentation states the score"
    assert stated.groups() == score.groups()


def test_the_service_is_a_notify_service_that_systemd_supervises() -> None:
    unit = directives(SERVICE)
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == [f"{BINARY} run"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["78"]
    assert unit["KillSignal"] == ["SIGTERM"]
    assert unit["WatchdogSec"]
    stop = int(unit["TimeoutStopSec"][0].removesuffix("s"))
    assert stop > DaemonConfig().stop_timeout_seconds, "systemd waits longer than syncd's own stop timeout"


def test_secrets_state_and_config_come_from_systemd_directories() -> None:
    for path in (SERVICE, ONESHOT):
        unit = directives(path)
        assert unit["DynamicUser"] == ["yes"]
        assert unit["StateDirectory"] == ["syncd"]
        assert unit["ConfigurationDirectory"] == ["syncd"]
        assert unit["LoadCredential"] == ["client-secret:/etc/syncd/client-secret"]
        assert unit["UMask"] == ["0077"]


def test_the_service_is_hardened_as_required() -> None:
    unit = directives(SERVICE)
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallErrorNumber": "EPERM",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectProc": "invisible",
        "ProcSubset": "pid",
        "PrivateUsers": "yes",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], key
    assert unit["SystemCallFilter"][0] == "@system-service"


def test_both_services_share_the_same_sandbox() -> None:
    assert hardening(SERVICE) == hardening(ONESHOT)


def test_the_oneshot_counts_partial_and_locked_runs_as_success() -> None:
    unit = directives(ONESHOT)
    assert unit["Type"] == ["oneshot"]
    assert unit["ExecStart"] == [f"{BINARY} sync"]
    assert unit["SuccessExitStatus"] == ["3 75"]


# --------------------------------------------------------------------------- every 40 minutes


def assert_every_40_minutes(times: list[datetime]) -> None:
    times = sorted(set(times))
    gaps = {later - earlier for earlier, later in itertools.pairwise(times)}
    assert gaps == {timedelta(minutes=40)}, sorted(gaps)


@needs_analyze
def test_the_timer_fires_every_40_minutes_around_the_clock() -> None:
    timer = directives(TIMER)
    assert timer["Persistent"] == ["true"]
    assert timer["RandomizedDelaySec"]
    elapses: list[datetime] = []
    for expression in timer["OnCalendar"]:
        result = analyze("calendar", "--iterations=80", expression)
        assert result.returncode == 0, result.stderr
        elapses += [
            datetime.strptime(match, "%Y-%m-%d %H:%M:%S")
            for match in re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", result.stdout)
        ]
    elapses.sort()
    day = [moment for moment in elapses if moment < elapses[0] + timedelta(days=2)]
    assert len(day) >= 72
    assert_every_40_minutes(day)


def cron_field(field: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (int(x) for x in span.split("-"))
        else:
            first = last = int(span)
            if step:
                last = high
        values.update(range(first, last + 1, int(step or 1)))
    return values


def test_the_cron_lines_in_the_docs_run_every_40_minutes() -> None:
    block = service_docs().split("```cron", 1)[1].split("```", 1)[0]
    schedules = [line.split()[:5] for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert schedules, "the service documentation has a ```cron block"
    start = datetime(2024, 1, 1)
    times = []
    for minute, hour, day, month, weekday in schedules:
        assert (day, month, weekday) == ("*", "*", "*")
        for h in cron_field(hour, 0, 23):
            for m in cron_field(minute, 0, 59):
                times += [start + timedelta(days=d, hours=h, minutes=m) for d in range(2)]
    assert_every_40_minutes(times)
    assert cron_field("*/40", 0, 59) == {0, 40}, "why */40 is not every 40 minutes"


# --------------------------------------------------------------------------- the sandbox, emulated

SECCOMP_RUNNER = """
import ctypes, json, os, sys

rules = json.loads(os.environ["SANDBOX_RULES"])
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    sys.exit("cannot set no_new_privs")
mdwe = libc.prctl(65, 1, 0, 0, 0) == 0  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3+)

class Compare(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

seccomp = ctypes.CDLL("libseccomp.so.2")
seccomp.seccomp_init.restype = ctypes.c_void_p
seccomp.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(Compare)]
seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
context = seccomp.seccomp_init(0x00050000 | 1)  # everything else: EPERM
ALLOW, MASKED_EQ, EQ = 0x7FFF0000, 7, 4
for name in rules["allow"]:
    number = seccomp.seccomp_syscall_resolve_name(name.encode())
    if number >= 0:
        seccomp.seccomp_rule_add_array(context, ALLOW, number, 0, None)
for name, arg, op, a, b in rules["allow_if"]:
    number = seccomp.seccomp_syscall_resolve_name(name.encode())
    if number >= 0:
        assert seccomp.seccomp_rule_add_array(context, ALLOW, number, 1, (Compare * 1)(Compare(arg, op, a, b))) == 0
if seccomp.seccomp_load(context) != 0:
    sys.exit("cannot load the seccomp filter")
print(f"sandbox: seccomp allow-list loaded, kernel MDWE {'on' if mdwe else 'unavailable'}", file=sys.stderr)

import azure.identity.aio, msal, cryptography.x509, psycopg, sqlalchemy, prometheus_client  # noqa
from syncd.cli import main
sys.argv = ["syncd", *sys.argv[1:]]
main()
"""
"""Loads, before syncd starts, the seccomp filter systemd builds from the unit's SystemCallFilter=,
MemoryDenyWriteExecute= and RestrictAddressFamilies= lines (systemd 252 implements all three with
seccomp), plus the kernel's own MDWE where the kernel has it."""

PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


def syscall_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    current = None
    for line in analyze("syscall-filter").stdout.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(name: str, groups: dict[str, list[str]]) -> set[str]:
    if not name.startswith("@"):
        return {name}
    return set().union(*(expand(member, groups) for member in groups[name]))


def sandbox_rules() -> dict[str, list]:
    unit = directives(SERVICE)
    groups = syscall_groups()
    allowed: set[str] = set()
    for line in unit["SystemCallFilter"]:
        names = set().union(*(expand(name, groups) for name in line.lstrip("~").split()))
        allowed = allowed - names if line.startswith("~") else allowed | names
    guarded = {"mmap", "mmap2", "mprotect", "pkey_mprotect", "shmat", "socket"}
    conditions = [
        *[("mmap", 2, 7, PROT_WRITE | PROT_EXEC, value) for value in (0, PROT_WRITE, PROT_EXEC)],
        *[("mmap2", 2, 7, PROT_WRITE | PROT_EXEC, value) for value in (0, PROT_WRITE, PROT_EXEC)],
        ("mprotect", 2, 7, PROT_EXEC, 0),
        ("pkey_mprotect", 2, 7, PROT_EXEC, 0),
        ("shmat", 2, 7, SHM_EXEC, 0),
        *[("socket", 0, 4, family, 0) for family in (AF_UNIX, AF_INET, AF_INET6)],
    ]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert unit["MemoryDenyWriteExecute"] == ["yes"]
    return {"allow": sorted(allowed - guarded), "allow_if": conditions}


def libseccomp_available() -> bool:
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    return True


@pytest.mark.slow
@needs_analyze
@pytest.mark.skipif(not libseccomp_available(), reason="libseccomp is not installed")
def test_the_daemon_runs_inside_the_units_syscall_filter_and_w_xor_x(setup: Setup) -> None:
    port = free_port()
    setup.write_config(metrics_address=f"127.0.0.1:{port}")
    daemon = setup.start("run", runner=SECCOMP_RUNNER, SANDBOX_RULES=json.dumps(sandbox_rules()))
    daemon.wait_for_line("sandbox: seccomp allow-list loaded")
    daemon.wait_for_line("cycle success", times=2, timeout=60)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert b"syncd_runs_total" in response.read()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.text
    assert "Operation not permitted" not in daemon.text
    assert "Traceback" not in daemon.text
