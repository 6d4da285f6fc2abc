"""Every upstream fault, as the client sees it, as it is stored, and as it is counted: over the
OpenAI-compatible HTTP API (the ``openai`` package, raw SSE bytes with httpx), over the native
WebSocket protocol and gRPC service, and straight through ``ChatService.stream`` (the core every
transport uses)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import openai
import orjson
import pytest
from faulty_upstream import (
    Act,
    FaultyUpstream,
    cut_after,
    end_after,
    endless,
    garbage_after,
    hang_up,
    huge,
    ok,
    page,
    stall,
    stall_after,
    status,
)
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from support import Gateway
from upstream_rig import (
    EVENT_LIMIT,
    assert_nothing_left_open,
    request_log,
    rig_settings,
    task_count,
    usage_daily,
)
from websockets.sync.client import connect as ws_connect

from chatgate.core.errors import ChatgateError
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent
from chatgate.core.tokens import estimate_tokens
from chatgate.transports.protos import chatgate_v1_pb2, chatgate_v1_pb2_grpc

HTML_PAGE = b"<html><body><h1>502 Bad Gateway</h1>nginx at intranet-gw-3</body></html>"


@dataclass(frozen=True)
class Fault:
    """One fault and what must come of it.

    ``outcome``: ``ok`` (answered, perhaps by a retry or the backup), ``refused`` (an error
    before any byte: ``status``/``code``), ``broken`` (an error event after part of the reply).
    """

    name: str
    primary: tuple[Act, ...]
    model: str
    outcome: str
    served: str = "primary"
    primary_calls: int = 1
    backup_calls: int = 0
    status: int = 200
    code: str | None = None
    refuse: bool = False
    error_type: str | None = None
    param: str | None = None
    hidden: str | None = None  # text of the upstream's answer the client must not see


FAULTS = [
    Fault("refused-falls-back", (), "chain", "ok", "backup", 0, 1, refuse=True),
    Fault("refused-only", (), "solo", "refused", status=502, code="upstream_unavailable",
          primary_calls=0, refuse=True),
    Fault("hang-up-is-retried", (hang_up(),), "solo", "ok", primary_calls=2),
    Fault("stall-first-byte-falls-back", (stall(),), "chain", "ok", "backup", 1, 1),
    Fault("stall-first-byte-only", (stall(),), "solo", "refused", status=504,
          code="upstream_timeout", primary_calls=1),
    Fault("stall-mid-stream", (stall_after(5),), "chain", "broken", code="upstream_timeout"),
    Fault("429-retry-after-honoured", (status(429, retry_after_ms="150"),), "solo", "ok",
          primary_calls=2),
    Fault("429-long-retry-after-falls-back", (status(429, retry_after="30"),), "chain", "ok",
          "backup", 1, 1),
    Fault("429-persists", (status(429, retry_after_ms="10"),) * 2, "solo", "refused",
          status=429, code="upstream_rate_limited", primary_calls=2),
    Fault("500-retried", (status(500),), "solo", "ok", primary_calls=2),
    Fault("502-retried", (status(502),), "solo", "ok", primary_calls=2),
    Fault("503-retried", (status(503),), "solo", "ok", primary_calls=2),
    Fault("504-retried", (status(504),), "solo", "ok", primary_calls=2),
    Fault("501-is-not-tried-again", (status(501),), "chain", "refused", status=502,
          code="upstream_unavailable"),
    Fault("503-persists-falls-back", (status(503), status(503)), "chain", "ok", "backup", 2, 1),
    Fault("400-passed-on-never-resent", (status(400, "maximum context length is 8192 tokens"),),
          "chain", "refused", status=400, code="upstream_rejected"),
    Fault("401-is-our-misconfiguration", (status(401, "Incorrect API key provided: key-a"),),
          "chain", "refused", status=502, code="upstream_misconfigured"),
    Fault("400-keeps-the-upstreams-code-and-param",
          (status(400, "maximum context length is 8192 tokens",
                  error_code="context_length_exceeded", param="messages"),),
          "chain", "refused", status=400, code="context_length_exceeded",
          error_type="invalid_request_error", param="messages"),
    Fault("429-keeps-the-upstreams-type-and-code",
          (status(429, "Rate limit reached", error_code="rate_limit_exceeded",
                  retry_after_ms="10"),) * 2,
          "solo", "refused", status=429, code="rate_limit_exceeded", error_type="requests",
          primary_calls=2),
    Fault("502-html-page-is-not-shown", (page(502, HTML_PAGE),) * 2, "solo", "refused",
          status=502, code="upstream_unavailable", error_type="server_error", primary_calls=2,
          hidden="intranet"),
    Fault("403-proxy-page-is-not-shown", (page(403, b"Forbidden by proxy at 10.0.0.7",
                                                "text/plain"),),
          "chain", "refused", status=502, code="upstream_misconfigured", hidden="10.0.0.7"),
    Fault("cut-before-first-chunk-retried", (cut_after(0),), "solo", "ok", primary_calls=2),
    Fault("cut-mid-stream", (cut_after(6),), "chain", "broken", code="upstream_error"),
    Fault("ends-early-without-finish", (end_after(6),), "chain", "broken", code="upstream_error"),
    Fault("malformed-json-mid-stream", (garbage_after(4),), "chain", "broken",
          code="upstream_error"),
    Fault("malformed-first-event-retried", (garbage_after(0),), "solo", "ok", primary_calls=2),
    Fault("stray-sse-lines-ignored", (garbage_after(3, b": ping\n\nevent: x\nretry: 5\n\n"),),
          "solo", "ok"),
    Fault("huge-chunk-relayed-whole", (huge(EVENT_LIMIT // 2),), "solo", "ok"),
    Fault("chunk-over-the-limit", (huge(EVENT_LIMIT * 2),), "chain", "broken",
          code="upstream_error"),
    Fault("never-ends", (endless(0.02),), "chain", "broken", code="upstream_timeout"),
]  # fmt: skip


# The gRPC status each error code ends a call with.
GRPC_STATUS = {
    "upstream_unavailable": "UNAVAILABLE",
    "upstream_error": "UNAVAILABLE",
    "upstream_rate_limited": "UNAVAILABLE",
    "rate_limit_exceeded": "UNAVAILABLE",
    "upstream_timeout": "DEADLINE_EXCEEDED",
    "upstream_rejected": "INVALID_ARGUMENT",
    "context_length_exceeded": "INVALID_ARGUMENT",
    "upstream_misconfigured": "INTERNAL",
}


def _cells(fault: Fault) -> tuple[str, str, str]:
    """What a client of each streaming transport gets: OpenAI SSE, native WebSocket, gRPC."""
    code = f"`{fault.code}`"
    if fault.outcome == "ok":
        answer = "the answer"
        if fault.served == "backup":
            answer += ", by the backup"
        elif fault.primary_calls > 1:
            answer += f", on try {fault.primary_calls}"
        return answer, answer, answer
    grpc_status = GRPC_STATUS[fault.code or ""]
    if fault.outcome == "refused":
        return f"HTTP {fault.status} {code}", f"`error` frame {code}", f"{grpc_status} {code}"
    return (
        f"part of the answer, then an `error` event {code}, no `[DONE]`",
        f"`delta` frames, then an `error` frame {code}",
        f"deltas, an `error` event, then {grpc_status} {code}",
    )


def fault_table() -> str:
    """The README's table of faults, made from the faults these tests run."""
    lines = [
        "| fault (model: `solo` one upstream, `chain` a backup too) | OpenAI API (SSE) "
        "| native WebSocket | gRPC |",
        "|---|---|---|---|",
    ]
    for fault in FAULTS:
        lines.append(f"| `{fault.name}` (`{fault.model}`) | " + " | ".join(_cells(fault)) + " |")
    return "\n".join(lines) + "\n"


