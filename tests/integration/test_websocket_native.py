"""The native WebSocket protocol at /api/v1/ws, with the `websockets` client over a real socket."""

from __future__ import annotations

import json
import secrets
import socket
import time
from typing import Any

import pytest
from support import Gateway, ServerThread
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


def open_ws(gateway: Gateway, key: str | None = None, query: str = "") -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = gateway.url.replace("http", "ws", 1) + "/api/v1/ws" + query
    return connect(url, additional_headers=headers, max_size=None, open_timeout=10)


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(timeout=15)
    assert isinstance(frame, str)
    data: dict[str, Any] = json.loads(frame)
    return data


def chat(rid: Any, text: str, **extra: Any) -> str:
    return json.dumps(
        {
            "type": "chat",
            "id": rid,
            "model": "demo",
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
    )


def until_end(ws: ClientConnection, rid: Any) -> tuple[str, dict[str, Any]]:
    """The text of request ``rid`` and its last frame (done or error)."""
    texts = []
    while True:
        frame = recv(ws)
        if frame["id"] != rid:
            continue
        if frame["type"] == "delta":
            texts.append(frame["text"])
        else:
            return "".join(texts), frame


def test_reply_streams_as_deltas_and_ends_with_done(gateway: Gateway) -> None:
    with open_ws(gateway, gateway.key("alice")) as ws:
        ws.send(chat("q1", "What is a tree?"))
        deltas = []
        while (frame := recv(ws))["type"] == "delta":
            assert frame["id"] == "q1"
            deltas.append(frame["text"])
        assert len(deltas) > 20
        assert 'You asked: "What is a tree?"' in "".join(deltas)
        assert frame["type"] == "done" and frame["id"] == "q1"
        assert frame["finish_reason"] == "stop" and frame["model"] == "demo"
        assert frame["usage"]["completion_tokens"] == len(deltas)
    [row] = gateway.request_log()
    assert (row.status, row.counted) == ("ok", True)


def test_key_in_the_query_string_or_an_auth_frame_is_accepted(gateway: Gateway) -> None:
    key = gateway.key("alice")
    with open_ws(gateway, query=f"?token={key}") as ws:
        ws.send(json.dumps({"type": "chat", "id": 1, "model": "demo", "prompt": "hi"}))
        text, end = until_end(ws, 1)
        assert end["type"] == "done" and 'You asked: "hi"' in text
    with open_ws(gateway) as ws:
        ws.send(chat("early", "hi"))
        assert recv(ws) | {"message": ""} == {
            "type": "error",
            "id": "early",
            "code": "invalid_api_key",
            "message": "",
        }
        ws.send(json.dumps({"type": "auth", "token": key}))
        assert recv(ws)["user"] == "alice"
        ws.send(chat("late", "hi"))
        assert until_end(ws, "late")[1]["type"] == "done"


def test_a_bad_key_in_the_handshake_gets_an_error_and_the_socket_closes(gateway: Gateway) -> None:
    with open_ws(gateway, "sk-cg-not-a-real-key") as ws:
        assert recv(ws)["code"] == "invalid_api_key"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_two_requests_stream_at_once_on_one_socket(make_gateway: Any) -> None:
    gateway: Gateway = make_gateway(demo_chunk_delay=0.005)
    with open_ws(gateway, gateway.key("alice")) as ws:
        ws.send(chat("a", "first question"))
        ws.send(chat("b", "second question"))
        order: list[str] = []
        texts: dict[str, list[str]] = {"a": [], "b": []}
        done = set()
        while len(done) < 2:
            frame = recv(ws)
            order.append(frame["id"])
            if frame["type"] == "delta":
                texts[frame["id"]].append(frame["text"])
            else:
                assert frame["type"] == "done"
                done.add(frame["id"])
    assert "first question" in "".join(texts["a"])
    assert "second question" in "".join(texts["b"])
    first_b, last_a = order.index("b"), len(order) - 1 - order[::-1].index("a")
    assert first_b < last_a, "the replies were not interleaved"


def test_ping_gets_pong(gateway: Gateway) -> None:
    with open_ws(gateway, gateway.key("alice")) as ws:
        ws.send(json.dumps({"type": "ping", "id": "p"}))
        assert recv(ws) == {"type": "pong", "id": "p"}


def test_cancel_stops_the_upstream_at_once_and_keeps_the_partial_reply(
    slow_gateway: Gateway, watched_upstream: ServerThread
) -> None:
    with open_ws(slow_gateway, slow_gateway.key("alice")) as ws:
        ws.send(chat("long", "Tell me everything"))
        received = [recv(ws) for _ in range(3)]
        assert all(f["type"] == "delta" for f in received)
        ws.send(json.dumps({"type": "cancel", "id": "long"}))
        _, end = until_end(ws, "long")
        assert end["type"] == "error" and end["code"] == "cancelled"
        assert watched_upstream.app.wait_hangups(1)
        ws.send(json.dumps({"type": "ping", "id": "still-open"}))
        assert recv(ws)["type"] == "pong"
    [row] = slow_gateway.request_log()
    assert (row.status, row.finish_reason, row.counted) == ("cancelled", "cancelled", True)
    assert 3 <= row.completion_tokens < 60


def test_closing_the_socket_cancels_what_runs_on_it(
    slow_gateway: Gateway, watched_upstream: ServerThread
) -> None:
    with open_ws(slow_gateway, slow_gateway.key("alice")) as ws:
        ws.send(chat("a", "one"))
        ws.send(chat("b", "two"))
        seen = {recv(ws)["id"] for _ in range(6)}
        assert seen == {"a", "b"}
    assert watched_upstream.app.wait_hangups(2)
    rows = slow_gateway.request_log()
    assert sorted(r.status for r in rows) == ["cancelled", "cancelled"]
    assert all(0 < r.completion_tokens < 60 for r in rows)


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("not json at all", "invalid_request_error", None),
        ("[1, 2]", "invalid_request_error", None),
        (b"\x00\x01binary", "invalid_request_error", None),
        (json.dumps({"type": "dance", "id": "x"}), "invalid_request_error", "type"),
        (json.dumps({"type": "chat", "id": True, "model": "demo"}), "invalid_request_error", "id"),
        (
            json.dumps({"type": "chat", "id": "x", "model": "demo", "messages": "hi"}),
            "invalid_request_error",
            "messages",
        ),
        (json.dumps({"type": "chat", "id": "x", "model": 5, "prompt": "hi"}), None, "model"),
        (json.dumps({"type": "chat", "id": "x", "model": "gpt-9", "prompt": "hi"}), None, None),
        (json.dumps({"type": "cancel", "id": "nothing"}), "not_found", "id"),
        ("x" * 5000, "request_too_large", None),
    ],
)
def test_bad_frames_get_an_error_frame_and_the_socket_stays_usable(
    make_gateway: Any, frame: str | bytes, code: str | None, param: str | None
) -> None:
    gateway: Gateway = make_gateway(max_request_bytes=4096)
    with open_ws(gateway, gateway.key("alice")) as ws:
        ws.send(frame)
        error = recv(ws)
        assert error["type"] == "error" and error["message"]
        if code is not None:
            assert error["code"] == code
        if param is not None:
            assert error["param"] == param
        if "gpt-9" in str(frame):
            assert (error["id"], error["code"]) == ("x", "model_not_found")
        ws.send(chat("after", "still there?"))
        assert until_end(ws, "after")[1]["type"] == "done"


