"""Conversations as trees of messages, and the hook that puts every chat exchange into one.

A message's ``parent_id`` places it; a second child of the same parent is a branch; the
conversation remembers its current leaf. A reply sees the path from the root to its parent.

The hot path (``begin``/``finish``) never waits on the database when it can help it: paths of
recently used conversations are kept in memory (a message's path never changes once written, so
the cache cannot go wrong about it) and every write goes through the write-behind ``BatchWriter``.
``finish`` runs in the ``finally`` of a stream that may be cancelled, so it only enqueues.

That holds for a process that serves its conversations alone (SQLite without Redis). When others
may serve them too (PostgreSQL, or Redis configured: several instances or ``serve --workers``),
the user may send one turn to instance A, the next to B and the one after to A again, and each
must follow the reply before it. A's cache cannot learn of B's turn by being told: a message
(Redis pub/sub, ``NOTIFY``) arrives some time after B answered, and a client that asks A at once
would branch from A's old current message. So the cache is *checked* instead, and the check is
exact because of two rules:

1. A turn's writes are in the database before its end is told (``written``, awaited by the
   core before ``Done`` or the error that ends the exchange; ``append`` likewise before it
   returns). So whatever a client has seen answered anywhere, every process can read.
2. Each use of a cached conversation (``state``) reads one row first: the conversation's own
   columns (current message, system prompt, model, title, settings), how many messages it has,
   and the count of recorded changes (``core.changes.number``). Messages are never edited and
   their ids never come back; they are only added (which raises the number of messages) or taken
   out (``delete_branch``, ``remove_message``, which record a change in their own transaction,
   raising the count). So the same count of changes and the same number of messages mean the
   cached messages are exactly the stored ones, and the columns are taken as they are. Otherwise
   the ids are read and only the messages not cached are fetched (their tokens counted once).
   The process's own writes still waiting in the writer are flushed first (the writer's tickets
   say whether any are), so the database is the whole truth when it is compared.

The price, only where others may share the conversations: one small read per use of a
conversation, and a turn that waits for its writes (one transaction) before its end is told.
A client that walks away from a reply cannot know when its server noticed, so that reply is
still written behind. A database that cannot be reached is not compared with: the cache answers,
as it does for one process (nobody can write meanwhile, but what another instance wrote just
before is not seen until the database is back).

Dropping a conversation from the other processes' caches when it changes was considered and not
done: it cannot close the window before the message arrives, which the check closes anyway, and
a dropped conversation is read again whole where the check fetches only the new messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.accounts import Principal
from chatgate.core.changes import Change, number
from chatgate.core.chat import Turn
from chatgate.core.clock import Clock
from chatgate.core.context import TokenCounter, fit, reply_reserve
from chatgate.core.conversation_queries import (
    ConversationSummary,
    ConversationTree,
    Page,
    list_page,
    load_tree,
)
from chatgate.core.errors import InvalidRequest, NotFound, PermissionDenied
from chatgate.core.events import ChatRequest, Message, Usage
from chatgate.core.exports import (
    ImportResult,
    export_from_bytes,
    parse_chatgpt,
    read_export,
    store_imports,
    to_json,
    to_markdown,
)
from chatgate.core.ids import new_id
from chatgate.core.titles import ask_title, fallback_title
from chatgate.core.tokens import PER_MESSAGE_OVERHEAD, message_text
from chatgate.providers.router import ModelRegistry, ModelRoute
from chatgate.settings import Settings
from chatgate.store.db import Database
from chatgate.store.tables import ChangeCount, Conversation, StoredMessage
from chatgate.store.writer import Amendable, BatchWriter, describe, unreachable

log = logging.getLogger("chatgate.conversations")

NEW = "new"
CONTEXT_ROLES = frozenset(("user", "assistant", "system"))
_SYSTEM_ROLES = frozenset(("system", "developer"))
# What a conversation may keep of its own for its replies (None clears one).
REPLY_SETTINGS = frozenset(("model", "temperature", "max_tokens"))
FETCH = 500  # messages fetched by id at once (SQLite takes a bounded number of parameters)

_CHANGES = select(ChangeCount.seq).where(ChangeCount.id == 1).scalar_subquery()
# What says whether a cached conversation is still the stored one (see the module's docstring):
# built once, so that each check costs one round trip and no compiling.
_VERSION = select(
    Conversation.title,
    Conversation.system_prompt,
    Conversation.model,
    Conversation.current_leaf_id,
    Conversation.temperature,
    Conversation.max_tokens,
    select(func.count())
    .select_from(StoredMessage)
    .where(StoredMessage.conversation_id == bindparam("id"))
    .scalar_subquery()
    .label("messages"),
    _CHANGES.label("changes"),
).where(Conversation.id == bindparam("id"))


@dataclass(slots=True)
class Node:
    """What the context needs of a stored message; ``tokens`` is counted once."""

    id: str
    parent_id: str | None
    role: str
    content: str
    tokens: int


@dataclass(slots=True)
class ConversationState:
    """A conversation as the hot path knows it: owner, prompt, leaf and its messages."""

    id: str
    user_id: int
    title: str | None
    system_prompt: str | None
    model: str | None
    leaf_id: str | None
    nodes: dict[str, Node] = field(default_factory=dict)
    deleted: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    changes: int | None = None
    """The count of recorded changes when ``nodes`` were last read whole (None: never)."""
    ticket: int = 0
    """The writer's ticket of this process's newest write to the conversation."""

    def path(self, leaf_id: str | None) -> list[Node]:
        """Messages from the root to ``leaf_id``, in order."""
        out: list[Node] = []
        seen: set[str] = set()
        current = leaf_id
        while current is not None and current not in seen:
            node = self.nodes.get(current)
            if node is None:
                break
            seen.add(current)
            out.append(node)
            current = node.parent_id
        out.reverse()
        return out


@dataclass(slots=True)
class ContextEntry:
    """One message of the path, its size as the fitting counts it, and whether it goes."""

    id: str
    role: str
    tokens: int
    included: bool


@dataclass(slots=True)
class ContextPreview:
    """Which messages of a path the next question would be sent with, and the sums behind it."""

    conversation_id: str
    leaf_id: str | None
    model: str
    context_window: int
    reply_reserve: int
    system_tokens: int
    entries: list[ContextEntry]
    exact: bool
    max_history_turns: int | None

    @property
    def budget(self) -> int:
        return self.context_window - self.reply_reserve

    @property
    def tokens_sent(self) -> int:
        return self.system_tokens + sum(e.tokens for e in self.entries if e.included)


@dataclass(slots=True)
class StoredTurn:
    """One exchange placed in a conversation (implements ``core.chat.Turn``)."""

    conversation_id: str
    user_message_id: str | None
    reply_id: str
    messages: list[Message]
    state: ConversationState
    route: ModelRoute
    question: str
    auto_title: str | None
    """The stand-in title this exchange gave the conversation, for the model's to replace."""
    leaf_write: Amendable
    """The write that made the question the current message, for the reply to take over."""
    continued: Node | None = None
    """The reply cut at the token limit this exchange goes on with (``ContinueRequest``): the
    stored reply is its text followed by this exchange's."""


