"""One contract, every reply store: in memory and in Redis (skipped, with the reason, when no
Redis server is answering at 127.0.0.1:6379). Numbered events, reads after a number that wait for
the next one, an end that comes with its last event, lifetimes (on a clock the test moves in
memory, on Redis's own clock in Redis), and the producer's hold that another instance may take
over when it lapses: found by a sweep, claimed by one instance however many sweep at once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from chatgate.core.reply_store import MemoryReplyStore, ReplyInfo, ReplyStore

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def info(reply_id: str = "rpl_a", user_id: int = 1, **extra: object) -> ReplyInfo:
    values: dict[str, object] = {
        "reply_id": reply_id,
        "user_id": user_id,
        "conversation_id": "c1",
        "parent_id": "q1",
        "message_id": "m1",
        "model": "demo",
        "created_at": 1.0,
    }
    values.update(extra)
    return ReplyInfo(**values)  # type: ignore[arg-type]


@dataclass
class Backend:
    """A store, and how time passes for it."""

    store: ReplyStore
    clock: Clock | None = None
    elsewhere: ReplyStore | None = None
    """The same store as another process sees it (in memory there is no other)."""
    instances: list[ReplyStore] = field(default_factory=list)
    """The store as each of several processes sees it, each on connections of its own."""

    async def wait(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)


async def _redis_running() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        return bool(await client.ping())
    except OSError:
        return False
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = Clock()
        memory = MemoryReplyStore(now=clock)
        yield Backend(memory, clock, instances=[memory])
        return
    if not await _redis_running():
        pytest.skip(f"no Redis server is answering at {REDIS_URL}")
    import redis.asyncio as aioredis

    from chatgate.core.reply_store_redis import RedisReplyStore

    prefix = f"test-{secrets.token_hex(6)}:"
    store = RedisReplyStore(REDIS_URL, prefix=prefix)
    elsewhere = RedisReplyStore(REDIS_URL, prefix=prefix)
    others = [RedisReplyStore(REDIS_URL, prefix=prefix) for _ in range(3)]
    yield Backend(store, elsewhere=elsewhere, instances=[store, elsewhere, *others])
    for opened in (store, elsewhere, *others):
        await opened.close()
    client = aioredis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def store(backend: Backend) -> ReplyStore:
    return backend.store


async def test_events_are_numbered_from_one_and_read_after_a_number(
    store: ReplyStore,
) -> None:
    await store.create(info(), ttl=60)
    assert [await store.append("rpl_a", "delta", {"text": t}) for t in "abc"] == [1, 2, 3]
    page = await store.read("rpl_a", after=1, wait=0)
    assert page is not None
    assert [(e.seq, e.data["text"]) for e in page.events] == [(2, "b"), (3, "c")]
    assert page.info.last_seq == 3 and not page.info.ended
    everything = await store.read("rpl_a", after=0, wait=0)
    assert everything is not None and [e.seq for e in everything.events] == [1, 2, 3]


async def test_a_read_with_nothing_new_waits_for_the_next_event(store: ReplyStore) -> None:
    await store.create(info(), ttl=60)
    await store.append("rpl_a", "delta", {"text": "a"})
    reader = asyncio.create_task(store.read("rpl_a", after=1, wait=30))
    await asyncio.sleep(0)
    assert not reader.done()
    await store.append("rpl_a", "delta", {"text": "b"})
    page = await reader
    assert page is not None and [e.data["text"] for e in page.events] == ["b"]


async def test_a_read_that_waited_in_vain_answers_with_no_events(store: ReplyStore) -> None:
    await store.create(info(), ttl=60)
    page = await store.read("rpl_a", after=0, wait=0.01)
    assert page is not None and page.events == [] and not page.info.ended


async def test_the_end_comes_with_its_last_event_and_wakes_readers(
    store: ReplyStore,
) -> None:
    await store.create(info(), ttl=60)
    await store.append("rpl_a", "delta", {"text": "a"})
    reader = asyncio.create_task(store.read("rpl_a", after=1, wait=30))
    await asyncio.sleep(0)
    seq = await store.end("rpl_a", "done", {"finish_reason": "stop"}, "stop", ttl=5)
    page = await reader
    assert seq == 2
    assert page is not None and page.info.ended and page.info.finish_reason == "stop"
    assert [(e.seq, e.kind) for e in page.events] == [(2, "done")]
    with pytest.raises(ValueError, match="ended"):
        await store.append("rpl_a", "delta", {"text": "late"})


async def test_an_ended_reply_is_read_at_once_and_dropped_after_its_keep_time(
    backend: Backend,
) -> None:
    store = backend.store
    await store.create(info(), ttl=600)
    await store.end("rpl_a", "done", {}, "stop", ttl=1.5)
    page = await store.read("rpl_a", after=1, wait=30)  # nothing after 1, and no waiting
    assert page is not None and page.events == [] and page.info.ended
    await backend.wait(0.2)
    assert await store.get("rpl_a") is not None
    await backend.wait(1.5)
    assert await store.get("rpl_a") is None
    assert await store.read("rpl_a", after=0, wait=0) is None
    assert await store.of_user(1) == []


async def test_a_running_reply_lives_until_its_running_lifetime(backend: Backend) -> None:
    store = backend.store
    await store.create(info(), ttl=1.5)
    await backend.wait(0.2)
    await store.append("rpl_a", "delta", {"text": "a"})
    await backend.wait(1.5)
    assert await store.read("rpl_a", after=0, wait=0) is None
    assert await store.get("rpl_a") is None
    with pytest.raises(KeyError):
        await store.append("rpl_a", "delta", {"text": "b"})


async def test_a_user_sees_their_own_replies_newest_first_by_conversation(
    store: ReplyStore,
) -> None:
    await store.create(info("rpl_old", created_at=1.0), ttl=60)
    await store.create(info("rpl_new", created_at=2.0), ttl=60)
    await store.create(info("rpl_other_conv", created_at=3.0, conversation_id="c2"), ttl=60)
    await store.create(info("rpl_bob", user_id=2, created_at=4.0), ttl=60)
    mine = [i.reply_id for i in await store.of_user(1)]
    assert mine == ["rpl_other_conv", "rpl_new", "rpl_old"]
    assert [i.reply_id for i in await store.of_user(1, "c1")] == ["rpl_new", "rpl_old"]
    assert [i.reply_id for i in await store.of_user(2)] == ["rpl_bob"]


async def test_an_unknown_reply_is_none(store: ReplyStore) -> None:
    assert await store.get("rpl_none") is None
    assert await store.read("rpl_none", after=0, wait=0) is None


async def test_a_reply_is_read_back_as_it_was_described(store: ReplyStore) -> None:
    described = info(conversation_id=None, parent_id=None, message_id=None, created_at=12.5)
    await store.create(described, ttl=60)
    assert await store.get("rpl_a") == described
    await store.append("rpl_a", "delta", {"text": "你好", "n": [1, 2]})
    page = await store.read("rpl_a", after=0, wait=0)
    assert page is not None and page.events[0].data == {"text": "你好", "n": [1, 2]}


async def test_a_reply_that_has_ended_takes_no_other_end(store: ReplyStore) -> None:
    await store.create(info(), ttl=60)
    await store.end("rpl_a", "error", {"code": "x"}, "error", ttl=5)
    with pytest.raises(ValueError, match="ended"):
        await store.end("rpl_a", "done", {}, "stop", ttl=5)
    page = await store.read("rpl_a", after=0, wait=0)
    assert page is not None and [e.kind for e in page.events] == ["error"]
    assert page.info.finish_reason == "error"


async def test_many_readers_waiting_all_get_the_next_event(store: ReplyStore) -> None:
    await store.create(info(), ttl=60)
    readers = [asyncio.create_task(store.read("rpl_a", after=0, wait=30)) for _ in range(5)]
    await asyncio.sleep(0.05)
    await store.append("rpl_a", "delta", {"text": "a"})
    pages = await asyncio.gather(*readers)
    assert all(p is not None and [e.seq for e in p.events] == [1] for p in pages)


async def test_a_held_reply_cannot_be_claimed_until_its_hold_lapses(backend: Backend) -> None:
    store = backend.store
    await store.create(info(), ttl=60)
    await store.hold("rpl_a", ttl=0.5)
    assert not await store.claim("rpl_a", ttl=10)
    await backend.wait(0.7)
    claims = await asyncio.gather(*(store.claim("rpl_a", ttl=10) for _ in range(5)))
    assert claims.count(True) == 1


async def test_an_ended_or_unknown_reply_is_never_claimed(store: ReplyStore) -> None:
    await store.create(info(), ttl=60)
    await store.end("rpl_a", "done", {}, "stop", ttl=5)
    assert not await store.claim("rpl_a", ttl=10)
    assert not await store.claim("rpl_none", ttl=10)


async def test_a_reply_is_watched_for_as_long_as_its_follower_said(backend: Backend) -> None:
    store = backend.store
    await store.create(info(), ttl=60)
    assert not await store.watched("rpl_a")
    await store.watch("rpl_a", ttl=0.5)
    assert await store.watched("rpl_a")
    await backend.wait(0.7)
    assert not await store.watched("rpl_a")


async def test_a_reader_in_another_process_waits_for_the_next_event_and_the_end(
    backend: Backend,
) -> None:
    store = backend.store
    elsewhere = backend.elsewhere or store
    await store.create(info(), ttl=60)
    await store.append("rpl_a", "delta", {"text": "a"})
    reader = asyncio.create_task(elsewhere.read("rpl_a", after=1, wait=30))
    await asyncio.sleep(0.05)
    assert not reader.done()
    await store.append("rpl_a", "delta", {"text": "b"})
    page = await reader
    assert page is not None and [(e.seq, e.data["text"]) for e in page.events] == [(2, "b")]
    reader = asyncio.create_task(elsewhere.read("rpl_a", after=2, wait=30))
    await asyncio.sleep(0.05)
    await store.end("rpl_a", "done", {"finish_reason": "stop"}, "stop", ttl=5)
    page = await reader
    assert page is not None and page.info.ended and [e.kind for e in page.events] == ["done"]
    assert await elsewhere.get("rpl_a") == page.info


async def test_a_stop_asked_anywhere_is_seen_by_the_producer_for_as_long_as_it_stands(
    backend: Backend,
) -> None:
    store = backend.store
    elsewhere = backend.elsewhere or store
    await store.create(info(), ttl=60)
    assert not await store.stop_asked("rpl_a")
    await elsewhere.stop("rpl_a", ttl=0.5)
    assert await store.stop_asked("rpl_a")
    await backend.wait(0.7)
    assert not await store.stop_asked("rpl_a")


async def test_a_reply_whose_hold_lapsed_is_found_by_a_sweep_until_it_is_claimed_or_ends(
    backend: Backend,
) -> None:
    store = backend.store
    for reply_id in ("rpl_a", "rpl_b", "rpl_c", "rpl_unheld"):
        await store.create(info(reply_id), ttl=60)
    for reply_id in ("rpl_a", "rpl_b", "rpl_c"):
        await store.hold(reply_id, ttl=0.5)
    await store.hold("rpl_c", ttl=60)  # its producer renewed it
    assert await store.lapsed(10) == []
    await backend.wait(0.7)
    assert sorted(await store.lapsed(10)) == ["rpl_a", "rpl_b"]
    assert len(await store.lapsed(1)) == 1

    assert await store.claim("rpl_a", ttl=0.5)
    await store.end("rpl_b", "done", {}, "stop", ttl=5)
    await store.hold("rpl_b", ttl=0.1)  # a renewal that comes after the end holds nothing
    assert await store.lapsed(10) == []
    await backend.wait(0.7)  # whoever claimed it died before ending it: it is due again
    assert await store.lapsed(10) == ["rpl_a"]
    assert await store.claim("rpl_a", ttl=10)


async def test_a_claim_renewed_while_the_reply_is_ended_is_not_found_by_a_sweep(
    backend: Backend,
) -> None:
    store = backend.store
    await store.create(info(), ttl=60)
    await store.hold("rpl_a", ttl=0.3)
    await backend.wait(0.5)
    assert await store.claim("rpl_a", ttl=0.3)
    await backend.wait(0.2)
    await store.hold("rpl_a", ttl=0.3)  # the claimer is still storing its text
    await backend.wait(0.2)
    assert await store.lapsed(10) == []
    assert not await store.claim("rpl_a", ttl=10)


async def test_instances_sweeping_at_once_claim_each_lapsed_reply_exactly_once(
    backend: Backend,
) -> None:
    reply_ids = [f"rpl_{n}" for n in range(30)]
    for reply_id in reply_ids:
        await backend.store.create(info(reply_id), ttl=60)
        await backend.store.hold(reply_id, ttl=0.3)
    await backend.wait(0.5)

    async def sweep(store: ReplyStore) -> list[str]:
        return [r for r in await store.lapsed(100) if await store.claim(r, ttl=30)]

    # Every instance sweeps several times at once, as instances whose periods meet do.
    sweeps = await asyncio.gather(*(sweep(s) for s in backend.instances * 3))
    claimed = [reply_id for won in sweeps for reply_id in won]
    assert sorted(claimed) == sorted(reply_ids)
    assert await backend.store.lapsed(100) == []
