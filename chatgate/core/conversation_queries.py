"""Reading conversations back: pages of summaries (newest first, optionally searched) and whole
trees. Search uses the database's own full-text index (SQLite FTS5, PostgreSQL tsvector).

Pages are keyset-paginated on ``(updated_at, id)``: the cursor names the last row seen, so a page
costs the same however deep it is and rows do not shift when new conversations arrive.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, or_, select, text

from chatgate.core.errors import InvalidRequest
from chatgate.store.db import Database
from chatgate.store.tables import Conversation, StoredMessage

MAX_PAGE = 200
_TERM = re.compile(r"\w+", re.UNICODE)


@dataclass(slots=True)
class MessageView:
    id: str
    parent_id: str | None
    role: str
    content: str
    model: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    created_at: float


@dataclass(slots=True)
class ConversationSummary:
    id: str
    user_id: int
    title: str | None
    model: str | None
    system_prompt: str | None
    current_leaf_id: str | None
    created_at: float
    updated_at: float
    external_id: str | None = None


@dataclass(slots=True)
class ConversationTree:
    """All messages with their parents, and the ids of the current path (root first)."""

    conversation: ConversationSummary
    messages: list[MessageView]
    current_path: list[str] = field(default_factory=list)

    def path_messages(self) -> list[MessageView]:
        by_id = {m.id: m for m in self.messages}
        return [by_id[i] for i in self.current_path]


@dataclass(slots=True)
class Page:
    items: list[ConversationSummary]
    next_cursor: str | None


def summary(conv: Conversation) -> ConversationSummary:
    return ConversationSummary(
        conv.id,
        conv.user_id,
        conv.title,
        conv.model,
        conv.system_prompt,
        conv.current_leaf_id,
        conv.created_at,
        conv.updated_at,
        conv.external_id,
    )


def message_view(m: StoredMessage) -> MessageView:
    return MessageView(
        m.id,
        m.parent_id,
        m.role,
        m.content,
        m.model,
        m.finish_reason,
        m.prompt_tokens,
        m.completion_tokens,
        m.created_at,
    )


def encode_cursor(conv: ConversationSummary) -> str:
    raw = f"{conv.updated_at!r}|{conv.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, conv_id = raw.partition("|")
        return float(stamp), conv_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            "That cursor is not one this service gave out.", param="cursor"
        ) from None


def fts_query(query: str) -> str | None:
    """A user's words as an FTS5 query: every word must occur, the last one as a prefix.

    Words are quoted, so nothing the user types is read as FTS syntax.
    """
    terms = _TERM.findall(query)
    if not terms:
        return None
    quoted = [f'"{t}"' for t in terms]
    quoted[-1] += "*"
    return " ".join(quoted)


def _search_filter(db: Database, query: str) -> ColumnElement[bool] | None:
    if db.is_sqlite:
        match = fts_query(query)
        if match is None:
            return None
        in_messages = text(
            "SELECT m.conversation_id FROM messages_fts JOIN messages AS m "
            "ON m.rowid = messages_fts.rowid WHERE messages_fts MATCH :q"
        ).bindparams(q=match)
        in_titles = text(
            "SELECT c.id FROM conversations_fts JOIN conversations AS c "
            "ON c.rowid = conversations_fts.rowid WHERE conversations_fts MATCH :q"
        ).bindparams(q=match)
    else:
        if not _TERM.search(query):
            return None
        in_messages = text(
            "SELECT conversation_id FROM messages WHERE search @@ plainto_tsquery('simple', :q)"
        ).bindparams(q=query)
        in_titles = text(
            "SELECT id FROM conversations WHERE search @@ plainto_tsquery('simple', :q)"
        ).bindparams(q=query)
    return or_(
        Conversation.id.in_(in_messages.columns(Conversation.id)),
        Conversation.id.in_(in_titles.columns(Conversation.id)),
    )


async def list_page(
    db: Database,
    *,
    user_id: int | None,
    limit: int = 20,
    cursor: str | None = None,
    query: str | None = None,
) -> Page:
    """A page of conversations, newest first; ``user_id`` None lists everyone's."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit is between 1 and {MAX_PAGE}.", param="limit")
    stmt = select(Conversation)
    if user_id is not None:
        stmt = stmt.where(Conversation.user_id == user_id)
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                Conversation.updated_at < stamp,
                and_(Conversation.updated_at == stamp, Conversation.id < last_id),
            )
        )
    if query and query.strip():
        found = _search_filter(db, query)
        if found is None:
            return Page([], None)
        stmt = stmt.where(found)
    stmt = stmt.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1)
    async with db.session() as session:
        rows = [summary(c) for c in (await session.scalars(stmt)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


async def ids_starting_with(
    db: Database, prefix: str, user_id: int | None = None, limit: int = 10
) -> list[str]:
    """Ids of conversations that start with ``prefix`` (of one user's, when given), in order,
    at most ``limit``; an exact match alone when there is one."""
    where = [Conversation.id.startswith(prefix, autoescape=True)]
    if user_id is not None:
        where.append(Conversation.user_id == user_id)
    async with db.session() as session:
        found = (
            await session.scalars(
                select(Conversation.id).where(*where).order_by(Conversation.id).limit(limit)
            )
        ).all()
    return [prefix] if prefix in found else list(found)


async def load_tree(db: Database, conversation_id: str) -> ConversationTree | None:
    async with db.session() as session:
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            return None
        messages = (
            await session.scalars(
                select(StoredMessage)
                .where(StoredMessage.conversation_id == conversation_id)
                .order_by(StoredMessage.created_at, StoredMessage.id)
            )
        ).all()
    views = [message_view(m) for m in messages]
    return ConversationTree(summary(conv), views, path_to(views, conv.current_leaf_id))


def path_to(messages: list[MessageView], leaf_id: str | None) -> list[str]:
    """Ids from the root to ``leaf_id``."""
    parents = {m.id: m.parent_id for m in messages}
    path: list[str] = []
    seen: set[str] = set()
    current = leaf_id
    while current is not None and current in parents and current not in seen:
        seen.add(current)
        path.append(current)
        current = parents[current]
    path.reverse()
    return path
