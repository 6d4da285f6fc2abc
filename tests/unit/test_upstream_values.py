"""What an upstream says is checked at the edge, before it is counted, shown or stored: token
counts, finish reasons, tool calls and error codes are bounded, and whatever bytes or JSON an
upstream sends, the parser gives well-typed pieces or the gateway's own ``UpstreamError``."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatgate.core.errors import ChatgateError, UpstreamError
from chatgate.core.events import Delta, Usage
from chatgate.providers.base import UpstreamCall
from chatgate.providers.openai_compat import (
    MAX_FINISH,
    MAX_TOKENS,
    MAX_TOOL_FIELD,
    OpenAICompatProvider,
    _finish,
    _usage,
    upstream_status_error,
    whole_reply,
)
from chatgate.settings import ProviderConfig

# ---- tables ------------------------------------------------------------------------------------

USAGES: list[tuple[Any, Usage | None]] = [
    ({"prompt_tokens": 12, "completion_tokens": 7}, Usage(12, 7)),
    ({"prompt_tokens": 0, "completion_tokens": 0}, Usage(0, 0)),
    ({"completion_tokens": 3}, Usage(0, 3)),
    ({"prompt_tokens": MAX_TOKENS, "completion_tokens": 1}, Usage(MAX_TOKENS, 1)),
    ({"prompt_tokens": 10**30, "completion_tokens": 1}, None),
    ({"prompt_tokens": 1e30, "completion_tokens": 1}, None),
    ({"prompt_tokens": MAX_TOKENS + 1, "completion_tokens": 1}, None),
    ({"prompt_tokens": -1, "completion_tokens": 1}, None),
    ({"prompt_tokens": 1.5, "completion_tokens": 1}, None),
    ({"prompt_tokens": "12", "completion_tokens": 1}, None),
    ({"prompt_tokens": True, "completion_tokens": 1}, None),
    ({"prompt_tokens": None, "completion_tokens": 1}, None),
    ({"prompt_tokens": {"n": 1}, "completion_tokens": 1}, None),
    ([12, 7], None),
    ("12", None),
]


@pytest.mark.parametrize(("given", "expected"), USAGES, ids=[repr(u[0]) for u in USAGES])
def test_token_counts_are_used_only_when_they_can_be_trusted(
    given: Any, expected: Usage | None
) -> None:
    assert _usage(given) == expected


FINISHES: list[tuple[Any, str | None]] = [
    ("stop", "stop"),
    ("length", "length"),
    ("tool_calls", "tool_calls"),
    ("content_filter", "content_filter"),
    ("eos", "eos"),
    ("end_turn", "end_turn"),
    (None, None),
    ({"reason": "stop"}, "stop"),
    (["stop"], "stop"),
    (7, "stop"),
    ("x" * (MAX_FINISH + 1), "stop"),
    ("stop\nDROP TABLE", "stop"),
    ("Stop Now", "stop"),
]


@pytest.mark.parametrize(("given", "expected"), FINISHES, ids=[repr(f[0]) for f in FINISHES])
def test_a_finish_reason_is_a_short_word_or_becomes_stop(given: Any, expected: str | None) -> None:
    assert _finish(given) == expected


def _reply(**choice: Any) -> bytes:
    return json.dumps({"choices": [{"index": 0, **choice}]}).encode()


def test_a_whole_reply_with_untrustworthy_values_is_kept_with_safe_ones() -> None:
    raw = json.dumps(
        {
            "choices": [
                {
                    "message": {
                        "content": "hi",
                        "tool_calls": [
                            {
                                "id": "call_1" * 100,
                                "type": "function",
                                "index": 10**12,
                                "function": {"name": "lookup", "arguments": "{}", "x": [1]},
                                "extra": {"deep": True},
                            }
                        ],
                    },
                    "finish_reason": {"an": "object"},
                }
            ],
            "usage": {"prompt_tokens": 10**30, "completion_tokens": "7"},
        }
    ).encode()
    delta = whole_reply("up", raw, wants_raw=True)
    assert delta.raw is None, "the client is not sent the upstream's untrustworthy body"
    assert delta.text == "hi"
    assert delta.finish_reason == "stop"
    assert delta.usage is None, "the usage is estimated instead"
    assert delta.tool_calls == [
        {"type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    ]


UPSTREAM_ERRORS: list[tuple[int, bytes, str, str, str | None]] = [
    (400, b'{"error": {"message": "too long", "type": "invalid_request_error", '
          b'"code": "context_length_exceeded", "param": "messages"}}',
     "context_length_exceeded", "invalid_request_error", "messages"),
    (429, b'{"error": {"message": "slow down", "type": "requests", '
          b'"code": "rate_limit_exceeded", "param": null}}',
     "rate_limit_exceeded", "requests", None),
    (429, b'{"error": {"message": "no credit", "type": "insufficient_quota", '
          b'"code": "insufficient_quota"}}',
     "insufficient_quota", "insufficient_quota", None),
    (400, b'{"error": {"message": "bad", "type": "x y z <script>", "code": "' + b"c" * 65
          + b'", "param": {"a": 1}}}',
     "upstream_rejected", "", None),
    (400, b'{"error": "model llama9 not found, try pulling it first"}',
     "upstream_rejected", "", None),
    (502, b"<html><body>Bad gateway at intranet-gw-3</body></html>",
     "upstream_unavailable", "", None),
    (500, b"", "upstream_unavailable", "", None),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "code", "kind", "param"), UPSTREAM_ERRORS)
def test_an_upstream_error_keeps_only_sound_type_code_and_param(
    status: int, body: bytes, code: str, kind: str, param: str | None
) -> None:
    exc = upstream_status_error("up", status, body, {})
    assert exc.code == code
    assert (exc.error_type or "") == kind
    assert exc.param == param
    assert "intranet" not in exc.message
    if code == "insufficient_quota":
        assert not exc.retryable, "an upstream out of credit is not asked again"


def test_an_upstream_error_page_is_logged_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    body = b"<html>Forbidden: key sk-upstream-777 is not allowed at intranet-gw-3</html>"
    with caplog.at_level("WARNING", logger="chatgate.upstream"):
        exc = upstream_status_error("up", 502, body, {}, ["sk-upstream-777"])
    assert "intranet" not in exc.message and "'up'" in exc.message and "502" in exc.message
    [record] = caplog.records
    assert "intranet-gw-3" in record.getMessage()
    assert "sk-upstream-777" not in record.getMessage()


# ---- properties: whatever the upstream sends -------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELD = st.sampled_from(
    ["content", "text", "tool_calls", "finish_reason", "usage", "index", "role", "error"]
)
LEAF = JSON | st.sampled_from(["stop", "length", "", "hi"])


def _shaped(data: st.DataObject) -> dict[str, Any]:
    """An OpenAI-like chunk or reply whose every value may be anything."""
    delta = data.draw(st.dictionaries(FIELD, LEAF, max_size=4))
    choice = data.draw(st.dictionaries(FIELD, LEAF, max_size=4))
    choice[data.draw(st.sampled_from(["delta", "message", "text"]))] = delta
    body: dict[str, Any] = {"choices": data.draw(st.sampled_from([[choice], choice, [], None]))}
    if data.draw(st.booleans()):
        body["usage"] = data.draw(
            st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens"]), LEAF)
        )
    return body


def _check(delta: Delta) -> None:
    """A piece that can be counted, shown and stored as it is."""
    assert type(delta.text) is str
    assert delta.finish_reason is None or (
        type(delta.finish_reason) is str and len(delta.finish_reason) <= MAX_FINISH
    )
    if delta.usage is not None:
        for count in (delta.usage.prompt_tokens, delta.usage.completion_tokens):
            assert type(count) is int and 0 <= count <= MAX_TOKENS
    if delta.tool_calls is not None:
        assert type(delta.tool_calls) is list
        for call in delta.tool_calls:
            assert type(call) is dict
            for field in ("id", "type"):
                assert field not in call or (
                    type(call[field]) is str and len(call[field]) <= MAX_TOOL_FIELD
                )
            assert "index" not in call or type(call["index"]) is int
            function = call.get("function", {})
            assert type(function) is dict
            assert all(type(v) is str for v in function.values())
            assert "name" not in function or len(function["name"]) <= MAX_TOOL_FIELD


def _whole(raw: bytes) -> None:
    try:
        delta = whole_reply("up", raw, wants_raw=True)
    except UpstreamError:
        return
    _check(delta)
    assert delta.finish_reason is not None


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.binary(max_size=200))
def test_any_bytes_as_a_whole_reply(raw: bytes) -> None:
    _whole(raw)


@PROPERTY
@given(JSON)
def test_any_json_as_a_whole_reply(value: Any) -> None:
    _whole(json.dumps(value).encode())


@PROPERTY
@given(st.data())
def test_any_values_in_a_reply_shaped_whole_reply(data: st.DataObject) -> None:
    _whole(json.dumps(_shaped(data)).encode())


class _Reads:
    """Stands in for ``aiohttp.ClientResponse``: hands out the given reads."""

    def __init__(self, reads: list[bytes]) -> None:
        self._reads = iter(reads)
        self.content = self

    async def readany(self) -> bytes:
        return next(self._reads, b"")


def _relay(reads: list[bytes]) -> None:
    provider = OpenAICompatProvider(ProviderConfig(name="up", max_event_bytes=4096), keys=[])

    async def run() -> None:
        call = UpstreamCall({"stream": True}, wants_raw=True, client_usage=True)
        async for delta in provider._relay(_Reads(reads), call, 1e12, 1e12):  # type: ignore[arg-type]
            _check(delta)

    try:
        asyncio.run(run())
    except UpstreamError:
        pass
    except ChatgateError as exc:  # pragma: no cover - the property's failure
        raise AssertionError(f"not an UpstreamError: {exc!r}") from exc


def _cut(stream: bytes, data: st.DataObject) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@PROPERTY
@given(st.binary(max_size=300), st.data())
def test_any_bytes_as_a_stream(raw: bytes, data: st.DataObject) -> None:
    _relay(_cut(raw, data))


@PROPERTY
@given(st.lists(JSON, max_size=4), st.data())
def test_any_json_events_as_a_stream(values: list[Any], data: st.DataObject) -> None:
    stream = b"".join(b"data: " + json.dumps(v).encode() + b"\n\n" for v in values)
    _relay(_cut(stream + b"data: [DONE]\n\n", data))


@PROPERTY
@given(st.data())
def test_any_values_in_chunk_shaped_events(data: st.DataObject) -> None:
    events = [_shaped(data) for _ in range(data.draw(st.integers(1, 3)))]
    stream = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    _relay(_cut(stream, data))
