"""Listing and searching many conversations on SQLite: how a page and a search cost at 10,000.

Stand-alone: ``python bench/conversations.py [--conversations 10000] [--messages 6]``. It makes a
throw-away data directory, stores a share of the conversations through the real chat path (the
demo model, the hook, the write-behind writer) and the rest in bulk, then times paging through
all of them newest first and full-text searches of words that are common, rare and absent.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatgate.core.events import ChatRequest
from chatgate.core.ids import new_id
from chatgate.services import Services
from chatgate.settings import Settings
from chatgate.store.tables import Conversation, StoredMessage

_VOCABULARY = """
river mountain forest cloud stone garden window letter silver orange market
bridge engine signal pocket winter summer ladder candle harbor meadow thunder
pencil basket lantern compass violin blanket kettle mirror anchor saddle feather
marble tunnel
"""
WORDS = _VOCABULARY.split()
RARE = "quetzal"


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"mean {statistics.mean(ms):7.2f} ms  p50 {ms[len(ms) // 2]:7.2f}  p95 {p95:7.2f}"


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await fn()
        samples.append(time.perf_counter() - started)
    return samples, result


async def through_the_hook(services: Services, user: str, count: int) -> float:
    """Conversations made the way users make them; returns seconds per exchange."""
    owner = await services.accounts.ensure_user(user)
    who = services.accounts.principal_for(owner)
    started = time.perf_counter()
    for i in range(count):
        request = ChatRequest(
            model="demo",
            messages=[{"role": "user", "content": f"Tell me about the {WORDS[i % len(WORDS)]}"}],
            conversation_id="new",
        )
        async for _ in services.chat.stream(who, request):
            pass
    await services.writer.flush()
    return (time.perf_counter() - started) / max(count, 1)


async def in_bulk(services: Services, user: str, count: int, messages: int) -> None:
    owner = await services.accounts.ensure_user(user)
    rng = random.Random(7)
    now = time.time()
    for start in range(0, count, 500):
        convs, rows = [], []
        for i in range(start, min(count, start + 500)):
            cid, parent = new_id(), None
            stamp = now - (count - i) * 60
            for j in range(messages):
                mid = new_id()
                text = sentence(rng, 12 if j % 2 == 0 else 60)
                if i % 1000 == 0 and j == messages - 1:
                    text = text[:-1] + f" like a {RARE} in flight."
                rows.append(
                    {
                        "id": mid,
                        "conversation_id": cid,
                        "parent_id": parent,
                        "role": "user" if j % 2 == 0 else "assistant",
                        "content": text,
                        "model": "demo",
                        "finish_reason": None if j % 2 == 0 else "stop",
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "created_at": stamp + j,
                    }
                )
                parent = mid
            convs.append(
                {
                    "id": cid,
                    "user_id": owner.id,
                    "title": sentence(rng, 4),
                    "system_prompt": None,
                    "model": "demo",
                    "current_leaf_id": parent,
                    "external_id": None,
                    "created_at": stamp,
                    "updated_at": stamp + messages,
                }
            )
        async with services.db.session() as session, session.begin():
            await session.execute(insert(Conversation), convs)
            await session.execute(insert(StoredMessage), rows)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            data_dir=Path(tmp),
            demo_chunk_delay=0.0,
            conversation_titles=False,
            grpc_port=0,
            default_daily_requests=None,
        )
        services = await Services.open(settings, migrate=True)
        try:
            hooked = min(args.hooked, args.conversations)
            per_exchange = await through_the_hook(services, "bench", hooked)
            started = time.perf_counter()
            await in_bulk(services, "bench", args.conversations - hooked, args.messages)
            loaded = time.perf_counter() - started
            owner = await services.accounts.get_user("bench")
            conversations = services.conversations
            print(f"{args.conversations} conversations, SQLite, {args.messages} messages each")
            print(f"  through the chat path : {per_exchange * 1000:.2f} ms per new conversation")
            print(f"  bulk load of the rest : {loaded:.1f} s")

            pages: list[float] = []
            cursor, seen = None, 0
            while True:
                started = time.perf_counter()
                page = await conversations.page(owner.id, limit=args.page, cursor=cursor)
                pages.append(time.perf_counter() - started)
                seen += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == args.conversations, seen
            print(f"  page of {args.page}, all {len(pages)} pages: {summary(pages)}")
            print(f"  first page {pages[0] * 1000:.2f} ms, last page {pages[-1] * 1000:.2f} ms")

            for label, query in [
                ("common word", "river"),
                ("rare word", RARE),
                ("prefix", "quetz"),
                ("two words", "river quetzal"),
                ("absent word", "zeppelin"),
            ]:
                search = functools.partial(
                    conversations.page, owner.id, limit=args.page, query=query
                )
                samples, result = await timed(search, args.repeat)
                print(f"  search {label:<12} ({len(result.items):>3} hits): {summary(samples)}")
        finally:
            await services.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=6, help="messages per conversation")
    parser.add_argument("--hooked", type=int, default=500, help="made through the chat path")
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
