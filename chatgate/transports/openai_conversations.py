"""OpenAI's Conversations API (``/v1/conversations``) over chatgate's own conversations.

A conversation here is the very conversation the native API, the web page and the terminal
client see: its id is chatgate's id, its items are the messages of its current path (message
items, ids ``msg_`` + chatgate's message id), and its metadata holds its ``title``. Adding items
stores messages after the current leaf without asking for a reply. Another user's conversation
is "not found", and every refusal is in OpenAI's error shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from chatgate.core.accounts import Principal
from chatgate.core.conversation_queries import ConversationSummary, MessageView
from chatgate.core.conversations import ConversationService
from chatgate.core.errors import InvalidRequest, NotFound
from chatgate.core.events import Message
from chatgate.core.sizes import check_sizes
from chatgate.transports.account_schemas import Incoming
from chatgate.transports.http_common import StrictRoute, authenticate, services_of

router = APIRouter(prefix="/v1/conversations", tags=["OpenAI-compatible"], route_class=StrictRoute)
Caller = Annotated[Principal, Depends(authenticate)]
ITEM_PREFIX = "msg_"
MAX_ITEMS = 20
_INCOMPLETE = frozenset(("length", "cancelled", "error", "content_filter"))

Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
    Field(max_length=16, description="chatgate keeps `title`, the conversation's title"),
]


# ---- wire models ------------------------------------------------------------------------------


class TextPartIn(Incoming):
    type: Literal["input_text", "output_text", "text"]
    text: str


class MessageItemIn(Incoming):
    """A message to add; other item types are not kept in a conversation."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[TextPartIn]


class ConversationCreate(Incoming):
    metadata: Metadata | None = None
    items: list[MessageItemIn] | None = Field(default=None, max_length=MAX_ITEMS)


class ConversationUpdate(Incoming):
    metadata: Metadata


class ConversationItemsCreate(Incoming):
    items: list[MessageItemIn] = Field(max_length=MAX_ITEMS)


