"""chatgate's own gRPC service, ``chatgate.v1.Chatgate``: chat as a stream of typed events,
the models, and the caller's conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc

from chatgate.core.conversation_queries import ConversationSummary, MessageView
from chatgate.core.errors import ChatgateError, InvalidRequest
from chatgate.core.events import ChatEvent, ChatRequest, Delta, Done, ErrorEvent, Message
from chatgate.core.validation import check_chat
from chatgate.services import Services
from chatgate.transports.grpc_common import abort, authenticate
from chatgate.transports.protos import chatgate_v1_pb2, chatgate_v1_pb2_grpc

pb = chatgate_v1_pb2
MAX_ID = 64


def error_event(exc: ChatgateError) -> chatgate_v1_pb2.ChatEvent:
    retry_after = getattr(exc, "retry_after", None)
    return pb.ChatEvent(
        error=pb.Error(
            code=exc.code,
            message=exc.message,
            param=exc.param or "",
            retryable=exc.retryable,
            retry_after=float(retry_after or 0.0),
        )
    )


_PARAMS = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed")


def _optional_id(value: str, name: str) -> str | None:
    if len(value) > MAX_ID:
        raise InvalidRequest(f"'{name}' must be an id of at most {MAX_ID} characters.", param=name)
    return value or None


def parse_chat(request: chatgate_v1_pb2.ChatRequest) -> ChatRequest:
    """The request as the chat shape every transport checks the same way (``check_chat``)."""
    messages: list[Message] = []
    for message in request.messages:
        item: Message = {"role": message.role, "content": message.content}
        if message.name:
            item["name"] = message.name
        messages.append(item)
    if request.prompt:
        messages.append({"role": "user", "content": request.prompt})
    params: dict[str, Any] = {n: getattr(request, n) for n in _PARAMS if request.HasField(n)}
    if request.stop:
        params["stop"] = list(request.stop)
    check_chat({"model": request.model, "messages": messages, **params})
    return ChatRequest(
        model=request.model,
        messages=messages,
        params=params,
        conversation_id=_optional_id(request.conversation_id, "conversation_id"),
        parent_id=_optional_id(request.parent_id, "parent_id"),
    )


def render(event: ChatEvent) -> chatgate_v1_pb2.ChatEvent | None:
    if isinstance(event, Delta):
        if not event.text and not event.tool_calls:
            return None
        calls = [
            pb.ToolCall(
                index=int(c.get("index", 0)),
                id=c.get("id") or "",
                type=c.get("type") or "",
                name=(c.get("function") or {}).get("name") or "",
                arguments=(c.get("function") or {}).get("arguments") or "",
            )
            for c in event.tool_calls or ()
        ]
        return pb.ChatEvent(delta=pb.Delta(text=event.text, tool_calls=calls))
    if isinstance(event, Done):
        usage = event.usage
        return pb.ChatEvent(
            done=pb.Done(
                conversation_id=event.conversation_id or "",
                message_id=event.message_id or "",
                parent_id=event.parent_id or "",
                finish_reason=event.finish_reason,
                model=event.model,
                usage=pb.Usage(
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    total_tokens=usage.total_tokens,
                    estimated=usage.estimated,
                ),
            )
        )
    return error_event(event.error)


class NativeService(chatgate_v1_pb2_grpc.ChatgateServicer):  # type: ignore[misc]
    def __init__(self, services: Services) -> None:
        self.services = services

    async def Chat(
        self, request: chatgate_v1_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chatgate_v1_pb2.ChatEvent]:
        services = self.services
        error: ChatgateError | None = None
        try:
            principal = await authenticate(services, context)
            events = services.chat.stream(principal, parse_chat(request))
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, ErrorEvent):
                        error = event.error
                    out = render(event)
                    if out is not None:
                        yield out
        except ChatgateError as exc:
            error = exc
        if error is not None:
            await abort(context, error)

    async def ListModels(
        self, request: chatgate_v1_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> chatgate_v1_pb2.ListModelsResponse:
        try:
            principal = await authenticate(self.services, context)
        except ChatgateError as exc:
            await abort(context, exc)
        registry = self.services.models
        models = []
        for name in registry.names(principal):
            route = registry.resolve(name)
            models.append(pb.Model(id=name, owned_by=route.owned_by, created=route.created))
        return pb.ListModelsResponse(models=models)

    async def ListConversations(
        self,
        request: chatgate_v1_pb2.ListConversationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> chatgate_v1_pb2.ListConversationsResponse:
        try:
            principal = await authenticate(self.services, context)
            page = await self.services.conversations.page(
                principal.user_id,
                limit=request.limit or 20,
                cursor=request.cursor or None,
                query=request.query or None,
            )
        except ChatgateError as exc:
            await abort(context, exc)
        return pb.ListConversationsResponse(
            conversations=[_summary(c) for c in page.items], next_cursor=page.next_cursor or ""
        )

    async def GetConversation(
        self, request: chatgate_v1_pb2.GetConversationRequest, context: grpc.aio.ServicerContext
    ) -> chatgate_v1_pb2.Conversation:
        try:
            principal = await authenticate(self.services, context)
            tree = await self.services.conversations.tree(principal, _id(request))
        except ChatgateError as exc:
            await abort(context, exc)
        return pb.Conversation(
            summary=_summary(tree.conversation),
            messages=[_message(m) for m in tree.messages],
            current_path=tree.current_path,
        )

    async def DeleteConversation(
        self,
        request: chatgate_v1_pb2.DeleteConversationRequest,
        context: grpc.aio.ServicerContext,
    ) -> chatgate_v1_pb2.DeleteConversationResponse:
        try:
            principal = await authenticate(self.services, context)
            await self.services.conversations.delete(principal, _id(request))
        except ChatgateError as exc:
            await abort(context, exc)
        return pb.DeleteConversationResponse()


def _id(request: Any) -> str:
    if not request.conversation_id:
        raise InvalidRequest("'conversation_id' is required.", param="conversation_id")
    return str(request.conversation_id)


def _summary(conversation: ConversationSummary) -> chatgate_v1_pb2.ConversationSummary:
    return pb.ConversationSummary(
        id=conversation.id,
        title=conversation.title or "",
        model=conversation.model or "",
        system_prompt=conversation.system_prompt or "",
        current_leaf_id=conversation.current_leaf_id or "",
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
    )


def _message(message: MessageView) -> chatgate_v1_pb2.StoredMessage:
    return pb.StoredMessage(
        id=message.id,
        parent_id=message.parent_id or "",
        role=message.role,
        content=message.content,
        model=message.model or "",
        finish_reason=message.finish_reason or "",
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
        created_at=message.created_at,
    )
