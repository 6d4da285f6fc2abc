"""The in-memory reply store: numbered events, reads after a number that wait for the next one,
an end that comes with its last event, and lifetimes (on a clock the test moves)."""

from __future__ import annotations

import asyncio

import pytest

from chatgate.core.reply_store import MemoryReplyStore, ReplyInfo


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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryReplyStore:
    return MemoryReplyStore(now=clock)


async def test_events_are_numbered_from_one_and_read_after_a_number(
    store: MemoryReplyStore,
) -> None:
    await store.create(info(), ttl=60)
    assert [await store.append("rpl_a", "delta", {"text": t}) for t in "abc"] == [1, 2, 3]
    page = await store.read("rpl_a", after=1, wait=0)
    assert page is not None
    assert [(e.seq, e.data["text"]) for e in page.events] == [(2, "b"), (3, "c")]
    assert page.info.last_seq == 3 and not page.info.ended
    everything = await store.read("rpl_a", after=0, wait=0)
    assert everything is not None and [e.seq for e in everything.events] == [1, 2, 3]


async def test_a_read_with_nothing_new_waits_for_the_next_event(store: MemoryReplyStore) -> None:
    await store.create(info(), ttl=60)
    await store.append("rpl_a", "delta", {"text": "a"})
    reader = asyncio.create_task(store.read("rpl_a", after=1, wait=30))
    await asyncio.sleep(0)
    assert not reader.done()
    await store.append("rpl_a", "delta", {"text": "b"})
    page = await reader
    assert page is not None and [e.data["text"] for e in page.events] == ["b"]


async def test_a_read_that_waited_in_vain_answers_with_no_events(store: MemoryReplyStore) -> None:
    await store.create(info(), ttl=60)
    page = await store.read("rpl_a", after=0, wait=0.01)
    assert page is not None and page.events == [] and not page.info.ended


async def test_the_end_comes_with_its_last_event_and_wakes_readers(
    store: MemoryReplyStore,
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
    store: MemoryReplyStore, clock: Clock
) -> None:
    await store.create(info(), ttl=600)
    await store.end("rpl_a", "done", {}, "stop", ttl=5)
    page = await store.read("rpl_a", after=1, wait=30)  # nothing after 1, and no waiting
    assert page is not None and page.events == [] and page.info.ended
    clock.now += 4.9
    assert await store.get("rpl_a") is not None
    clock.now += 0.2
    assert await store.get("rpl_a") is None
    assert await store.read("rpl_a", after=0, wait=0) is None
    assert await store.of_user(1) == []


async def test_a_running_reply_lives_until_its_running_lifetime(
    store: MemoryReplyStore, clock: Clock
) -> None:
    await store.create(info(), ttl=60)
    clock.now += 59
    await store.append("rpl_a", "delta", {"text": "a"})
    clock.now += 2
    assert await store.get("rpl_a") is None
    with pytest.raises(KeyError):
        await store.append("rpl_a", "delta", {"text": "b"})


async def test_a_user_sees_their_own_replies_newest_first_by_conversation(
    store: MemoryReplyStore,
) -> None:
    await store.create(info("rpl_old", created_at=1.0), ttl=60)
    await store.create(info("rpl_new", created_at=2.0), ttl=60)
    await store.create(info("rpl_other_conv", created_at=3.0, conversation_id="c2"), ttl=60)
    await store.create(info("rpl_bob", user_id=2, created_at=4.0), ttl=60)
    mine = [i.reply_id for i in await store.of_user(1)]
    assert mine == ["rpl_other_conv", "rpl_new", "rpl_old"]
    assert [i.reply_id for i in await store.of_user(1, "c1")] == ["rpl_new", "rpl_old"]
    assert [i.reply_id for i in await store.of_user(2)] == ["rpl_bob"]


async def test_an_unknown_reply_is_none(store: MemoryReplyStore) -> None:
    assert await store.get("rpl_none") is None
    assert await store.read("rpl_none", after=0, wait=0) is None