class OpenAIConversation(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    metadata: dict[str, str]
    created_at: int


class OpenAIConversationDeleted(BaseModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool


class TextPartOut(BaseModel):
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list[Any] | None = Field(default=None, description="output_text only")
    logprobs: list[Any] | None = Field(default=None, description="output_text only")


class MessageItemOut(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["completed", "incomplete"]
    role: str
    content: list[TextPartOut]


class MessageItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[MessageItemOut]
    first_id: str
    last_id: str
    has_more: bool


# ---- rendering and reading --------------------------------------------------------------------


def conversation_out(c: ConversationSummary) -> dict[str, Any]:
    metadata = {"title": c.title} if c.title else {}
    return {
        "id": c.id,
        "object": "conversation",
        "metadata": metadata,
        "created_at": int(c.created_at),
    }


def item_out(m: MessageView) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "input_text", "text": m.content}
    if m.role == "assistant":
        part = {"type": "output_text", "text": m.content, "annotations": [], "logprobs": []}
    status = "incomplete" if m.finish_reason in _INCOMPLETE else "completed"
    return {
        "type": "message",
        "id": ITEM_PREFIX + m.id,
        "status": status,
        "role": m.role,
        "content": [part],
    }


def item_list(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    first = items[0]["id"] if items else ""
    last = items[-1]["id"] if items else ""
    return {
        "object": "list",
        "data": items,
        "first_id": first,
        "last_id": last,
        "has_more": has_more,
    }


def message_id(item_id: str) -> str:
    return item_id.removeprefix(ITEM_PREFIX)


def title_of(metadata: dict[str, str] | None) -> str | None:
    """The title a metadata holds; keys chatgate cannot keep are refused, not lost."""
    metadata = metadata or {}
    unknown = sorted(set(metadata) - {"title"})
    if unknown:
        raise InvalidRequest(
            f"A conversation's metadata holds only `title`; not {', '.join(unknown)}.",
            param="metadata",
        )
    return metadata.get("title")


def stored(items: list[MessageItemIn], request: Request) -> list[Message]:
    """Items as the messages chatgate keeps (a developer message is a system one)."""
    settings = services_of(request).settings
    messages: list[Message] = []
    for item in items:
        if isinstance(item.content, str):
            text = item.content
        else:
            text = "".join(part.text for part in item.content)
        role = "system" if item.role == "developer" else item.role
        if role == "system":
            check_sizes(settings, system=text)
        else:
            check_sizes(settings, content=text)
        messages.append({"role": role, "content": text})
    return messages


async def path_items(
    conversations: ConversationService, caller: Principal, conversation_id: str
) -> list[MessageView]:
    return (await conversations.tree(caller, conversation_id)).path_messages()


# ---- conversations ----------------------------------------------------------------------------


@router.post("", response_model=OpenAIConversation, summary="Create a conversation")
async def create_conversation(
    body: ConversationCreate, request: Request, caller: Caller
) -> dict[str, Any]:
    title = title_of(body.metadata)
    messages = stored(body.items or [], request)
    conversations = services_of(request).conversations
    state = await conversations.create(caller, title=title)
    if messages:
        await conversations.append(caller, state.id, messages)
    return conversation_out(await conversations.summary(caller, state.id))


@router.get("/{conversation_id}", response_model=OpenAIConversation, summary="A conversation")
async def get_conversation(
    conversation_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    return conversation_out(
        await services_of(request).conversations.summary(caller, conversation_id)
    )


@router.post("/{conversation_id}", response_model=OpenAIConversation, summary="Change its metadata")
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, request: Request, caller: Caller
) -> dict[str, Any]:
    """The metadata is replaced: without a `title` the conversation has none."""
    title = title_of(body.metadata) or ""
    conversations = services_of(request).conversations
    await conversations.change(caller, conversation_id, title=title)
    return conversation_out(await conversations.summary(caller, conversation_id))


@router.delete("/{conversation_id}", response_model=OpenAIConversationDeleted, summary="Delete it")
async def delete_conversation(
    conversation_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    await services_of(request).conversations.delete(caller, conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


# ---- items --------------------------------------------------------------------------------------


@router.get(
    "/{conversation_id}/items",
    response_model=MessageItemList,
    response_model_exclude_none=True,
    summary="The current path's items",
)
async def list_items(
    conversation_id: str,
    request: Request,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query(max_length=200, description="an item id")] = None,
) -> dict[str, Any]:
    """The messages from the root to the current leaf, newest first unless `order=asc`."""
    conversations = services_of(request).conversations
    items = [item_out(m) for m in await path_items(conversations, caller, conversation_id)]
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise NotFound(f"No item with id {after!r} in this conversation.", param="after")
        items = items[ids.index(after) + 1 :]
    return item_list(items[:limit], len(items) > limit)


@router.post(
    "/{conversation_id}/items",
    response_model=MessageItemList,
    response_model_exclude_none=True,
    summary="Add items to it",
)
async def add_items(
    conversation_id: str, body: ConversationItemsCreate, request: Request, caller: Caller
) -> dict[str, Any]:
    """Messages stored after the current leaf, in order; no reply is asked for."""
    messages = stored(body.items, request)
    conversations = services_of(request).conversations
    ids = set(await conversations.append(caller, conversation_id, messages))
    path = await path_items(conversations, caller, conversation_id)
    return item_list([item_out(m) for m in path if m.id in ids], False)


@router.get(
    "/{conversation_id}/items/{item_id}",
    response_model=MessageItemOut,
    response_model_exclude_none=True,
    summary="One item",
)
async def get_item(
    conversation_id: str, item_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    tree = await services_of(request).conversations.tree(caller, conversation_id)
    wanted = message_id(item_id)
    for message in tree.messages:
        if message.id == wanted:
            return item_out(message)
    raise NotFound(f"No item with id {item_id!r} in this conversation.", param="item_id")


@router.delete(
    "/{conversation_id}/items/{item_id}",
    response_model=OpenAIConversation,
    summary="Delete one item",
)
async def delete_item(
    conversation_id: str, item_id: str, request: Request, caller: Caller
) -> dict[str, Any]:
    """Its replies and follow-ups stay, under the item's parent; the conversation is answered."""
    conversations = services_of(request).conversations
    await conversations.remove_message(caller, conversation_id, message_id(item_id))
    return conversation_out(await conversations.summary(caller, conversation_id))
