"""Logging for every syncd command: one handler on stderr, text or JSON lines, secrets redacted.

:func:`setup_logging` builds the whole configuration from ``[log]`` and the command line:

* ``[log] level`` sets the ``syncd`` loggers; each ``-v`` lowers it (``-v`` debug for syncd,
  ``-vv`` debug for the libraries too), each ``-q`` raises it.  Libraries log warnings only.
* ``[log] format = "text"``: ``2024-05-01 12:00:00,000 INFO syncd: message``.  When stderr is
  connected to the journal (``$JOURNAL_STREAM``), the timestamp is left out because journald
  adds its own, and each line starts with its syslog priority (``<3>``) so that journald files
  it under the right level.
* ``[log] format = "json"``: one object per line with ``ts``, ``level``, ``logger``,
  ``message`` and every ``extra`` field the caller passed (reconcile passes ``op``,
  ``entra_id`` and ``target`` with each change).
* In a dry run every line is labelled: ``[dry run]`` in text, ``"dry_run": true`` in JSON.

:class:`RedactFilter` sits on the handler, so it sees every record from every logger, and masks
with :func:`syncd.redaction.redact` every registered secret and anything that looks like a bearer
token, an ``Authorization`` header, a ``client_secret=`` (or similar) parameter or a password in
a URL.  Secrets are never logged on purpose; this is the last line of defence against a library
that does.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from .config import LogConfig
from .redaction import redact

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
"""Attributes every LogRecord has; anything else on a record came in through ``extra``."""

_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller attached to ``record`` through ``extra=``."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS and not key.startswith("_")}


class RedactFilter(logging.Filter):
    """Rewrites each record so that no secret-looking text reaches a formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as logging would
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class TextFormatter(logging.Formatter):
    """``[<priority>][timestamp ]LEVEL logger: [dry run] message``."""

    def __init__(self, *, timestamps: bool = True, syslog_prefix: bool = False, dry_run: bool = False) -> None:
        fmt = ("%(asctime)s " if timestamps else "") + "%(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)
        self.syslog_prefix = syslog_prefix
        self.dry_run = dry_run

    def formatMessage(self, record: logging.LogRecord) -> str:
        if self.dry_run:
            record.message = f"[dry run] {record.message}"
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.syslog_prefix:
            priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
            text = "\n".join(f"<{priority}>{line}" for line in text.split("\n"))
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the extra fields, exception."""

    def __init__(self, *, dry_run: bool = False) -> None:
        super().__init__()
        self.dry_run = dry_run

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.dry_run:
            entry["dry_run"] = True
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return _INVISIBLE.sub(_json_escape, json.dumps(entry, ensure_ascii=False, default=str))


_INVISIBLE = re.compile("[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
"""Characters JSON may carry raw that would act on a terminal or a log viewer (C1 controls, bidi
controls, zero-width characters, line separators) or that cannot be encoded (lone surrogates)."""


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def connected_to_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal stream systemd set up (``$JOURNAL_STREAM`` is ``dev:inode``)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True
    return value == f"{status.st_dev}:{status.st_ino}"


def levels(log_config: LogConfig, verbosity: int = 0) -> tuple[int, int]:
    """(level of the ``syncd`` loggers, level of everything else) for a config and ``-v``/``-q`` count."""
    own = logging.getLevelNamesMapping().get(log_config.level.upper(), logging.INFO)
    if verbosity > 0:
        own = logging.DEBUG
    elif verbosity < 0:
        own = max(own, logging.WARNING if verbosity == -1 else logging.ERROR)
    libraries = logging.DEBUG if verbosity >= 2 else max(own, logging.WARNING)
    return own, libraries


def setup_logging(
    log_config: LogConfig, verbosity: int = 0, dry_run: bool = False, *, stream: TextIO | None = None
) -> logging.Handler:
    """Install syncd's single stderr handler on the root logger (replacing one installed before)."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    handler.set_name("syncd")
    journal = connected_to_journal(stream)
    formatter: logging.Formatter
    if log_config.format == "json":
        formatter = JsonFormatter(dry_run=dry_run)
    else:
        formatter = TextFormatter(timestamps=not journal, syslog_prefix=journal, dry_run=dry_run)
    handler.setFormatter(formatter)
    handler.addFilter(RedactFilter())

    own, libraries = levels(log_config, verbosity)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "syncd"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(libraries)
    logging.getLogger("syncd").setLevel(own)
    logging.captureWarnings(True)
    return handler