def test_the_daily_cap_ends_the_third_request_of_the_day(make_gateway: Any) -> None:
    gateway: Gateway = make_gateway(default_daily_requests=2)
    with open_ws(gateway, gateway.key("alice")) as ws:
        for rid in ("1", "2"):
            ws.send(chat(rid, "hi"))
            assert until_end(ws, rid)[1]["type"] == "done"
        ws.send(chat("3", "hi"))
        _, end = until_end(ws, "3")
    assert end["type"] == "error" and end["code"] == "insufficient_quota"
    assert end["retry_after"] > 0


def test_a_conversation_continues_from_the_done_ids(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    with open_ws(proxied_gateway, proxied_gateway.key("alice")) as ws:
        ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": 1,
                    "model": "demo",
                    "prompt": "I am Li.",
                    "conversation_id": "new",
                }
            )
        )
        _, first = until_end(ws, 1)
        ws.send(
            json.dumps(
                {
                    "type": "chat",
                    "id": 2,
                    "model": "demo",
                    "prompt": "Who am I?",
                    "conversation_id": first["conversation_id"],
                    "parent_id": first["message_id"],
                }
            )
        )
        _, second = until_end(ws, 2)
    assert first["conversation_id"] and first["message_id"] and first["parent_id"]
    assert second["conversation_id"] == first["conversation_id"]
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["role"] for m in context] == ["user", "assistant", "user"]
    assert context[0]["content"] == "I am Li." and context[2]["content"] == "Who am I?"