def test_the_readme_fault_table_is_the_one_these_tests_run() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert fault_table() in readme, "README's fault table is out of date:\n" + fault_table()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FaultyUpstream, FaultyUpstream]]:
    primary, backup = FaultyUpstream().start(), FaultyUpstream().start()
    yield primary, backup
    primary.stop()
    backup.stop()


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> Iterator[Gateway]:
    gateway = Gateway(rig_settings(tmp_path_factory.mktemp("rig"), *upstreams)).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def fault_on(
    request: pytest.FixtureRequest,
    rig: Gateway,
    upstreams: tuple[FaultyUpstream, FaultyUpstream],
) -> Iterator[Fault]:
    """Scripts the primary upstream for one fault; afterwards checks that nothing was left
    open, and puts everything back."""
    fault: Fault = request.param
    primary, backup = upstreams
    for upstream in upstreams:
        upstream.script.clear()
        upstream.seen.clear()
        upstream.default = ok()
    rig.services.models.health.reset()
    primary.enqueue(*fault.primary)
    if fault.refuse:
        primary.refuse()
    tasks = task_count(rig)
    yield fault
    primary.listen()
    assert_nothing_left_open(rig, tasks, primary, backup)
    assert len(primary.chat_requests()) == fault.primary_calls
    assert len(backup.chat_requests()) == fault.backup_calls