@dataclass(slots=True)
class ContinueRequest(ChatRequest):
    """Go on with the reply ``continue_id``, which ended with ``finish_reason`` ``length``.

    The upstream gets the path up to and including that reply as its last message (as OpenAI-
    compatible servers continue a final assistant message), and the continued reply is kept as
    a new sibling holding the old text and the new: messages are never changed in place (the
    module's docstring relies on it). A class of its own, so ordinary turns pay nothing for it.
    """

    continue_id: str = ""


class ConversationService:
    def __init__(
        self,
        db: Database,
        writer: BatchWriter,
        models: ModelRegistry,
        settings: Settings,
        clock: Clock,
        counter: TokenCounter | None = None,
    ) -> None:
        self.db = db
        self.writer = writer
        self.models = models
        self.settings = settings
        self.clock = clock
        self.counter = counter or TokenCounter()
        self._cache: OrderedDict[str, ConversationState] = OrderedDict()
        self._cache_size = settings.conversation_cache_size
        self._tasks: set[asyncio.Task[None]] = set()
        self.shared = not db.is_sqlite or bool(settings.redis_url)
        """Other processes may serve the same conversations: the cache is checked at each use
        and a turn is written before its end is told (the module's docstring says why)."""
        self.written: Callable[[Turn], Awaitable[None]] | None = (
            self._written if self.shared else None
        )
        """For the core to await before it tells an exchange's end; None for a process alone."""
        self._check_failing = False

    async def close(self) -> None:
        """Stop pending title requests; their conversations keep the fallback title."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---- the cache ------------------------------------------------------------------------------

    def _remember(self, state: ConversationState) -> None:
        if self._cache_size <= 0:
            return
        self._cache[state.id] = state
        self._cache.move_to_end(state.id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self, conversation_id: str) -> None:
        self._cache.pop(conversation_id, None)

    async def state(self, conversation_id: str) -> ConversationState | None:
        state = self._cache.get(conversation_id)
        if state is not None:
            self._cache.move_to_end(conversation_id)
            if self.shared:
                return await self._checked(state)
            return state
        await self.writer.flush()
        async with self.db.session() as session:
            conv = await session.get(Conversation, conversation_id)
            if conv is None:
                return None
            # Read before the messages: a removal after this moves it, and is then seen.
            changes = await session.scalar(select(_CHANGES)) if self.shared else None
            rows = await session.execute(
                select(
                    StoredMessage.id,
                    StoredMessage.parent_id,
                    StoredMessage.role,
                    StoredMessage.content,
                )
                .where(StoredMessage.conversation_id == conversation_id)
                .order_by(StoredMessage.created_at)
            )
            nodes = {
                r.id: Node(r.id, r.parent_id, r.role, r.content, self.counter.text(r.content))
                for r in rows
            }
        state = ConversationState(
            conv.id,
            conv.user_id,
            conv.title,
            conv.system_prompt,
            conv.model,
            conv.current_leaf_id,
            nodes,
            temperature=conv.temperature,
            max_tokens=conv.max_tokens,
            changes=changes,
        )
        self._remember(state)
        return state

    async def _checked(self, state: ConversationState) -> ConversationState | None:
        """The cached ``state``, made the stored one if another process changed it (one read
        when none did); None when it is gone. Only where others may share conversations."""
        try:
            if state.ticket > self.writer.settled:
                await self.writer.flush()  # this process's own writes, so the database is whole
            async with self.db.session() as session:
                row = (await session.execute(_VERSION, {"id": state.id})).one_or_none()
                if row is None:  # deleted through another process
                    state.deleted = True
                    self.forget(state.id)
                    return None
                state.title, state.system_prompt = row.title, row.system_prompt
                state.model, state.leaf_id = row.model, row.current_leaf_id
                state.temperature, state.max_tokens = row.temperature, row.max_tokens
                if row.changes != state.changes or row.messages != len(state.nodes):
                    await self._catch_up(session, state, row.changes)
        except Exception as exc:
            if not unreachable(exc):
                raise
            if not self._check_failing:
                log.warning(
                    "cannot check cached conversations with the database (%s)", describe(exc)
                )
            self._check_failing = True
            return state
        if self._check_failing:
            log.info("cached conversations are checked with the database again")
            self._check_failing = False
        return state

    async def _catch_up(
        self, session: AsyncSession, state: ConversationState, changes: int | None
    ) -> None:
        """Make ``state.nodes`` the stored messages: their ids and parents are read, and only
        the messages not cached are fetched whole. ``changes`` was read before this reading."""
        rows = (
            await session.execute(
                select(StoredMessage.id, StoredMessage.parent_id)
                .where(StoredMessage.conversation_id == state.id)
                .order_by(StoredMessage.created_at)
            )
        ).all()
        known = state.nodes
        missing = [r.id for r in rows if r.id not in known]
        fetched: dict[str, Node] = {}
        for start in range(0, len(missing), FETCH):
            found = await session.execute(
                select(StoredMessage.id, StoredMessage.role, StoredMessage.content).where(
                    StoredMessage.id.in_(missing[start : start + FETCH])
                )
            )
            for m in found:
                fetched[m.id] = Node(m.id, None, m.role, m.content, self.counter.text(m.content))
        nodes: dict[str, Node] = {}
        for r in rows:
            node = known.get(r.id) or fetched.get(r.id)
            if node is not None:  # else taken out between the two readings: the count moved
                node.parent_id = r.parent_id  # a removed message's children take its parent
                nodes[r.id] = node
        state.nodes = nodes
        state.changes = changes

    async def owned(
        self, principal: Principal, conversation_id: str, *, write: bool
    ) -> ConversationState:
        """The conversation if ``principal`` may use it; others learn nothing of it (404).

        An administrator may read anyone's conversation but not add to or delete it.
        """
        state = await self.state(conversation_id)
        if state is None or state.deleted:
            raise NotFound(f"No conversation with id {conversation_id!r}.", param="conversation_id")
        if state.user_id != principal.user_id:
            if not principal.is_admin:
                raise NotFound(
                    f"No conversation with id {conversation_id!r}.", param="conversation_id"
                )
            if write:
                raise PermissionDenied(
                    "An administrator may read this conversation, not change it."
                )
        return state

    # ---- the hook: one exchange ---------------------------------------------------------------

    async def begin(
        self, principal: Principal, request: ChatRequest, route: ModelRoute
    ) -> StoredTurn | None:
        """Store the question and return the context to send, or None outside conversations."""
        if request.conversation_id is None:
            return None
        if request.kind != "chat":
            raise InvalidRequest(
                "conversation_id works with chat requests only.", param="conversation_id"
            )
        system_parts = [message_text(m) for m in request.messages if m.get("role") in _SYSTEM_ROLES]
        new = [m for m in request.messages if m.get("role") not in _SYSTEM_ROLES]
        system = request.system or ("\n\n".join(system_parts) if system_parts else None)
        if not new and not request.regenerate:
            if isinstance(request, ContinueRequest):
                return await self._continue(principal, request, route)
            raise InvalidRequest("There is no message to send.", param="messages")
        if request.conversation_id == NEW:
            if request.regenerate:
                raise InvalidRequest("A new conversation has nothing to regenerate.")
            (state, started), parent_id = self._start(principal, system, route.name, new), None
        else:
            state = await self.owned(principal, request.conversation_id, write=True)
            parent_id, started = self._parent_for(state, request), None
        if request.regenerate:
            parent_id, new = self._regenerate_anchor(state, parent_id), []
        auto_title = state.title if request.conversation_id == NEW else None
        if state.title is None and new:
            auto_title = fallback_title(message_text(new[-1]))
            self._retitle(state, auto_title)
        history = [n for n in state.path(parent_id) if n.role in CONTEXT_ROLES]
        now = self.clock.now()
        last = parent_id
        for message in new:
            last = self._add(state, last, message, now)
        if last is None:
            raise InvalidRequest("There is no message to answer.", param="parent_id")
        state.leaf_id = last
        # The question is the current message from now on: a crash before the reply leaves
        # the conversation there, ready to be answered again.
        leaf = {"current_leaf_id": last, "updated_at": now, "model": route.name}
        if started is not None:
            started.amend(leaf)
            leaf_write = started
        else:
            leaf_write = self.writer.update_amendable(Conversation, {"id": state.id}, leaf)
        state.ticket = self.writer.enqueued
        if request.regenerate:
            history, new = history[:-1], [{"role": "user", "content": history[-1].content}]
        messages = self._context(system or state.system_prompt, history, new, route, request.params)
        question = message_text(new[-1]) if new else ""
        return StoredTurn(
            state.id,
            last,
            request.reply_id or new_id(),
            messages,
            state,
            route,
            question,
            auto_title,
            leaf_write,
        )

    def finish(self, turn: Turn, text: str, finish_reason: str, usage: Usage, model: str) -> None:
        """Keep the reply, whole or partial, and move the leaf. Never awaits.

        ``finish_reason`` is the upstream's own, ``cancelled`` when the client went away and
        ``error`` when the upstream broke off. When nothing at all was received no empty reply
        is stored: the question stays the leaf, ready to be answered again.
        """
        assert isinstance(turn, StoredTurn)
        state = turn.state
        if state.deleted:
            return
        now = self.clock.now()
        leaf = turn.user_message_id
        if text or finish_reason not in ("cancelled", "error"):
            tokens, continued = usage.completion_tokens, turn.continued
            if continued is not None:
                text, tokens = continued.content + text, continued.tokens + tokens
            node = Node(turn.reply_id, leaf, "assistant", text, tokens)
            state.nodes[node.id] = node
            self.writer.insert(
                StoredMessage,
                {
                    "id": node.id,
                    "conversation_id": state.id,
                    "parent_id": leaf,
                    "role": "assistant",
                    "content": text,
                    "model": model,
                    "finish_reason": finish_reason,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "created_at": now,
                },
            )
            leaf = node.id
            if turn.auto_title is not None and text:
                self._title_later(turn)
        elif turn.continued is not None:  # nothing came: the cut reply stays the current one
            leaf = turn.continued.id
        state.leaf_id, state.model = leaf, model
        turn.leaf_write.amend({"current_leaf_id": leaf, "updated_at": now, "model": model})
        state.ticket = self.writer.enqueued

    async def _continue(
        self, principal: Principal, request: ContinueRequest, route: ModelRoute
    ) -> StoredTurn:
        """``begin`` for a ``ContinueRequest``: the cut reply stays the current message until
        the continued one is stored, and the context ends with the cut reply itself."""
        if request.conversation_id == NEW:
            raise InvalidRequest("A new conversation has nothing to continue.", param="continue")
        assert request.conversation_id is not None
        state = await self.owned(principal, request.conversation_id, write=True)
        cut = state.nodes.get(request.continue_id)
        if cut is None or cut.role != "assistant":
            raise InvalidRequest(
                f"No reply with id {request.continue_id!r} in this conversation to continue.",
                param="continue",
            )
        if await self._finish_reason(state, cut.id) != "length":
            raise InvalidRequest(
                "Only a reply cut at the token limit (finish_reason length) can be continued.",
                param="continue",
            )
        history = [n for n in state.path(cut.id) if n.role in CONTEXT_ROLES][:-1]
        now = self.clock.now()
        state.leaf_id = cut.id
        leaf = {"current_leaf_id": cut.id, "updated_at": now, "model": route.name}
        leaf_write = self.writer.update_amendable(Conversation, {"id": state.id}, leaf)
        state.ticket = self.writer.enqueued
        last: list[Message] = [{"role": "assistant", "content": cut.content}]
        system = request.system or state.system_prompt
        messages = self._context(system, history, last, route, request.params)
        return StoredTurn(
            state.id,
            cut.parent_id,
            request.reply_id or new_id(),
            messages,
            state,
            route,
            "",
            None,
            leaf_write,
            cut,
        )

    async def _finish_reason(self, state: ConversationState, message_id: str) -> str | None:
        """How the stored message ``message_id`` ended (its writes awaited first)."""
        await self._write_now(state)
        async with self.db.session() as session:
            return await session.scalar(
                select(StoredMessage.finish_reason).where(StoredMessage.id == message_id)
            )

    async def _written(self, turn: Turn) -> None:
        """``written``, where others may share conversations: the client may ask another
        process for the conversation the moment it learns the reply is over."""
        assert isinstance(turn, StoredTurn)
        await self._write_now(turn.state)

    async def _write_now(self, state: ConversationState) -> None:
        """Wait until this process's writes to ``state`` are in the database (at once when the
        writer has written them already). A database that cannot be reached keeps them waiting
        in the writer, as without this: the answer is not refused for it."""
        if state.ticket <= self.writer.settled:
            return
        try:
            await self.writer.flush()
        except Exception as exc:
            log.warning(
                "conversation %s is answered before it is written (%s)", state.id, describe(exc)
            )

    def _start(
        self, principal: Principal, system: str | None, model: str, new: list[Message]
    ) -> tuple[ConversationState, Amendable]:
        """A new conversation, and its row's write, which its first question completes."""
        question = next((message_text(m) for m in new if m.get("role") == "user"), "")
        state = ConversationState(
            new_id(), principal.user_id, fallback_title(question), system, model, None
        )
        now = self.clock.now()
        written = self.writer.insert_amendable(
            Conversation,
            {
                "id": state.id,
                "user_id": state.user_id,
                "title": state.title,
                "system_prompt": system,
                "model": model,
                "current_leaf_id": None,
                "external_id": None,
                "created_at": now,
                "updated_at": now,
            },
            key=("id",),
        )
        state.ticket = self.writer.enqueued
        self._remember(state)
        return state, written

    def _parent_for(self, state: ConversationState, request: ChatRequest) -> str | None:
        if request.edit_id is not None:
            edited = state.nodes.get(request.edit_id)
            if edited is None or edited.role != "user":
                raise NotFound("No user message with that id in this conversation.", param="id")
            return edited.parent_id
        if request.parent_id is None:
            return state.leaf_id
        if request.parent_id not in state.nodes:
            raise NotFound(
                f"No message with id {request.parent_id!r} in this conversation.",
                param="parent_id",
            )
        return request.parent_id

    def _regenerate_anchor(self, state: ConversationState, parent_id: str | None) -> str:
        """The user message a regenerated reply answers: the parent itself, or its parent."""
        node = state.nodes.get(parent_id) if parent_id is not None else None
        if node is not None and node.role == "assistant":
            node = state.nodes.get(node.parent_id) if node.parent_id is not None else None
        if node is None or node.role != "user":
            raise InvalidRequest("There is no question to answer again.", param="parent_id")
        return node.id

    def _add(
        self, state: ConversationState, parent: str | None, message: Message, now: float
    ) -> str:
        content = message_text(message)
        node = Node(new_id(), parent, str(message.get("role")), content, self.counter.text(content))
        state.nodes[node.id] = node
        self.writer.insert(
            StoredMessage,
            {
                "id": node.id,
                "conversation_id": state.id,
                "parent_id": parent,
                "role": node.role,
                "content": content,
                "model": None,
                "finish_reason": None,
                "prompt_tokens": node.tokens,
                "completion_tokens": 0,
                "created_at": now,
            },
        )
        return node.id

    def window(self, route: ModelRoute) -> int:
        """The model's context window: its own when configured, else the default."""
        config = route.config
        if "context_window" in config.model_fields_set:
            return config.context_window
        return self.settings.default_context_window

    def _context(
        self,
        system: str | None,
        history: list[Node],
        new: list[Message],
        route: ModelRoute,
        params: dict[str, Any],
    ) -> list[Message]:
        window = self.window(route)
        head: list[Message] = [{"role": "system", "content": system}] if system else []
        count = self.counter.message
        fixed = sum(count(m) for m in head) + sum(count(m) for m in new)
        return fit(
            head,
            [{"role": n.role, "content": n.content} for n in history],
            new,
            budget=window - reply_reserve(params, window),
            sizes=[n.tokens + PER_MESSAGE_OVERHEAD for n in history],
            fixed=fixed,
            max_turns=self.settings.max_history_turns,
        )

    async def preview(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        leaf_id: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
    ) -> ContextPreview:
        """What the next question after ``leaf_id`` (default: the current leaf) would be sent
        with: the same fitting a reply uses, told message by message."""
        state = await self.owned(principal, conversation_id, write=False)
        leaf = leaf_id or state.leaf_id
        if leaf is not None and leaf not in state.nodes:
            raise NotFound(f"No message with id {leaf!r} in this conversation.", param="leaf_id")
        name = await self.model_for(principal, conversation_id, model)
        route = self.models.resolve(name, principal)
        params: dict[str, Any] = {}
        if (max_tokens or state.max_tokens) is not None:
            params["max_tokens"] = max_tokens or state.max_tokens
        history = [n for n in state.path(leaf) if n.role in CONTEXT_ROLES]
        sent = self._context(state.system_prompt, history, [], route, params)
        system = 1 if state.system_prompt else 0
        kept = len(history) - (len(sent) - system)  # fitting keeps the newest ones
        window = self.window(route)
        return ContextPreview(
            conversation_id=state.id,
            leaf_id=leaf,
            model=name,
            context_window=window,
            reply_reserve=reply_reserve(params, window),
            system_tokens=sum(self.counter.message(m) for m in sent[:system]),
            entries=[
                ContextEntry(n.id, n.role, _size(n), i >= kept) for i, n in enumerate(history)
            ],
            exact=self.counter.exact,
            max_history_turns=self.settings.max_history_turns,
        )

    def _retitle(self, state: ConversationState, title: str) -> None:
        state.title = title
        self.writer.update(Conversation, {"id": state.id}, {"title": title})
        state.ticket = self.writer.enqueued

    def _title_later(self, turn: StoredTurn) -> None:
        if not self.settings.conversation_titles or not turn.question:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._set_title(turn))
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_title(self, turn: StoredTurn) -> None:
        state, fallback = turn.state, turn.auto_title
        try:
            title = await ask_title(self.models, turn.route, turn.question)
        except Exception as exc:
            log.info("no title from the model for a conversation (%s)", exc)
            return
        if not title or fallback is None or state.deleted or state.title != fallback:
            return
        state.title = title
        self.writer.update(Conversation, {"id": state.id, "title": fallback}, {"title": title})
        state.ticket = self.writer.enqueued

    # ---- reading -------------------------------------------------------------------------------

    async def holding(self, principal: Principal, message_id: str) -> ConversationState:
        """The conversation that holds ``message_id``, if ``principal`` may read it (else 404).

        A reply is in its conversation's cached state before the stream that made it ends, and
        the database is read only after the pending writes are flushed, so a message is found
        the instant its reply is over.
        """
        found = next((s.id for s in self._cache.values() if message_id in s.nodes), None)
        if found is None:
            await self.writer.flush()
            async with self.db.session() as session:
                found = await session.scalar(
                    select(StoredMessage.conversation_id).where(StoredMessage.id == message_id)
                )
        if found is None:
            raise NotFound(f"No message with id {message_id!r}.", param="id")
        state = await self.owned(principal, found, write=False)
        if message_id not in state.nodes:
            raise NotFound(f"No message with id {message_id!r}.", param="id")
        return state

    async def stored_message(self, principal: Principal, message_id: str) -> StoredMessage:
        """One stored message with its model, finish reason and token counts, for its owner."""
        await self.holding(principal, message_id)
        await self.writer.flush()
        async with self.db.session() as session:
            row = await session.get(StoredMessage, message_id)
        if row is None:
            raise NotFound(f"No message with id {message_id!r}.", param="id")
        return row

    async def delete_branch(self, principal: Principal, message_id: str) -> None:
        """Remove ``message_id`` and every message after it; the leaf moves to its parent
        when it was in the removed branch."""
        state = await self.holding(principal, message_id)
        await self.owned(principal, state.id, write=True)
        doomed = {message_id}
        grew = True
        while grew:
            more = {n.id for n in state.nodes.values() if n.parent_id in doomed} - doomed
            doomed |= more
            grew = bool(more)
        parent = state.nodes[message_id].parent_id
        leaf = state.leaf_id
        await self.writer.flush()
        async with self.db.session() as session, session.begin():
            await session.execute(delete(StoredMessage).where(StoredMessage.id.in_(doomed)))
            if leaf in doomed:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == state.id)
                    .values(current_leaf_id=parent)
                )
            removal = await self._removing(session)
        for node_id in doomed:
            state.nodes.pop(node_id, None)
        if leaf in doomed:
            state.leaf_id = parent
        if removal is not None and state.changes == removal - 1:
            state.changes = removal  # nothing else was recorded meanwhile: still exact

    async def page(
        self,
        user_id: int | None,
        *,
        limit: int = 20,
        cursor: str | None = None,
        query: str | None = None,
        pinned: bool | None = None,
        pinned_first: bool = False,
    ) -> Page:
        """Conversations of ``user_id`` (everyone's when None), newest first, maybe searched;
        ``pinned`` keeps one kind, ``pinned_first`` lists pinned ones before the rest."""
        await self.writer.flush()
        return await list_page(
            self.db,
            user_id=user_id,
            limit=limit,
            cursor=cursor,
            query=query,
            pinned=pinned,
            pinned_first=pinned_first,
        )

    async def tree(self, principal: Principal, conversation_id: str) -> ConversationTree:
        """The whole conversation, for its owner or an administrator."""
        await self.owned(principal, conversation_id, write=False)
        await self.writer.flush()
        tree = await load_tree(self.db, conversation_id)
        if tree is None:
            raise NotFound(f"No conversation with id {conversation_id!r}.", param="conversation_id")
        return tree

    async def summary(self, principal: Principal, conversation_id: str) -> ConversationSummary:
        return (await self.tree(principal, conversation_id)).conversation

    async def params_for(
        self, principal: Principal, conversation_id: str, asked: dict[str, Any]
    ) -> dict[str, Any]:
        """The sampling parameters of a reply: those asked for, over the conversation's own."""
        if conversation_id == NEW:
            return asked
        state = await self.owned(principal, conversation_id, write=False)
        own = {"temperature": state.temperature, "max_tokens": state.max_tokens}
        if "max_completion_tokens" in asked:
            own.pop("max_tokens")
        return {**{k: v for k, v in own.items() if v is not None}, **asked}

    async def model_for(self, principal: Principal, conversation_id: str, asked: str | None) -> str:
        """The model to answer with: the one asked for, else the conversation's, else the first
        one the caller may use."""
        if asked:
            return asked
        if conversation_id != NEW:
            state = await self.owned(principal, conversation_id, write=False)
            if state.model:
                return state.model
        names = self.models.names(principal)
        if not names:
            raise NotFound("No model is available to you.", param="model")
        return names[0]

    async def export(self, principal: Principal, conversation_id: str, fmt: str) -> str:
        """The conversation as Markdown (``md``, the current path) or JSON (the whole tree)."""
        if fmt not in ("md", "json"):
            raise InvalidRequest("format is 'md' or 'json'.", param="format")
        tree = await self.tree(principal, conversation_id)
        if fmt == "md":
            return to_markdown(tree, self.clock.tz)
        return orjson.dumps(to_json(tree), option=orjson.OPT_INDENT_2).decode()

    async def import_chatgpt(self, user_id: int, path: Path) -> ImportResult:
        """Import a ChatGPT data export for ``user_id``; importing it again adds nothing."""
        items = [parse_chatgpt(c) for c in read_export(path)]
        return await store_imports(self.db, user_id, items, self.clock.now())

    async def import_upload(self, principal: Principal, raw: bytes, limit: int) -> ImportResult:
        """Import a ChatGPT export sent as bytes (its zip or its conversations.json) for the
        caller; ``limit`` bounds what a zip unpacks to, as the upload itself was bounded."""
        items = [parse_chatgpt(c) for c in export_from_bytes(raw, limit)]
        return await store_imports(self.db, principal.user_id, items, self.clock.now())

    # ---- changes made through the API ---------------------------------------------------------

    async def delete(self, principal: Principal, conversation_id: str) -> None:
        state = await self.owned(principal, conversation_id, write=True)
        state.deleted = True
        await self.writer.flush()
        async with self.db.session() as session, session.begin():
            await session.execute(
                delete(StoredMessage).where(StoredMessage.conversation_id == conversation_id)
            )
            await session.execute(delete(Conversation).where(Conversation.id == conversation_id))
        self.forget(conversation_id)

    async def change(
        self,
        principal: Principal,
        conversation_id: str,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        leaf_id: str | None = None,
        pinned: bool | None = None,
        reply_settings: dict[str, Any] | None = None,
    ) -> ConversationState:
        """Rename, change the system prompt, make another leaf current, pin or unpin, or change
        the conversation's own ``model``, ``temperature`` and ``max_tokens`` (given in
        ``reply_settings``; None clears one). None of these moves it in the newest-first list."""
        state = await self.owned(principal, conversation_id, write=True)
        values: dict[str, object] = {}
        if pinned is not None:
            values["pinned"] = pinned
        for name, value in (reply_settings or {}).items():
            if name not in REPLY_SETTINGS:
                raise InvalidRequest(f"A conversation keeps no {name!r}.", param=name)
            if name == "model" and value is not None:
                self.models.resolve(value, principal)  # one the caller may use, or 404
            values[name] = value
            setattr(state, name, value)
        if title is not None:
            values["title"] = state.title = title.strip()[:255] or None
        if system_prompt is not None:
            values["system_prompt"] = state.system_prompt = system_prompt or None
        if leaf_id is not None:
            if leaf_id not in state.nodes:
                raise NotFound(f"No message with id {leaf_id!r} in this conversation.", param="id")
            values["current_leaf_id"] = state.leaf_id = leaf_id
        if values:
            await self.writer.flush()
            async with self.db.session() as session, session.begin():
                await session.execute(
                    update(Conversation).where(Conversation.id == conversation_id).values(**values)
                )
        return state

    async def append(
        self, principal: Principal, conversation_id: str, messages: list[Message]
    ) -> list[str]:
        """Add ``messages`` after the current leaf, with no reply asked for; the last one
        becomes the leaf. Their ids, in order."""
        state = await self.owned(principal, conversation_id, write=True)
        now = self.clock.now()
        last, ids = state.leaf_id, []
        for message in messages:
            now = math.nextafter(now, math.inf)  # kept in order, however fast they come
            last = self._add(state, last, message, now)
            ids.append(last)
        if ids:
            state.leaf_id = last
            values: dict[str, object] = {"current_leaf_id": last, "updated_at": now}
            question = next((message_text(m) for m in messages if m.get("role") == "user"), "")
            if state.title is None and question:
                values["title"] = state.title = fallback_title(question)
            self.writer.update(Conversation, {"id": state.id}, values)
            state.ticket = self.writer.enqueued
            if self.shared:  # the caller may go on through another process at once
                await self._write_now(state)
        return ids

    async def remove_message(
        self, principal: Principal, conversation_id: str, message_id: str
    ) -> None:
        """Take one message out: its children take its parent, and a leaf it was moves up."""
        state = await self.owned(principal, conversation_id, write=True)
        node = state.nodes.get(message_id)
        if node is None:
            raise NotFound(f"No message with id {message_id!r} in this conversation.", param="id")
        await self.writer.flush()
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(StoredMessage)
                .where(
                    StoredMessage.conversation_id == conversation_id,
                    StoredMessage.parent_id == message_id,
                )
                .values(parent_id=node.parent_id)
            )
            await session.execute(delete(StoredMessage).where(StoredMessage.id == message_id))
            if state.leaf_id == message_id:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(current_leaf_id=node.parent_id, updated_at=self.clock.now())
                )
            await self._removing(session)
        self.forget(conversation_id)

    async def _removing(self, session: AsyncSession) -> int | None:
        """Record, in the transaction that takes messages out, that some were: the other
        processes' cached conversations see the count of changes move (the module's
        docstring says why a number of messages alone would not do). Its number, where
        others may share conversations."""
        if not self.shared:
            return None
        return await number(session, Change(), self.clock.now())

    async def create(
        self,
        principal: Principal,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ConversationState:
        """An empty conversation, to post a first message to later."""
        state = ConversationState(
            new_id(),
            principal.user_id,
            (title or "").strip()[:255] or None,
            system_prompt,
            model,
            None,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            session.add(
                Conversation(
                    id=state.id,
                    user_id=state.user_id,
                    title=state.title,
                    system_prompt=system_prompt,
                    model=model,
                    created_at=now,
                    updated_at=now,
                    temperature=temperature,
                    max_tokens=max_tokens,
                )
            )
        self._remember(state)
        return state


def _size(node: Node) -> int:
    """A stored message's tokens as the context fitting counts them (text plus overhead)."""
    return node.tokens + PER_MESSAGE_OVERHEAD
