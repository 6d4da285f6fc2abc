"""How the server's log is written: text lines or JSON objects (one a line, for log search
tools), each naming the request it is about, and an opt-in access log.

uvicorn is given no logging configuration of its own, so its lines go through the same
handler and come out in the same format.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

from chatgate import request_ids

LogFormat = Literal["text", "json"]
TEXT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"
ACCESS = logging.getLogger("chatgate.access")


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being answered on every record (``request_id``, None
    outside a request; ``request``, the text format's `` [id]``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = getattr(record, "request_id", None) or request_ids.current.get()
        record.request_id = rid
        record.request = f" [{rid}]" if rid else ""
        return True


class WorkerFilter(logging.Filter):
    """Names the worker process (``worker``: its number, then its pid) on every record."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.worker = f"worker {number}, pid {os.getpid()}"

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


def json_formatter(extra: str = "") -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, request id, the exception's
    traceback when there is one, and the access log's fields."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s" + extra,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def setup(level: str, log_format: LogFormat = "text", worker: int | None = None) -> None:
    """Send every log line (chatgate's and uvicorn's) to standard error in ``log_format``.
    A worker of several names itself in each line (``worker``), so that lines tell apart."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if worker is not None:
        handler.addFilter(WorkerFilter(worker))
    text = TEXT if worker is None else TEXT.replace("%(name)s", "%(name)s (%(worker)s)")
    handler.setFormatter(
        json_formatter(" %(worker)s" if worker is not None else "")
        if log_format == "json"
        else logging.Formatter(text)
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