def _check_books(rig: Gateway, user: str, fault: Fault, reply_tokens: int) -> None:
    """request_log and usage_daily say what happened, with the cost of what was produced."""
    [row] = request_log(rig, user)
    [day] = usage_daily(rig, user)
    expected_cost = (row.prompt_tokens * 2.0 + row.completion_tokens * 8.0) / 1_000_000
    assert row.cost == pytest.approx(expected_cost)
    assert day.cost == pytest.approx(expected_cost)
    if fault.outcome == "ok":
        assert (row.status, row.provider, row.counted, row.error_code) == (
            "ok",
            fault.served,
            True,
            None,
        )
        assert (day.requests, day.errors) == (1, 0)
        assert row.completion_tokens == reply_tokens > 0
        assert row.cost > 0
    elif fault.outcome == "refused":
        assert (row.status, row.error_code, row.counted) == ("error", fault.code, False)
        assert (row.prompt_tokens, row.completion_tokens, row.cost) == (0, 0, 0)
        assert (day.requests, day.errors) == (0, 1)
    else:
        # The partial reply is settled with what was produced, but the request is not counted.
        assert (row.status, row.error_code, row.counted) == ("error", fault.code, False)
        assert row.provider == "primary"
        assert row.completion_tokens == reply_tokens > 0
        assert (day.requests, day.errors) == (0, 1)


