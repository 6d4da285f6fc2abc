"""Whether what chatgate depends on answers: the database and Redis, for ``/readyz`` and
``chatgate doctor``. Each check gives None when all is well, or one line saying what is
wrong, naming the cause but never a credential (URLs are shown without their password)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import make_url

TIMEOUT = 3.0


def shown_url(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: show only its scheme
        return url.split(":", 1)[0] + "://…"


def cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redis_client(url: str) -> Any:
    """A client for checks only: short timeouts, so that a Redis that is down answers fast."""
    import redis.asyncio as aioredis

    return aioredis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)


async def redis_problem(client: Any) -> str | None:
    """None if Redis answers PING within the timeout; otherwise why not."""
    try:
        async with asyncio.timeout(TIMEOUT):
            await client.ping()
    except TimeoutError:
        return f"Redis did not answer within {TIMEOUT:g} s"
    except Exception as exc:  # any failure of the client is the answer
        return f"Redis unreachable ({cause(exc)})"
    return None
