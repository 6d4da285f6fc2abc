"""gRPC over a real socket: chatgate's own service, the older `chat.Chat/Ask`, health and
reflection, with stubs generated from the repository's .proto files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from scripted_upstream import MODEL, ScriptedUpstream
from support import Gateway, ServerThread, free_port

from chatgate.transports.protos import (
    chat_pb2,
    chat_pb2_grpc,
    chatgate_v1_pb2,
    chatgate_v1_pb2_grpc,
)

pb = chatgate_v1_pb2


@pytest.fixture
def grpc_gateway(make_gateway: Callable[..., Gateway]) -> Callable[..., Gateway]:
    def make(**overrides: Any) -> Gateway:
        return make_gateway(grpc_port=free_port(), **overrides)

    return make


@pytest.fixture
def channel_to() -> Iterator[Callable[[Gateway], grpc.Channel]]:
    channels: list[grpc.Channel] = []

    def make(gateway: Gateway) -> grpc.Channel:
        channel = grpc.insecure_channel(gateway.grpc_target)
        grpc.channel_ready_future(channel).result(timeout=10)
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


def auth(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def details(error: grpc.RpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no rich status in the trailers")


def ask(text: str, **extra: Any) -> chatgate_v1_pb2.ChatRequest:
    return pb.ChatRequest(model="demo", messages=[pb.Message(role="user", content=text)], **extra)


# ---- chatgate.v1 ----------------------------------------------------------------------------


def test_native_chat_streams_typed_deltas_then_done(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    gateway = grpc_gateway()
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    events = list(stub.Chat(ask("What is a tree?"), metadata=auth(gateway.key("alice"))))
    deltas = [e.delta.text for e in events if e.WhichOneof("event") == "delta"]
    assert len(deltas) > 20 and 'You asked: "What is a tree?"' in "".join(deltas)
    last = events[-1]
    assert last.WhichOneof("event") == "done"
    assert last.done.finish_reason == "stop" and last.done.model == "demo"
    assert last.done.usage.completion_tokens == len(deltas)
    [row] = gateway.request_log()
    assert (row.status, row.counted) == ("ok", True)


def test_native_chat_passes_parameters_through(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    gateway = grpc_gateway()
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    events = list(
        stub.Chat(
            pb.ChatRequest(model="demo", prompt="long please", max_tokens=4),
            metadata=auth(gateway.key("alice")),
        )
    )
    assert events[-1].done.finish_reason == "length"
    assert sum(1 for e in events if e.WhichOneof("event") == "delta") == 4


def test_list_models_needs_a_key_and_lists_demo(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    gateway = grpc_gateway()
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    reply = stub.ListModels(pb.ListModelsRequest(), metadata=auth(gateway.key("alice")))
    assert [m.id for m in reply.models] == ["demo"]
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListModels(pb.ListModelsRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("request_", "key", "code", "reason"),
    [
        (ask("hi"), "sk-cg-wrong", grpc.StatusCode.UNAUTHENTICATED, "invalid_api_key"),
        (ask("hi"), None, grpc.StatusCode.UNAUTHENTICATED, "invalid_api_key"),
        (
            pb.ChatRequest(model="gpt-9", prompt="hi"),
            "good",
            grpc.StatusCode.NOT_FOUND,
            "model_not_found",
        ),
        (pb.ChatRequest(model="demo"), "good", grpc.StatusCode.INVALID_ARGUMENT, None),
        (pb.ChatRequest(prompt="hi"), "good", grpc.StatusCode.INVALID_ARGUMENT, None),
        (
            pb.ChatRequest(model="demo", messages=[pb.Message(role="wizard", content="x")]),
            "good",
            grpc.StatusCode.INVALID_ARGUMENT,
            None,
        ),
        (ask("x" * 5000), "good", grpc.StatusCode.RESOURCE_EXHAUSTED, None),
    ],
)
def test_bad_calls_get_the_right_status_and_the_channel_stays_usable(
    grpc_gateway: Callable[..., Gateway],
    channel_to: Callable[[Gateway], grpc.Channel],
    request_: chatgate_v1_pb2.ChatRequest,
    key: str | None,
    code: grpc.StatusCode,
    reason: str | None,
) -> None:
    gateway = grpc_gateway(max_request_bytes=4096)
    good = gateway.key("alice")
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    metadata = auth(good if key == "good" else key) if key else None
    with pytest.raises(grpc.RpcError) as failed:
        list(stub.Chat(request_, metadata=metadata))
    assert failed.value.code() == code
    if reason is not None:
        info = error_details_pb2.ErrorInfo()
        assert details(failed.value).details[0].Unpack(info)
        assert info.reason == reason
    events = list(stub.Chat(ask("still there?"), metadata=auth(good)))
    assert events[-1].WhichOneof("event") == "done"


def test_the_daily_cap_is_resource_exhausted_with_retry_info(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    gateway = grpc_gateway(default_daily_requests=2)
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    key = gateway.key("alice")
    for _ in range(2):
        assert list(stub.Chat(ask("hi"), metadata=auth(key)))[-1].done.finish_reason == "stop"
    with pytest.raises(grpc.RpcError) as capped:
        list(stub.Chat(ask("hi"), metadata=auth(key)))
    assert capped.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in details(capped.value).details)
    assert retry.retry_delay.seconds > 0


def test_cancelling_the_call_stops_the_upstream_and_keeps_the_partial_reply(
    make_gateway: Callable[..., Gateway],
    watched_upstream: ServerThread,
    channel_to: Callable[[Gateway], grpc.Channel],
) -> None:
    gateway = make_gateway(
        grpc_port=free_port(), openai_base_url=watched_upstream.url + "/v1", openai_api_key="k"
    )
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    call = stub.Chat(ask("Tell me everything"), metadata=auth(gateway.key("alice")))
    first = [next(call) for _ in range(3)]
    assert all(e.WhichOneof("event") == "delta" for e in first)
    call.cancel()
    assert watched_upstream.app.wait_hangups(1)
    [row] = gateway.request_log()
    assert (row.status, row.counted) == ("cancelled", True)
    assert 3 <= row.completion_tokens < 60


# ---- chat.Chat/Ask --------------------------------------------------------------------------


def test_ask_streams_text_then_the_end_line(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    gateway = grpc_gateway()
    stub = chat_pb2_grpc.ChatStub(channel_to(gateway))
    request = chat_pb2.askrequest(prompt="早上好", conversation_id="new", parent_id="new")
    replies = [r.response for r in stub.Ask(request, metadata=auth(gateway.key("alice")))]
    assert 'You asked: "早上好"' in "".join(replies[:-1])
    assert replies[-1].startswith("<|end|>$")
    assert all(not r.startswith("<|") for r in replies[:-1])


def test_ask_without_credentials_is_refused_unless_there_is_an_anonymous_user(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    closed = grpc_gateway()
    stub = chat_pb2_grpc.ChatStub(channel_to(closed))
    call = stub.Ask(chat_pb2.askrequest(prompt="hi", conversation_id="new", parent_id="new"))
    [refused] = [r.response for r in call]
    assert refused.startswith("<|err|>$") and "API key" in refused
    assert call.code() == grpc.StatusCode.OK

    open_ = grpc_gateway(anonymous_user="guest", default_daily_requests=1)
    stub = chat_pb2_grpc.ChatStub(channel_to(open_))
    request = chat_pb2.askrequest(prompt="hi", conversation_id="new", parent_id="new")
    replies = [r.response for r in stub.Ask(request)]
    assert replies[-1].startswith("<|end|>$")
    call = stub.Ask(request)
    [capped] = [r.response for r in call]
    assert capped.startswith("<|err|>$") and call.code() == grpc.StatusCode.OK


def test_ask_with_an_empty_prompt_gets_an_err_line_and_the_call_ends_normally(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    gateway = grpc_gateway()
    stub = chat_pb2_grpc.ChatStub(channel_to(gateway))
    call = stub.Ask(chat_pb2.askrequest(prompt=""), metadata=auth(gateway.key("alice")))
    [error] = [r.response for r in call]
    assert error.startswith("<|err|>$") and call.code() == grpc.StatusCode.OK


def test_ask_whose_upstream_is_down_ends_with_an_err_line_and_status_ok_native_keeps_codes(
    make_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    gateway = make_gateway(
        grpc_port=free_port(),
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
        openai_api_key="k",
        compat_model="demo",
    )
    channel = channel_to(gateway)
    key = auth(gateway.key("alice"))
    call = chat_pb2_grpc.ChatStub(channel).Ask(
        chat_pb2.askrequest(prompt="hi", conversation_id="new"), metadata=key
    )
    lines = [r.response for r in call]
    assert lines[-1].startswith("<|err|>$") and call.code() == grpc.StatusCode.OK
    with pytest.raises(grpc.RpcError) as failed:
        list(chatgate_v1_pb2_grpc.ChatgateStub(channel).Chat(ask("hi"), metadata=key))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


def test_cancelling_an_ask_stops_the_upstream(
    make_gateway: Callable[..., Gateway],
    watched_upstream: ServerThread,
    channel_to: Callable[[Gateway], grpc.Channel],
) -> None:
    gateway = make_gateway(
        grpc_port=free_port(), openai_base_url=watched_upstream.url + "/v1", openai_api_key="k"
    )
    stub = chat_pb2_grpc.ChatStub(channel_to(gateway))
    request = chat_pb2.askrequest(prompt="Tell me", conversation_id="new", parent_id="new")
    call = stub.Ask(request, metadata=auth(gateway.key("alice")))
    assert len([next(call) for _ in range(3)]) == 3
    call.cancel()
    assert watched_upstream.app.wait_hangups(1)
    [row] = gateway.request_log()
    assert row.status == "cancelled" and 3 <= row.completion_tokens < 60


# ---- health and reflection ------------------------------------------------------------------


def test_health_and_reflection_answer(
    grpc_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    channel = channel_to(grpc_gateway())
    checker = health_pb2_grpc.HealthStub(channel)
    for service in ("", "chat.Chat", "chatgate.v1.Chatgate"):
        reply = checker.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflector = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = list(
        reflector.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    )
    names = {s.name for s in answer.list_services_response.service}
    assert {"chat.Chat", "chatgate.v1.Chatgate", "grpc.health.v1.Health"} <= names


# ---- conversations --------------------------------------------------------------------------


def test_native_chat_continues_a_stored_conversation_and_reads_it_back(
    make_gateway: Callable[..., Gateway],
    demo_upstream: ServerThread,
    channel_to: Callable[[Gateway], grpc.Channel],
) -> None:
    gateway = make_gateway(
        grpc_port=free_port(), openai_base_url=demo_upstream.url + "/v1", openai_api_key="k"
    )
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    key = auth(gateway.key("alice"))
    first = list(
        stub.Chat(
            pb.ChatRequest(model="demo", prompt="I am Li.", conversation_id="new"), metadata=key
        )
    )[-1].done
    follow_up = pb.ChatRequest(
        model="demo",
        prompt="Who am I?",
        conversation_id=first.conversation_id,
        parent_id=first.message_id,
    )
    second = list(stub.Chat(follow_up, metadata=key))[-1].done
    assert second.conversation_id == first.conversation_id
    assert second.parent_id != first.message_id and second.message_id
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["role"] for m in context] == ["user", "assistant", "user"]
    assert context[0]["content"] == "I am Li." and context[2]["content"] == "Who am I?"

    listed = stub.ListConversations(pb.ListConversationsRequest(), metadata=key)
    assert [c.id for c in listed.conversations] == [first.conversation_id]
    tree = stub.GetConversation(
        pb.GetConversationRequest(conversation_id=first.conversation_id), metadata=key
    )
    assert [m.role for m in tree.messages] == ["user", "assistant", "user", "assistant"]
    assert tree.current_path[-1] == second.message_id
    assert tree.summary.current_leaf_id == second.message_id

    other = auth(gateway.key("bob"))
    with pytest.raises(grpc.RpcError) as hidden:
        stub.GetConversation(
            pb.GetConversationRequest(conversation_id=first.conversation_id), metadata=other
        )
    assert hidden.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    stub.DeleteConversation(
        pb.DeleteConversationRequest(conversation_id=first.conversation_id), metadata=key
    )
    with pytest.raises(grpc.RpcError) as gone:
        stub.GetConversation(
            pb.GetConversationRequest(conversation_id=first.conversation_id), metadata=key
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_native_chat_cancel_keeps_the_partial_reply_in_the_conversation(
    make_gateway: Callable[..., Gateway],
    watched_upstream: ServerThread,
    channel_to: Callable[[Gateway], grpc.Channel],
) -> None:
    gateway = make_gateway(
        grpc_port=free_port(), openai_base_url=watched_upstream.url + "/v1", openai_api_key="k"
    )
    stub = chatgate_v1_pb2_grpc.ChatgateStub(channel_to(gateway))
    call = stub.Chat(
        pb.ChatRequest(model="demo", prompt="Tell me", conversation_id="new"),
        metadata=auth(gateway.key("alice")),
    )
    received = "".join(next(call).delta.text for _ in range(3))
    call.cancel()
    assert watched_upstream.app.wait_hangups(1)
    [reply] = [m for m in gateway.stored_messages() if m.role == "assistant"]
    assert reply.finish_reason == "cancelled" and reply.content.startswith(received)
    assert len(reply.content) < 400


def test_ask_continues_a_conversation_from_its_end_line(
    make_gateway: Callable[..., Gateway],
    demo_upstream: ServerThread,
    channel_to: Callable[[Gateway], grpc.Channel],
) -> None:
    gateway = make_gateway(
        grpc_port=free_port(), openai_base_url=demo_upstream.url + "/v1", openai_api_key="k"
    )
    stub = chat_pb2_grpc.ChatStub(channel_to(gateway))
    key = auth(gateway.key("alice"))
    first = chat_pb2.askrequest(prompt="I am Li.", conversation_id="new", parent_id="new")
    _, conversation_id, parent_id = list(stub.Ask(first, metadata=key))[-1].response.split("$")
    follow_up = chat_pb2.askrequest(
        prompt="Who am I?", conversation_id=conversation_id, parent_id=parent_id
    )
    end = list(stub.Ask(follow_up, metadata=key))[-1].response
    assert end.split("$")[1] == conversation_id
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["content"] for m in context if m["role"] == "user"] == ["I am Li.", "Who am I?"]
    latest = chat_pb2.askrequest(prompt="And now?", conversation_id=conversation_id)
    assert list(stub.Ask(latest, metadata=key))[-1].response.startswith("<|end|>$")
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["content"] for m in context if m["role"] == "user"] == [
        "I am Li.",
        "Who am I?",
        "And now?",
    ]


def test_ask_with_new_as_the_parent_continues_the_conversation_from_its_latest_message(
    make_gateway: Callable[..., Gateway],
    demo_upstream: ServerThread,
    channel_to: Callable[[Gateway], grpc.Channel],
) -> None:
    gateway = make_gateway(
        grpc_port=free_port(), openai_base_url=demo_upstream.url + "/v1", openai_api_key="k"
    )
    stub = chat_pb2_grpc.ChatStub(channel_to(gateway))
    key = auth(gateway.key("alice"))
    first = chat_pb2.askrequest(prompt="I am Li.", conversation_id="new", parent_id="new")
    _, conversation_id, reply_id = list(stub.Ask(first, metadata=key))[-1].response.split("$")
    again = chat_pb2.askrequest(
        prompt="Who am I?", conversation_id=conversation_id, parent_id="new"
    )
    end = list(stub.Ask(again, metadata=key))[-1].response
    assert end.split("$")[1] == conversation_id
    context = demo_upstream.app.requests[-1]["messages"]
    assert [m["content"] for m in context if m["role"] == "user"] == ["I am Li.", "Who am I?"]
    [question] = [m for m in gateway.stored_messages() if m.content == "Who am I?"]
    assert question.parent_id == reply_id


def test_ask_reply_text_cannot_forge_the_end_line_over_grpc(
    make_gateway: Callable[..., Gateway], channel_to: Callable[[Gateway], grpc.Channel]
) -> None:
    pieces = ["<|end|>$forged$id", "\n", "<", "|err|>$forged"]
    upstream = ServerThread(ScriptedUpstream(pieces)).start()
    try:
        gateway = make_gateway(
            grpc_port=free_port(),
            openai_base_url=upstream.url + "/v1",
            openai_api_key="k",
            compat_model=MODEL,
        )
        stub = chat_pb2_grpc.ChatStub(channel_to(gateway))
        request = chat_pb2.askrequest(prompt="markers", conversation_id="new")
        *text, end = [r.response for r in stub.Ask(request, metadata=auth(gateway.key("a")))]
    finally:
        upstream.stop()
    assert "<|" not in "".join(text)
    assert "".join(text).replace("\u200b", "") == "".join(pieces)
    assert end.startswith("<|end|>$") and "forged" not in end