@pytest.mark.parametrize("fault_on", FAULTS, ids=[f.name for f in FAULTS], indirect=True)
def test_fault_over_the_openai_api(rig: Gateway, fault_on: Fault) -> None:
    fault = fault_on
    user = f"http-{fault.name}"
    api = openai.OpenAI(base_url=rig.base_url, api_key=rig.key(user), max_retries=0)
    texts: list[str] = []
    usage_tokens = 0
    try:
        stream = api.chat.completions.create(
            model=fault.model,
            messages=[{"role": "user", "content": "Tell me about faults"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.choices:
                texts.append(chunk.choices[0].delta.content or "")
            if chunk.usage:
                usage_tokens = chunk.usage.completion_tokens
    except openai.APIStatusError as exc:
        assert fault.outcome == "refused", exc
        assert exc.status_code == fault.status
        assert exc.code == fault.code
        assert "key-a" not in exc.message
        if fault.code in ("upstream_rejected", "context_length_exceeded"):
            assert "maximum context length is 8192 tokens" in exc.message
        error = exc.body if isinstance(exc.body, dict) else {}
        if fault.error_type is not None:
            assert error.get("type") == fault.error_type
        assert error.get("param") == fault.param
        if fault.hidden is not None:
            assert fault.hidden not in exc.message
            assert "primary" in exc.message, "the message names the upstream that failed"
    except openai.APIError as exc:
        assert fault.outcome == "broken", exc
        assert "".join(texts), "part of the reply arrived before the error"
        usage_tokens = estimate_tokens("".join(texts))
    else:
        assert fault.outcome == "ok", "the stream should have failed"
        assert "Tell me about faults" in "".join(texts)
        if fault.name.startswith("huge"):
            assert "x" * (EVENT_LIMIT // 2) in "".join(texts)
    _check_books(rig, user, fault, usage_tokens)


async def _collect(
    events: AsyncIterator[ChatEvent],
) -> tuple[list[Delta], Done | ErrorEvent | None]:
    pieces: list[Delta] = []
    end: Done | ErrorEvent | None = None
    async for event in events:
        if isinstance(event, Delta):
            pieces.append(event)
        else:
            end = event
    return pieces, end


@pytest.mark.parametrize("fault_on", FAULTS, ids=[f.name for f in FAULTS], indirect=True)
def test_fault_through_the_core(rig: Gateway, fault_on: Fault) -> None:
    fault = fault_on
    user = f"core-{fault.name}"
    rig.key(user)
    services = rig.services

    async def ask() -> tuple[list[Delta], Done | ErrorEvent | None]:
        record = await services.accounts.get_user(user)
        principal = services.accounts.principal_for(record)
        request = ChatRequest(
            model=fault.model, messages=[{"role": "user", "content": "Tell me about faults"}]
        )
        return await _collect(services.chat.stream(principal, request))

    try:
        pieces, end = rig.run(ask())
    except ChatgateError as exc:
        assert fault.outcome == "refused", exc
        assert (exc.status, exc.code) == (fault.status, fault.code)
        assert "key-a" not in exc.message
        if fault.hidden is not None:
            assert fault.hidden not in exc.message
        _check_books(rig, user, fault, 0)
        return
    text = "".join(p.text for p in pieces)
    if fault.outcome == "ok":
        assert isinstance(end, Done)
        assert "Tell me about faults" in text
        assert end.usage.completion_tokens > 0
        _check_books(rig, user, fault, end.usage.completion_tokens)
    else:
        assert isinstance(end, ErrorEvent), end
        assert end.error.code == fault.code
        assert text, "part of the reply came before the error"
        _check_books(rig, user, fault, estimate_tokens(text))


def _sse_events(raw: bytes) -> list[bytes]:
    return [e for e in raw.split(b"\n\n") if e.strip()]


@pytest.mark.parametrize(
    "fault_on",
    [f for f in FAULTS if f.outcome == "broken"],
    ids=[f.name for f in FAULTS if f.outcome == "broken"],
    indirect=True,
)
def test_broken_stream_ends_with_an_error_event_and_no_done(rig: Gateway, fault_on: Fault) -> None:
    fault = fault_on
    with httpx.stream(
        "POST",
        rig.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {rig.key('raw-' + fault.name)}"},
        json={
            "model": fault.model,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=10,
    ) as response:
        assert response.status_code == 200
        raw = response.read()
    events = _sse_events(raw)
    assert b"[DONE]" not in raw
    *relayed, last = events
    assert relayed and all(e.startswith(b"data: {") for e in relayed)
    error = orjson.loads(last.removeprefix(b"data: "))["error"]
    assert error["code"] == fault.code and error["type"] == "server_error"
    assert "primary" in error["message"]


def test_retry_waits_as_long_as_the_upstream_asked(
    rig: Gateway, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> None:
    primary, _ = upstreams
    primary.seen.clear()
    primary.enqueue(status(429, retry_after_ms="300"))
    api = openai.OpenAI(base_url=rig.base_url, api_key=rig.key("patient"), max_retries=0)
    api.chat.completions.create(model="solo", messages=[{"role": "user", "content": "x"}])
    first, second = primary.chat_requests()
    assert second.at - first.at >= 0.3


def test_non_streamed_request_falls_back_too(
    rig: Gateway, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> None:
    primary, _ = upstreams
    rig.services.models.health.reset()
    primary.enqueue(status(503), status(503))
    api = openai.OpenAI(base_url=rig.base_url, api_key=rig.key("whole"), max_retries=0)
    reply = api.chat.completions.create(
        model="chain-alias", messages=[{"role": "user", "content": "whole please"}]
    )
    assert "whole please" in (reply.choices[0].message.content or "")
    [row] = request_log(rig, "whole")
    assert (row.status, row.provider, row.model) == ("ok", "backup", "chain")


@pytest.mark.parametrize("fault_on", FAULTS, ids=[f.name for f in FAULTS], indirect=True)
def test_fault_over_the_websocket(rig: Gateway, fault_on: Fault) -> None:
    fault = fault_on
    user = f"ws-{fault.name}"
    url = rig.url.replace("http", "ws", 1) + "/api/v1/ws"
    headers = {"Authorization": f"Bearer {rig.key(user)}"}
    texts: list[str] = []
    with ws_connect(url, additional_headers=headers, max_size=None, open_timeout=10) as ws:
        ws.send(
            orjson.dumps(
                {
                    "type": "chat",
                    "id": "q",
                    "model": fault.model,
                    "messages": [{"role": "user", "content": "Tell me about faults"}],
                }
            ).decode()
        )
        while (frame := orjson.loads(ws.recv(timeout=15)))["type"] == "delta":
            texts.append(frame["text"])
    text = "".join(texts)
    if fault.outcome == "ok":
        assert frame["type"] == "done", frame
        assert "Tell me about faults" in text
        _check_books(rig, user, fault, frame["usage"]["completion_tokens"])
        return
    assert (frame["type"], frame["code"]) == ("error", fault.code)
    assert "key-a" not in frame["message"]
    if fault.hidden is not None:
        assert fault.hidden not in frame["message"]
    if fault.outcome == "refused":
        assert not texts
    else:
        assert text, "part of the reply came before the error"
    _check_books(rig, user, fault, estimate_tokens(text))


def test_requests_the_upstream_failed_do_not_use_up_the_daily_cap(
    rig: Gateway, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> None:
    primary, _ = upstreams
    rig.services.models.health.reset()
    rig.run(rig.services.accounts.ensure_user("capped"))
    rig.run(rig.services.accounts.set_quota("capped", daily_requests=1))
    api = openai.OpenAI(base_url=rig.base_url, api_key=rig.key("capped"), max_retries=0)
    question = [{"role": "user", "content": "x"}]
    primary.enqueue(status(400, "too long"))
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model="solo", messages=question)
    primary.enqueue(stall_after(5))
    with pytest.raises(openai.APIError):
        list(api.chat.completions.create(model="solo", messages=question, stream=True))
    api.chat.completions.create(model="solo", messages=question)
    with pytest.raises(openai.RateLimitError) as info:
        api.chat.completions.create(model="solo", messages=question)
    assert info.value.code == "insufficient_quota"
    statuses = [(r.status, r.counted) for r in request_log(rig, "capped")]
    # the refused fourth is logged (for the console's 429 counts) but counts against nothing
    assert statuses == [("error", False), ("error", False), ("ok", True), ("refused", False)]


def test_a_client_that_goes_away_mid_stream_leaves_nothing_open_upstream(
    rig: Gateway, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> None:
    primary, backup = upstreams
    primary.default = ok(delay=0.02)
    tasks = task_count(rig)
    try:
        with httpx.stream(
            "POST",
            rig.base_url + "/chat/completions",
            headers={"Authorization": f"Bearer {rig.key('leaver')}"},
            json={"model": "solo", "stream": True, "messages": [{"role": "user", "content": "x"}]},
            timeout=10,
        ) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: {")
        assert_nothing_left_open(rig, tasks, primary, backup)
    finally:
        primary.default = ok()
    [row] = request_log(rig, "leaver")
    assert (row.status, row.counted, row.provider) == ("cancelled", True, "primary")


def test_a_client_that_leaves_while_the_model_is_silent_cancels_the_call_at_once(
    rig: Gateway, upstreams: tuple[FaultyUpstream, FaultyUpstream]
) -> None:
    primary, backup = upstreams
    primary.enqueue(stall_after(2))
    tasks = task_count(rig)
    with httpx.stream(
        "POST",
        rig.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {rig.key('quiet-leaver')}"},
        json={"model": "solo", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    ) as response:
        assert next(response.iter_lines()).startswith("data: {")
    assert_nothing_left_open(rig, tasks, primary, backup)
    [row] = request_log(rig, "quiet-leaver")
    assert row.status == "cancelled", "the call waited for the stall to time out"


@pytest.mark.parametrize("fault_on", FAULTS, ids=[f.name for f in FAULTS], indirect=True)
def test_fault_over_grpc(rig: Gateway, fault_on: Fault) -> None:
    fault = fault_on
    user = f"grpc-{fault.name}"
    pb = chatgate_v1_pb2
    request = pb.ChatRequest(
        model=fault.model, messages=[pb.Message(role="user", content="Tell me about faults")]
    )
    metadata = (("authorization", f"Bearer {rig.key(user)}"),)
    events: list[chatgate_v1_pb2.ChatEvent] = []
    ended: grpc.RpcError | None = None
    with grpc.insecure_channel(rig.grpc_target) as channel:
        stub = chatgate_v1_pb2_grpc.ChatgateStub(channel)
        try:
            for event in stub.Chat(request, metadata=metadata, timeout=15):
                events.append(event)
        except grpc.RpcError as exc:
            ended = exc
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    if fault.outcome == "ok":
        assert ended is None and events[-1].WhichOneof("event") == "done"
        assert "Tell me about faults" in text
        _check_books(rig, user, fault, events[-1].done.usage.completion_tokens)
        return
    # A failure ends the call with a status carrying the code (after an Error event if the
    # reply had started).
    assert ended is not None and fault.code in repr(ended.trailing_metadata())
    assert ended.code().name == GRPC_STATUS[fault.code]
    assert "key-a" not in (ended.details() or "")
    status_details = rpc_status.from_call(ended)  # type: ignore[arg-type]
    assert status_details is not None
    info = error_details_pb2.ErrorInfo()
    assert status_details.details[0].Unpack(info)
    assert info.reason == fault.code
    if fault.hidden is not None:
        assert fault.hidden not in (ended.details() or "")
    if fault.outcome == "refused":
        assert not events
    else:
        last = events[-1]
        assert last.WhichOneof("event") == "error" and last.error.code == fault.code
        assert text, "part of the reply came before the error"
    _check_books(rig, user, fault, estimate_tokens(text))