def test_a_cancelled_reply_is_stored_as_far_as_it_went(
    slow_gateway: Gateway, watched_upstream: ServerThread
) -> None:
    with open_ws(slow_gateway, slow_gateway.key("alice")) as ws:
        ws.send(chat("c", "Tell me", conversation_id="new"))
        received = "".join(recv(ws)["text"] for _ in range(3))
        ws.send(json.dumps({"type": "cancel", "id": "c"}))
        assert until_end(ws, "c")[1]["code"] == "cancelled"
    assert watched_upstream.app.wait_hangups(1)
    [reply] = [m for m in slow_gateway.stored_messages() if m.role == "assistant"]
    assert reply.finish_reason == "cancelled" and reply.content.startswith(received)
    assert len(reply.content) < 400


def test_requests_beyond_the_in_flight_cap_of_a_socket_are_refused(
    make_gateway: Any, watched_upstream: ServerThread
) -> None:
    gateway: Gateway = make_gateway(
        websocket_max_in_flight=1,
        openai_base_url=watched_upstream.url + "/v1",
        openai_api_key="k",
    )
    with open_ws(gateway, gateway.key("alice")) as ws:
        ws.send(chat("first", "one"))
        assert recv(ws)["id"] == "first"
        ws.send(chat("second", "two"))
        _, refused = until_end(ws, "second")
        assert (refused["type"], refused["code"]) == ("error", "rate_limit_exceeded")
        assert until_end(ws, "first")[1]["type"] == "done"
        ws.send(chat("third", "three"))
        assert until_end(ws, "third")[1]["type"] == "done"


class FloodUpstream:
    """A model server whose reply is 2,000 pieces of 64 KiB, counting what it has sent.
    The pieces are random, so that no compression on the way makes them small."""

    PIECE = secrets.token_urlsafe(49152)
    PIECES = 2000

    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["method"] != "POST":
            body = json.dumps({"object": "list", "data": [{"id": "flood"}]}).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(self.PIECES):
            delta = {"content": self.PIECE} if i < self.PIECES - 1 else {}
            finish = None if delta else "stop"
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            event = {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}
            body = b"data: " + json.dumps(event).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": body, "more_body": True})
            self.sent += 1
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def test_a_slow_reader_holds_back_the_upstream_instead_of_filling_memory(
    make_gateway: Any,
) -> None:
    flood = FloodUpstream()
    upstream = ServerThread(flood).start()
    try:
        gateway: Gateway = make_gateway(
            openai_base_url=upstream.url + "/v1",
            openai_api_key="k",
        )
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", gateway.port))
        url = gateway.url.replace("http", "ws", 1) + "/api/v1/ws"
        headers = {"Authorization": f"Bearer {gateway.key('alice')}"}
        with connect(url, sock=sock, additional_headers=headers, max_size=None, max_queue=2) as ws:
            ws.send(json.dumps({"type": "chat", "id": 1, "model": "flood", "prompt": "all"}))
            assert recv(ws)["type"] == "delta"
            seen, still = -1, 0
            while still < 5:  # wait until the upstream makes no more progress
                time.sleep(0.2)
                still = still + 1 if flood.sent == seen else 0
                seen = flood.sent
            # Socket buffers on the way hold some megabytes; the other half of the reply waits.
            assert seen < FloodUpstream.PIECES // 2, f"{seen} pieces read for a stalled client"
            ws.send(json.dumps({"type": "cancel", "id": 1}))
            texts, end = until_end(ws, 1)
        assert end["code"] == "cancelled" and len(texts) < len(FloodUpstream.PIECE) * seen
    finally:
        upstream.stop()
