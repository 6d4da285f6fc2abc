"""A live chatgate in front of two faulty upstreams (``primary`` and ``backup``), and the
look-ups the fault tests make: stored rows, usage totals, open tasks and connections.

Models: ``solo`` is served by ``primary`` only; ``chain`` by ``primary`` then ``backup``.
Timeouts are short so a stall costs a fraction of a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faulty_upstream import FaultyUpstream
from sqlalchemy import select
from support import Gateway, free_port

from chatgate.providers.openai_compat import OpenAICompatProvider
from chatgate.settings import Settings
from chatgate.store.tables import RequestLog, UsageDaily

PRICES = {"input_price": 2.0, "output_price": 8.0}
TIMEOUTS = {"connect": 2.0, "first_token": 1.0, "idle": 1.0, "total": 3.0}
EVENT_LIMIT = 256 * 1024


def rig_settings(data_dir: Path, primary: FaultyUpstream, backup: FaultyUpstream) -> Settings:
    def provider(name: str, upstream: FaultyUpstream, keys: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "base_url": upstream.base_url,
            "api_keys": keys,
            "timeouts": TIMEOUTS,
            "max_event_bytes": EVENT_LIMIT,
            "discover_models": False,
        }

    return Settings.load(
        data_dir=data_dir,
        port=0,
        grpc_port=free_port(),
        usage_flush_seconds=0.05,
        default_daily_requests=None,
        models_refresh_seconds=0,
        providers=[
            provider("primary", primary, ["key-a", "key-b"]),
            provider("backup", backup, ["key-c"]),
        ],
        models=[
            {"name": "solo", "deployments": ["primary"], "upstream_name": "demo", **PRICES},
            {
                "name": "chain",
                "aliases": ["chain-alias"],
                "deployments": ["primary", "backup"],
                "upstream_name": "demo",
                **PRICES,
            },
        ],
        routing={
            "retries": 1,
            "backoff_base": 0.01,
            "backoff_max": 0.02,
            "max_retry_wait": 1.0,
            "breaker_failures": 1000,
            "breaker_cooldown": 30.0,
        },
    )


def eventually(
    check: Callable[[], bool], what: str, timeout: float = 10.0, state: Callable[[], object] = str
) -> None:
    """Wait for ``check`` to hold (things settle on other threads); fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what} ({state()})")
        time.sleep(0.01)


def request_log(gateway: Gateway, user: str) -> list[RequestLog]:
    gateway.flush()

    async def rows() -> list[RequestLog]:
        user_id = (await gateway.services.accounts.get_user(user)).id
        async with gateway.services.db.session() as session:
            query = select(RequestLog).where(RequestLog.user_id == user_id).order_by(RequestLog.id)
            return list((await session.scalars(query)).all())

    return gateway.run(rows())


def usage_daily(gateway: Gateway, user: str) -> list[UsageDaily]:
    gateway.flush()

    async def rows() -> list[UsageDaily]:
        user_id = (await gateway.services.accounts.get_user(user)).id
        async with gateway.services.db.session() as session:
            query = select(UsageDaily).where(UsageDaily.user_id == user_id)
            return list((await session.scalars(query)).all())

    return gateway.run(rows())


def task_count(gateway: Gateway) -> int:
    async def count() -> int:
        # Wait out a write-behind flush in progress: the writer is between its waits then,
        # and would be counted one task short.
        await gateway.services.writer.flush()
        return len(asyncio.all_tasks())

    return gateway.run(count())


def connections_in_use(gateway: Gateway) -> int:
    """Upstream connections the gateway holds for a request right now (idle pooled ones
    do not count)."""

    async def count() -> int:
        total = 0
        for provider in gateway.services.models.providers.values():
            if isinstance(provider, OpenAICompatProvider) and provider.connector is not None:
                total += len(provider.connector._acquired)
        return total

    return gateway.run(count())


def pooled_connections(gateway: Gateway) -> int:
    async def count() -> int:
        total = 0
        for provider in gateway.services.models.providers.values():
            if isinstance(provider, OpenAICompatProvider) and provider.connector is not None:
                total += sum(len(conns) for conns in provider.connector._conns.values())
        return total

    return gateway.run(count())


def assert_nothing_left_open(
    gateway: Gateway, tasks_before: int, *upstreams: FaultyUpstream
) -> None:
    """No task, upstream connection or upstream request outlives the exchange."""
    eventually(
        lambda: all(u.busy == 0 for u in upstreams),
        "the upstreams finished answering",
        state=lambda: [u.busy for u in upstreams],
    )
    eventually(
        lambda: connections_in_use(gateway) == 0,
        "no upstream connection is in use",
        state=lambda: connections_in_use(gateway),
    )
    eventually(
        lambda: task_count(gateway) <= tasks_before,
        "the gateway's tasks are back",
        state=lambda: (tasks_before, _task_names(gateway)),
    )
    eventually(
        lambda: sum(u.connections for u in upstreams) <= pooled_connections(gateway),
        "every open upstream connection is an idle pooled one",
        state=lambda: ([u.connections for u in upstreams], pooled_connections(gateway)),
    )


def _task_names(gateway: Gateway) -> list[str]:
    async def names() -> list[str]:
        return sorted(repr(t.get_coro()) for t in asyncio.all_tasks())

    return gateway.run(names())
