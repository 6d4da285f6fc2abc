"""The relay's own rules, whatever the read boundaries: events cut anywhere are put back
together, an event over the size limit is refused, and a stream must really finish."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from chatgate.core.errors import UpstreamError
from chatgate.providers.base import UpstreamCall
from chatgate.providers.openai_compat import OpenAICompatProvider
from chatgate.settings import ProviderConfig

LIMIT = 2048


class Reads:
    """Stands in for ``aiohttp.ClientResponse.content``: hands out the given reads."""

    def __init__(self, reads: list[bytes]) -> None:
        self._reads: Iterator[bytes] = iter(reads)

    async def readany(self) -> bytes:
        return next(self._reads, b"")


class Response:
    def __init__(self, reads: list[bytes]) -> None:
        self.content = Reads(reads)


def event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\n"


async def relay(reads: list[bytes]) -> list[str]:
    provider = OpenAICompatProvider(ProviderConfig(name="up", max_event_bytes=LIMIT), keys=[])
    call = UpstreamCall({"stream": True}, wants_raw=True)
    texts = []
    async for delta in provider._relay(Response(reads), call, 1e12, 1e12):  # type: ignore[arg-type]
        texts.append(delta.text)
    return texts


def split_everywhere(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
async def test_events_cut_anywhere_come_out_whole(size: int) -> None:
    stream = event("Hello") + event(" world") + event(finish="stop") + b"data: [DONE]\n\n"
    assert "".join(await relay(split_everywhere(stream, size))) == "Hello world"


@pytest.mark.parametrize("size", [100, LIMIT - 10, LIMIT + 500, 50_000])
async def test_an_event_over_the_limit_is_refused_however_it_arrives(size: int) -> None:
    stream = event("ok") + event("x" * LIMIT) + event(finish="stop")
    with pytest.raises(UpstreamError, match="larger than"):
        await relay(split_everywhere(stream, size))


async def test_an_event_under_the_limit_passes_in_one_big_read() -> None:
    stream = event("x" * (LIMIT // 2)) + event("y" * (LIMIT // 2)) + event(finish="stop")
    assert len("".join(await relay([stream]))) == LIMIT


async def test_a_stream_that_stops_without_finishing_is_an_error() -> None:
    with pytest.raises(UpstreamError, match="ended the stream"):
        await relay([event("Hel"), event("lo")])


async def test_comments_and_other_fields_are_not_relayed() -> None:
    provider_reads = [b": keep-alive\n\n", b"event: x\nretry: 3\n\n", event("hi", "stop")]
    provider = OpenAICompatProvider(ProviderConfig(name="up"), keys=[])
    call = UpstreamCall({"stream": True}, wants_raw=True)
    raws = [
        d.raw
        async for d in provider._relay(Response(provider_reads), call, 1e12, 1e12)  # type: ignore[arg-type]
    ]
    assert raws == [event("hi", "stop")]


@pytest.mark.parametrize("size", [1, 5, 10_000])
async def test_a_last_event_without_its_blank_line_is_still_read(size: int) -> None:
    stream = event("Hello") + event(" there", finish="stop").rstrip(b"\n")
    assert "".join(await relay(split_everywhere(stream, size))) == "Hello there"
