"""The id of the HTTP request being answered: sent back as ``x-request-id`` on every answer,
put in every log line written while the request runs, and in error bodies.

A client's own ``x-request-id`` is kept when it is sane (1 to 128 characters of letters,
digits and ``-_.:``), so that one id follows a call through a client, a proxy and chatgate;
anything else is replaced. A new id is a per-process random prefix and a counter: unique
across processes and restarts, and made without a system call on the request path.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from contextvars import ContextVar

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

current: ContextVar[str | None] = ContextVar("chatgate_request_id", default=None)
"""The id of the request this code runs for, or None outside a request."""


class _Ids:
    """``<16 random hex digits>-<counter in hex>``, started anew in a forked process."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.prefix = secrets.token_hex(8) + "-"
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.restart)


def of(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's id: the client's own when it is sane, a new one otherwise."""
    for name, value in headers:
        if name == HEADER:
            if _SANE.fullmatch(value):
                return value.decode("ascii")
            break
    return _ids.next()
