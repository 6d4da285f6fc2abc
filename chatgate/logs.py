"""How the server's log is written: text lines or JSON objects (one a line, for log search
tools), each naming the request it is about, and an opt-in access log.

uvicorn is given no logging configuration of its own, so its lines go through the same
handler and come out in the same format.
"""

from __future__ import annotations

import logging
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


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, request id, the exception's
    traceback when there is one, and the access log's fields."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def setup(level: str, log_format: LogFormat = "text") -> None:
    """Send every log line (chatgate's and uvicorn's) to standard error in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
