# ruff: noqa: RUF001 - Chinese punctuation is part of what these tests send
"""The older programs' WebSocket protocols (seq and ask), with the `websockets` client over a
real socket, as their clients use them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from scripted_upstream import MODEL, ScriptedUpstream
from support import Gateway, ServerThread
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

TERMINATORS = (*",?!，。？！…", '"', "”", "’", "'")


def open_ws(gateway: Gateway, path: str, key: str | None = None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = gateway.url.replace("http", "ws", 1) + path
    return connect(url, additional_headers=headers, max_size=None, open_timeout=10)


def seq_ws(gateway: Gateway, key: str | None = None) -> ClientConnection:
    return open_ws(gateway, "/compat/ws/seq", key)


def ask_ws(gateway: Gateway, key: str | None = None) -> ClientConnection:
    return open_ws(gateway, "/compat/ws/ask", key)


def recv_json(ws: ClientConnection) -> dict[str, Any]:
    frame = ws.recv(timeout=15)
    assert isinstance(frame, str)
    data: dict[str, Any] = json.loads(frame)
    return data


def seq_frame(seq: Any, **data: Any) -> str:
    return json.dumps({"seq": seq, "data": data})


def seq_reply(ws: ClientConnection, seq: Any) -> list[dict[str, Any]]:
    """Every message for ``seq`` up to the one with a finish_reason (or an error)."""
    out = []
    while True:
        message = recv_json(ws)
        if message["seq"] != seq:
            continue
        out.append(message)
        if message["code"] != 0 or message["data"]["finish_reason"] is not None:
            return out


def ask_reply(ws: ClientConnection) -> list[str]:
    out = []
    while True:
        frame = ws.recv(timeout=15)
        assert isinstance(frame, str)
        out.append(frame)
        if frame.startswith(("<|end|>", "<|err|>")):
            return out


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ---- seq: replies ---------------------------------------------------------------------------


def test_seq_streams_each_delta_then_ends_with_stop(gateway: Gateway) -> None:
    with seq_ws(gateway, gateway.key("alice")) as ws:
        ws.send(seq_frame("yuw89573459", messages=user("杭州都有什么景色？"), model="demo"))
        reply = seq_reply(ws, "yuw89573459")
    assert len(reply) > 20
    assert all(m["code"] == 0 and m["msg"] == "ok" for m in reply)
    assert [m["data"]["finish_reason"] for m in reply[:-1]] == [None] * (len(reply) - 1)
    assert reply[-1]["data"]["finish_reason"] == "stop"
    assert all(float(m["data"]["consume_time"]) >= 0 for m in reply)
    text = "".join(m["data"]["contents"] for m in reply)
    assert 'You asked: "杭州都有什么景色？"' in text


def test_seq_requests_run_side_by_side_on_one_socket(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(demo_chunk_delay=0.005)
    with seq_ws(gateway, gateway.key("alice")) as ws:
        ws.send(seq_frame("a", messages=user("first"), model="demo"))
        ws.send(seq_frame("b", messages=user("second"), model="demo"))
        order: list[str] = []
        texts: dict[str, str] = {"a": "", "b": ""}
        while sum(1 for s in order if s == "end") < 2:
            message = recv_json(ws)
            texts[message["seq"]] += message["data"]["contents"]
            order.append(message["seq"])
            if message["data"]["finish_reason"] is not None:
                order.append("end")
    assert 'You asked: "first"' in texts["a"] and 'You asked: "second"' in texts["b"]
    assert order.index("b") < len(order) - 1 - order[::-1].index("a"), "not interleaved"


def test_seq_sentence_mode_sends_whole_sentences_never_cut_inside_quotes(
    gateway: Gateway,
) -> None:
    question = "他说：“今天很好，我们去西湖吧！”然后走了。She said 'wait, what?' ok!"
    key = gateway.key("alice")
    with seq_ws(gateway, key) as ws:
        ws.send(seq_frame(1, messages=user(question), model="demo"))
        whole = "".join(m["data"]["contents"] for m in seq_reply(ws, 1))
        ws.send(seq_frame(2, messages=user(question), model="demo", origin_stream=False))
        sentences = [m["data"]["contents"] for m in seq_reply(ws, 2)]
    assert "".join(sentences) == whole
    assert sentences[0] == f'You asked: "{question}"'
    assert all(s.rstrip().endswith(TERMINATORS) for s in sentences[:-1] if s)
    assert " so its answer is always the same for the same question:\n\n1." not in sentences
    assert "This is the built-in **demo** model of chatgate. It runs without any network," in (
        "".join(sentences[1:3])
    )
    for sentence in sentences:
        assert sentence.count("“") == sentence.count("”")
        assert sentence.count('"') % 2 == 0


def test_seq_query_goes_to_a_completion_model_and_messages_to_chat(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    with seq_ws(proxied_gateway, proxied_gateway.key("alice")) as ws:
        ws.send(seq_frame("q", query="Once upon a time", model="demo"))
        assert "Once upon a time" in "".join(m["data"]["contents"] for m in seq_reply(ws, "q"))
        ws.send(seq_frame("m", query="", messages=user("hi"), model="demo"))
        seq_reply(ws, "m")
    completion, chat = demo_upstream.app.requests
    assert completion["prompt"] == "Once upon a time" and "messages" not in completion
    assert chat["messages"] == user("hi") and "prompt" not in chat


def test_seq_openai_parameter_chooses_defaults_or_the_sent_values(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    sent = {"temperature": 0.7, "max_tokens": 3, "top_p": 0.5, "stop": ["Human:"]}
    with seq_ws(proxied_gateway, proxied_gateway.key("alice")) as ws:
        ws.send(seq_frame("d", messages=user("hi"), model="demo", **sent))
        assert seq_reply(ws, "d")[-1]["data"]["finish_reason"] == "stop"
        ws.send(seq_frame("s", messages=user("hi"), model="demo", openai_parameter=False, **sent))
        assert seq_reply(ws, "s")[-1]["data"]["finish_reason"] == "length"
    defaults, chosen = demo_upstream.app.requests
    assert (defaults["temperature"], defaults["max_tokens"]) == (0, 500)
    assert "top_p" not in defaults
    assert {k: chosen[k] for k in sent} == sent


def test_seq_continues_a_conversation_from_history_or_from_stored_ids(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    history = [
        {"role": "system", "content": "AI只能用中文回复"},
        {"role": "user", "content": "你是哪里人？"},
        {"role": "assistant", "content": "我是杭州人。"},
        {"role": "user", "content": "杭州都有什么景色？"},
    ]
    with seq_ws(proxied_gateway, proxied_gateway.key("alice")) as ws:
        ws.send(seq_frame("h", messages=history, model="demo"))
        seq_reply(ws, "h")
        ws.send(seq_frame("1", messages=user("first"), model="demo", conversation_id="new"))
        first = seq_reply(ws, "1")[-1]["data"]
        ws.send(
            seq_frame(
                "2",
                messages=user("second"),
                model="demo",
                conversation_id=first["conversation_id"],
                parent_id=first["message_id"],
            )
        )
        second = seq_reply(ws, "2")[-1]["data"]
    assert demo_upstream.app.requests[0]["messages"] == history
    assert second["conversation_id"] == first["conversation_id"]
    assert second["message_id"] != first["message_id"]
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["role"] for m in context] == ["user", "assistant", "user"]
    assert context[0]["content"] == "first" and context[2]["content"] == "second"
    assert context[1]["content"].startswith('You asked: "first"')


# ---- seq: errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "field", "seq"),
    [
        ("{not json", None, None),
        (b"\x00\x01", None, None),
        ("[1]", None, None),
        ("x" * 5000, None, None),
        (json.dumps({"data": {"query": "hi"}}), "seq", None),
        (json.dumps({"seq": "a", "data": "hi"}), "data", "a"),
        (seq_frame("a", model="demo"), "query", "a"),
        (seq_frame("a", query=5), "query", "a"),
        (seq_frame("a", messages="hi"), "messages", "a"),
        (seq_frame("a", messages=[{"role": "user"}]), "messages[0]", "a"),
        (seq_frame("a", query="hi", origin_stream="yes"), "origin_stream", "a"),
        (seq_frame("a", query="hi", openai_parameter=1), "openai_parameter", "a"),
        (seq_frame("a", query="hi", openai_parameter=False, temperature=1.5), "temperature", "a"),
        (seq_frame("a", query="hi", openai_parameter=False, temperature="0"), "temperature", "a"),
        (seq_frame("a", query="hi", openai_parameter=False, max_tokens=4098), "max_tokens", "a"),
        (seq_frame("a", query="hi", openai_parameter=False, max_tokens=0), "max_tokens", "a"),
        (seq_frame("a", query="hi", openai_parameter=False, top_p=-0.1), "top_p", "a"),
        (
            seq_frame("a", query="hi", openai_parameter=False, presence_penalty=2.5),
            "presence_penalty",
            "a",
        ),
        (
            seq_frame("a", query="hi", openai_parameter=False, frequency_penalty=True),
            "frequency_penalty",
            "a",
        ),
        (seq_frame("a", query="hi", openai_parameter=False, best_of=21), "best_of", "a"),
        (seq_frame("a", query="hi", openai_parameter=False, stop=[]), "stop", "a"),
        (seq_frame("a", query="hi", openai_parameter=False, stop="Human:"), "stop", "a"),
        (seq_frame(7, query="hi", model="gpt-9"), "gpt-9", 7),
    ],
)
def test_seq_bad_input_gets_a_nonzero_code_naming_the_field_and_the_socket_stays_usable(
    make_gateway: Callable[..., Gateway], frame: str | bytes, field: str | None, seq: Any
) -> None:
    gateway = make_gateway(max_request_bytes=4096, compat_model="demo")
    with seq_ws(gateway, gateway.key("alice")) as ws:
        ws.send(frame)
        message = recv_json(ws)
        assert message["code"] != 0 and message["seq"] == seq and message["msg"]
        if field is not None:
            assert field in message["msg"]
        ws.send(seq_frame("ok", messages=user("still there?"), model="demo"))
        assert seq_reply(ws, "ok")[-1]["data"]["finish_reason"] == "stop"


def test_seq_frames_are_parsed_as_json_never_evaluated(gateway: Gateway) -> None:
    with seq_ws(gateway, gateway.key("alice")) as ws:
        ws.send("{'seq': 'a', 'data': {'query': __import__('os').getcwd()}}")
        refused = recv_json(ws)
        ws.send(seq_frame("b", query="__import__('os').getcwd()", model="demo"))
        text = "".join(m["data"]["contents"] for m in seq_reply(ws, "b"))
    assert refused["code"] == 400 and "JSON" in refused["msg"]
    assert "You asked: \"__import__('os').getcwd()\"" in text


def test_seq_without_credentials_is_refused_unless_an_anonymous_user_is_set(
    make_gateway: Callable[..., Gateway],
) -> None:
    closed = make_gateway()
    with seq_ws(closed) as ws:
        refusal = recv_json(ws)
        assert refusal["code"] == 401 and "API key" in refusal["msg"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    open_ = make_gateway(anonymous_user="guest", default_daily_requests=1)
    with seq_ws(open_) as ws:
        ws.send(seq_frame("1", query="hi", model="demo"))
        assert seq_reply(ws, "1")[-1]["data"]["finish_reason"] == "stop"
    with seq_ws(open_) as ws:
        ws.send(seq_frame("2", query="hi", model="demo"))
        [capped] = seq_reply(ws, "2")
    assert capped["code"] == 429 and capped["seq"] == "2"
    [row] = [r for r in open_.request_log() if r.status == "ok"]
    assert row.user_id == open_.run(open_.services.accounts.get_user("guest")).id


def test_seq_daily_cap_is_enforced(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(default_daily_requests=2)
    with seq_ws(gateway, gateway.key("alice")) as ws:
        for seq in ("1", "2"):
            ws.send(seq_frame(seq, query="hi", model="demo"))
            assert seq_reply(ws, seq)[-1]["code"] == 0
        ws.send(seq_frame("3", query="hi", model="demo"))
        [capped] = seq_reply(ws, "3")
    assert capped["code"] == 429 and "today" in capped["msg"]


def test_seq_closing_the_socket_mid_reply_stops_the_upstream_and_keeps_the_partial_reply(
    slow_gateway: Gateway, watched_upstream: ServerThread
) -> None:
    with seq_ws(slow_gateway, slow_gateway.key("alice")) as ws:
        ws.send(seq_frame("c", messages=user("Tell me"), model="demo", conversation_id="new"))
        received = "".join(recv_json(ws)["data"]["contents"] for _ in range(3))
    assert watched_upstream.app.wait_hangups(1)
    [row] = slow_gateway.request_log()
    assert row.status == "cancelled" and 3 <= row.completion_tokens < 60
    [reply] = [m for m in slow_gateway.stored_messages() if m.role == "assistant"]
    assert reply.finish_reason == "cancelled" and reply.content.startswith(received)


# ---- ask ------------------------------------------------------------------------------------


def test_ask_streams_text_then_the_end_line_with_ids(gateway: Gateway) -> None:
    with ask_ws(gateway, gateway.key("alice")) as ws:
        ws.send("<|ask|>$new$new$早上好")
        frames = ask_reply(ws)
    assert 'You asked: "早上好"' in "".join(frames[:-1])
    tag, conversation_id, parent_id = frames[-1].split("$")
    assert tag == "<|end|>" and conversation_id and parent_id
    [reply] = [m for m in gateway.stored_messages() if m.role == "assistant"]
    assert (reply.id, reply.conversation_id) == (parent_id, conversation_id)


def test_ask_continues_a_conversation_from_the_end_line_ids(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    with ask_ws(proxied_gateway, proxied_gateway.key("alice")) as ws:
        ws.send("<|ask|>$new$new$My name is Li.")
        _, conversation_id, parent_id = ask_reply(ws)[-1].split("$")
        ws.send(f"<|ask|>${conversation_id}${parent_id}$What is my name? It costs $5$.")
        frames = ask_reply(ws)
    assert frames[-1].split("$")[1] == conversation_id
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["content"] for m in context if m["role"] == "user"] == [
        "My name is Li.",
        "What is my name? It costs $5$.",
    ]
    assert 'You asked: "What is my name? It costs $5$."' in "".join(frames[:-1])


@pytest.mark.parametrize(
    "frame",
    [
        "hello",
        "<|ask|>$new$only-two-parts",
        "<|ask|>$new$new$",
        "<|ask|>$no-such-conversation$new-parent$hi",
        b"<|ask|>$new$new$binary",
        "<|ask|>$new$new$" + "x" * 5000,
    ],
)
def test_ask_bad_frames_get_an_err_line_and_the_socket_stays_usable(
    make_gateway: Callable[..., Gateway], frame: str | bytes
) -> None:
    gateway = make_gateway(max_request_bytes=4096)
    with ask_ws(gateway, gateway.key("alice")) as ws:
        ws.send(frame)
        error = ws.recv(timeout=15)
        assert isinstance(error, str) and error.startswith("<|err|>$") and len(error) > 8
        ws.send("<|ask|>$new$new$still there?")
        assert ask_reply(ws)[-1].startswith("<|end|>$")


def test_ask_with_an_unknown_model_gets_an_err_line(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(compat_model="gpt-9")
    with ask_ws(gateway, gateway.key("alice")) as ws:
        ws.send("<|ask|>$new$new$hi")
        [error] = ask_reply(ws)
    assert error.startswith("<|err|>$") and "gpt-9" in error


def test_ask_a_second_question_while_one_streams_is_refused(slow_gateway: Gateway) -> None:
    with ask_ws(slow_gateway, slow_gateway.key("alice")) as ws:
        ws.send("<|ask|>$new$new$first")
        frames = [str(ws.recv(timeout=15))]
        ws.send("<|ask|>$new$new$second")
        while not frames[-1].startswith("<|end|>"):
            frames.extend(ask_reply(ws))
    errors = [f for f in frames if f.startswith("<|err|>$")]
    assert len(errors) == 1 and "<|end|>" in errors[0]
    assert 'You asked: "first"' in "".join(f for f in frames if not f.startswith("<|"))
    assert len([r for r in slow_gateway.request_log() if r.status == "ok"]) == 1


def test_ask_without_credentials_is_refused_unless_an_anonymous_user_is_set(
    make_gateway: Callable[..., Gateway],
) -> None:
    closed = make_gateway()
    with ask_ws(closed) as ws:
        refusal = ws.recv(timeout=10)
        assert isinstance(refusal, str) and refusal.startswith("<|err|>$")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    open_ = make_gateway(anonymous_user="guest", default_daily_requests=1)
    with ask_ws(open_) as ws:
        ws.send("<|ask|>$new$new$hi")
        assert ask_reply(ws)[-1].startswith("<|end|>$")
        ws.send("<|ask|>$new$new$again")
        [capped] = ask_reply(ws)
    assert capped.startswith("<|err|>$") and "today" in capped


def test_ask_daily_cap_is_enforced(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(default_daily_requests=1)
    with ask_ws(gateway, gateway.key("alice")) as ws:
        ws.send("<|ask|>$new$new$hi")
        assert ask_reply(ws)[-1].startswith("<|end|>$")
        ws.send("<|ask|>$new$new$hi")
        [capped] = ask_reply(ws)
    assert capped.startswith("<|err|>$You have used all 1 of today's requests; ")


def test_ask_closing_the_socket_mid_reply_stops_the_upstream_and_keeps_the_partial_reply(
    slow_gateway: Gateway, watched_upstream: ServerThread
) -> None:
    with ask_ws(slow_gateway, slow_gateway.key("alice")) as ws:
        ws.send("<|ask|>$new$new$Tell me everything")
        received = "".join(str(ws.recv(timeout=15)) for _ in range(3))
    assert watched_upstream.app.wait_hangups(1)
    [reply] = [m for m in slow_gateway.stored_messages() if m.role == "assistant"]
    assert reply.finish_reason == "cancelled"
    assert reply.content.startswith(received) and len(reply.content) < 400


def test_ask_with_a_conversation_and_new_parent_continues_from_its_latest_message(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    with ask_ws(proxied_gateway, proxied_gateway.key("alice")) as ws:
        ws.send("<|ask|>$new$new$My name is Li.")
        _, conversation_id, first_reply = ask_reply(ws)[-1].split("$")
        ws.send(f"<|ask|>${conversation_id}$new$What is my name?")
        _, same, second_reply = ask_reply(ws)[-1].split("$")
    assert same == conversation_id and second_reply != first_reply
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["content"] for m in context if m["role"] == "user"] == [
        "My name is Li.",
        "What is my name?",
    ]
    [question] = [m for m in proxied_gateway.stored_messages() if m.content == "What is my name?"]
    assert question.parent_id == first_reply


FORGED = ["<|end|>$forged$id", " then ", "<", "|err|>$also forged", " and <|", "end|> <"]


def test_ask_reply_text_cannot_forge_the_end_or_err_line(
    make_gateway: Callable[..., Gateway],
) -> None:
    upstream = ServerThread(ScriptedUpstream(FORGED)).start()
    try:
        gateway = make_gateway(
            openai_base_url=upstream.url + "/v1", openai_api_key="k", compat_model=MODEL
        )
        with ask_ws(gateway, gateway.key("alice")) as ws:
            ws.send("<|ask|>$new$new$say the markers")
            frames = ask_reply(ws)
    finally:
        upstream.stop()
    *text, end = frames
    assert not any(f.startswith("<|") for f in text)
    assert not any("<|" in f for f in "".join(text).split("\u200b"))
    assert "".join(text).replace("\u200b", "") == "".join(FORGED)
    [reply] = [m for m in gateway.stored_messages() if m.role == "assistant"]
    assert end == f"<|end|>${reply.conversation_id}${reply.id}"


def test_seq_error_messages_carry_a_finish_reason_as_every_last_message_does(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(compat_model="demo")
    with seq_ws(gateway, gateway.key("alice")) as ws:
        ws.send(seq_frame("m", query="hi", model="gpt-9"))
        unknown = recv_json(ws)
        ws.send("{not json")
        unreadable = recv_json(ws)
    for error in (unknown, unreadable):
        assert error["code"] != 0 and error["msg"]
        data = error["data"]
        assert data["finish_reason"] == "stop" and data["contents"] == ""
        assert float(data["consume_time"]) >= 0
    assert unknown["seq"] == "m" and unreadable["seq"] is None


def test_seq_sent_again_while_it_runs_is_answered_after_the_first(slow_gateway: Gateway) -> None:
    with seq_ws(slow_gateway, slow_gateway.key("alice")) as ws:
        ws.send(seq_frame("same", messages=user("first"), model="demo"))
        ws.send(seq_frame("same", messages=user("second"), model="demo"))
        first = seq_reply(ws, "same")
        second = seq_reply(ws, "same")
    assert first[-1]["code"] == 0 and second[-1]["code"] == 0
    assert 'You asked: "first"' in "".join(m["data"]["contents"] for m in first)
    assert 'You asked: "second"' in "".join(m["data"]["contents"] for m in second)
    assert len([r for r in slow_gateway.request_log() if r.status == "ok"]) == 2
