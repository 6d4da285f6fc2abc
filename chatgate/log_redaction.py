"""Keeping credentials out of the log lines of the servers chatgate runs on.

uvicorn logs a WebSocket's path with its query string, where the documented ``?token=`` carries
a key or a login token; at debug level the websockets library logs every request header,
``Authorization`` included, and the frames. chatgate's own code never logs a credential (the
tests check every line), but it cannot change what these libraries say. So their records are
cleaned as they are made, before any filter, handler or formatter sees them, whatever logging
configuration the operator uses: credentials in query strings, credential headers, Bearer and
Basic values, and anything shaped like a chatgate key or a JWT become ``***``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

# The libraries whose lines are cleaned; chatgate's own lines are checked by the tests instead.
LIBRARY_LOGGERS = ("uvicorn", "websockets", "grpc", "starlette", "fastapi")
MASK = "***"

_CREDENTIAL_PARAM = r"[\w.-]*(?:token|key|secret|password|passwd|auth|jwt|session|signature)"
_PATTERNS = (
    # ?token=…, &api_key=…, ;access_token=… (a query string in a path or a URL)
    re.compile(rf"(?i)([?&;]{_CREDENTIAL_PARAM}=)[^&#;\s\"'<>]*"),
    # Authorization: …, ('authorization', 'Bearer …'), cookie=…
    re.compile(
        r"(?i)((?:proxy-)?authorization|cookie|set-cookie|x-api-key|api-key)"
        r"(['\"]?\s*[:=,]\s*(?-i:b)?['\"]?)[^\r\n'\"]*"
    ),
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)[^\s'\",;]+"),
)
_BARE = re.compile(r"sk-cg-[A-Za-z0-9_-]+|eyJ[\w-]*\.[\w-]+\.[\w-]*")


def redact(text: str) -> str:
    """``text`` with every credential it shows replaced by ``***``."""
    for pattern in _PATTERNS:
        text = pattern.sub(
            lambda m: m.group(1) + (m.group(2) if m.lastindex == 2 else "") + MASK, text
        )
    return _BARE.sub(MASK, text)


def _clean(value: Any) -> Any:
    """A log argument as it may be shown: unchanged unless it shows a credential."""
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "replace")
    else:
        try:
            text = str(value)
        except Exception:  # an object that cannot say what it is shows nothing either
            return value
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _clean_args(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {k: _clean(v) for k, v in args.items()}
    if isinstance(args, tuple):
        return tuple(
            _clean_args(a) if isinstance(a, Mapping) and len(args) == 1 else _clean(a) for a in args
        )
    return _clean(args)


def _clean_record(msg: Any, args: Any) -> tuple[Any, Any]:
    """A record's message and arguments as they may be shown. The parts are cleaned one by one
    when that hides everything the whole line would show, so formatters that read the arguments
    (uvicorn's access lines) keep them; otherwise, as when a credential's name is in the message
    and its value in an argument, the record becomes its whole line, cleaned."""
    parts = _clean(msg), _clean_args(args)
    if not args or not isinstance(msg, str):
        return parts
    try:
        whole = msg % args
    except Exception:  # a message that does not format is the caller's bug; clean what it has
        return parts
    cleaned = redact(whole)
    if cleaned == whole:
        return msg, args
    try:
        shown = parts[0] % parts[1]
    except Exception:  # cleaning the message took a placeholder with it
        shown = None
    return parts if shown == cleaned else (cleaned, ())


def _is_library(name: str) -> bool:
    return any(name == n or name.startswith(n + ".") for n in LIBRARY_LOGGERS)


def redacting_factory(
    previous: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    """A record factory that cleans the message and arguments of the libraries' records, keeping
    their shape (uvicorn's access formatter reads the arguments one by one)."""

    def factory(
        name: str,
        level: int,
        pathname: str,
        lineno: int,
        msg: Any,
        args: Any,
        *rest: Any,
        **kw: Any,
    ) -> logging.LogRecord:
        if _is_library(name):
            msg, args = _clean_record(msg, args)
        return previous(name, level, pathname, lineno, msg, args, *rest, **kw)

    factory.redacts_credentials = True  # type: ignore[attr-defined]
    return factory


def install() -> None:
    """Clean the libraries' records from now on, in this process (once however often called)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacts_credentials", False):
        logging.setLogRecordFactory(redacting_factory(current))
