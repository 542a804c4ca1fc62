"""Secrets never leave the process: one function masks them on every path out.

:func:`redact` masks anything that looks like a bearer token, an ``Authorization`` header, a
``client_secret=`` (or similar) parameter, a JWT or a password in a URL, and every exact value
registered with :func:`register_secret`: the client secret when it is read, each access token
when it is obtained.  A token that Graph echoes back inside an error message is therefore masked
wherever that message goes: error lines, ``--json`` output, the run record in the store, logs and
``/healthz``.  :class:`~syncd.errors.SyncdError` redacts its message when it is made; the log
handler, the store and the metrics server redact again as the last line of defence.
"""

from __future__ import annotations

import re
import threading

REDACTED = "[redacted]"
_SECRET_KEYS = r"client_secret|client_assertion|access_token|refresh_token|id_token|password|passwd"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"""(authorization["']?\s*[:=]\s*["']?)[^\r\n"',}]+""", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"(bearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(rf"(\b(?:{_SECRET_KEYS})=)[^&\s\"',}}]+", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(rf"""(["'](?:{_SECRET_KEYS})["']\s*:\s*["'])[^"']+""", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@", re.IGNORECASE), r"\1***@"),
)
MIN_SECRET_LENGTH = 8
"""Shorter values are not registered: masking every "abc" in every message would garble output."""

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register_secret(value: str | None) -> None:
    """Mask ``value`` (a client secret, an access token) wherever it would be printed or stored."""
    global _secrets
    if not value:
        return
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _lock:
        _secrets = _secrets | {value}


def redact(text: str) -> str:
    """``text`` with registered secrets, bearer tokens, Authorization headers, secret parameters,
    JWTs and URL passwords masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
