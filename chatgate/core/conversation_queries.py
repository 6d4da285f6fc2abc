"""Reading conversations back: pages of summaries (newest first, optionally searched) and whole
trees. Search uses the database's own full-text index (SQLite FTS5, PostgreSQL tsvector).

Pages are keyset-paginated on ``(updated_at, id)`` (``(pinned, updated_at, id)`` when pinned
ones come first): the cursor names the last row seen, so a page costs the same however deep it is
and rows do not shift when new conversations arrive.

Chinese, Japanese and Korean are written without spaces, so a full-text tokenizer that splits on
them sees a whole sentence as one word and finds no word inside it. On SQLite a search term in
those scripts is therefore looked for as a substring of the user's own messages and titles (a
scan of one user's conversations, still in the database); other terms go through FTS5. On
PostgreSQL the index also holds each such run's pairs of characters (migration 0009): a term is
looked up by its pairs in the GIN index, and the rows found are checked for the exact text.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, TextClause, UnaryExpression, and_, or_, select, text

from chatgate.core.errors import InvalidRequest
from chatgate.store.db import Database
from chatgate.store.tables import Conversation, StoredMessage

MAX_PAGE = 200
_TERM = re.compile(r"\w+", re.UNICODE)
# Kana, CJK ideographs (with extensions and compatibility forms) and Hangul syllables.
_UNSPACED = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
)
_UNSPACED_RUN = re.compile(_UNSPACED.pattern + "+")


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
    pinned: bool = False
    temperature: float | None = None
    max_tokens: int | None = None


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
        bool(conv.pinned),
        conv.temperature,
        conv.max_tokens,
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


def encode_cursor(conv: ConversationSummary, *, pinned_first: bool = False) -> str:
    """The last row seen; with pinned ones first, whether it was pinned too (``p|``)."""
    raw = f"{conv.updated_at!r}|{conv.id}"
    if pinned_first:
        raw = f"{'p' if conv.pinned else 'u'}|{raw}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, pinned_first: bool = False) -> tuple[bool, float, str]:
    """``(pinned, updated_at, id)`` of the row a cursor names (pinned False without the flag)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        pinned = False
        if pinned_first:
            flag, _, raw = raw.partition("|")
            if flag not in ("p", "u"):
                raise ValueError(flag)
            pinned = flag == "p"
        stamp, _, conv_id = raw.partition("|")
        return pinned, float(stamp), conv_id
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


def unspaced_terms(query: str) -> tuple[list[str], str]:
    """The terms written in a script without spaces (looked for as substrings), and the rest of
    the query (for the full-text index)."""
    unspaced: list[str] = []
    rest: list[str] = []
    for term in _TERM.findall(query):
        (unspaced if _UNSPACED.search(term) else rest).append(term)
    return unspaced, " ".join(rest)


def ts_query(query: str) -> str | None:
    """A user's terms as a PostgreSQL ``tsquery`` over the index of migration 0009: every word
    must occur, the last one as a prefix (as FTS5 does on SQLite); a term in a script without
    spaces by its pairs of characters (one character alone as the prefix of a pair).

    Terms are runs of word characters, quoted, so nothing the user types is read as syntax."""
    unspaced, rest = unspaced_terms(query)
    lexemes = [f"'{word}'" for word in rest.split()]
    if lexemes:
        lexemes[-1] += ":*"
    for term in unspaced:
        for run in _UNSPACED_RUN.findall(term):
            pairs = [run[i : i + 2] for i in range(len(run) - 1)]
            lexemes.extend([f"'{pair}'" for pair in pairs] or [f"'{run}':*"])
    return " & ".join(lexemes) or None


def _search_filter(db: Database, query: str, user_id: int | None) -> ColumnElement[bool] | None:
    unspaced, rest = unspaced_terms(query)
    if not db.is_sqlite:
        found = ts_query(query)
        if found is None:
            return None
        messages = select(StoredMessage.conversation_id).where(
            text("messages.search @@ to_tsquery('simple', :q)").bindparams(q=found),
            *(StoredMessage.content.contains(t, autoescape=True) for t in unspaced),
        )
        titles = select(Conversation.id).where(
            text("conversations.search @@ to_tsquery('simple', :t)").bindparams(t=found),
            *(Conversation.title.contains(t, autoescape=True) for t in unspaced),
        )
        return or_(Conversation.id.in_(messages), Conversation.id.in_(titles))
    if unspaced:
        return _substring_filter(db, unspaced, rest, user_id)
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
    return or_(
        Conversation.id.in_(in_messages.columns(Conversation.id)),
        Conversation.id.in_(in_titles.columns(Conversation.id)),
    )


def _substring_filter(
    db: Database, unspaced: list[str], rest: str, user_id: int | None
) -> ColumnElement[bool]:
    """On SQLite, conversations with one message, or a title, holding every term: ``unspaced``
    ones as substrings, the ``rest`` through FTS5 (bound parameters throughout)."""
    in_messages = select(StoredMessage.conversation_id).where(
        *(StoredMessage.content.contains(t, autoescape=True) for t in unspaced)
    )
    title_terms: list[ColumnElement[bool] | TextClause] = [
        Conversation.title.contains(t, autoescape=True) for t in unspaced
    ]
    if user_id is not None:
        mine = select(Conversation.id).where(Conversation.user_id == user_id)
        in_messages = in_messages.where(StoredMessage.conversation_id.in_(mine))
    if rest:
        match = fts_query(rest)
        in_messages = in_messages.where(
            text(
                "messages.rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :m)"
            ).bindparams(m=match)
        )
        title_terms.append(
            text(
                "conversations.rowid IN "
                "(SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH :t)"
            ).bindparams(t=match)
        )
    return or_(Conversation.id.in_(in_messages), and_(*title_terms))


async def list_page(
    db: Database,
    *,
    user_id: int | None,
    limit: int = 20,
    cursor: str | None = None,
    query: str | None = None,
    pinned: bool | None = None,
    pinned_first: bool = False,
) -> Page:
    """A page of conversations, newest first; ``user_id`` None lists everyone's.

    ``pinned`` keeps only pinned (True) or unpinned (False) ones; ``pinned_first`` lists the
    pinned ones before the others, as a sidebar shows them, in one paged list."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit is between 1 and {MAX_PAGE}.", param="limit")
    stmt = select(Conversation)
    if user_id is not None:
        stmt = stmt.where(Conversation.user_id == user_id)
    if pinned is not None:
        stmt = stmt.where(Conversation.pinned.is_(pinned))
    if cursor:
        was_pinned, stamp, last_id = decode_cursor(cursor, pinned_first=pinned_first)
        after = or_(
            Conversation.updated_at < stamp,
            and_(Conversation.updated_at == stamp, Conversation.id < last_id),
        )
        if pinned_first:
            group = Conversation.pinned.is_(was_pinned)
            after = (
                or_(and_(group, after), Conversation.pinned.is_(False))
                if was_pinned
                else (and_(group, after))
            )
        stmt = stmt.where(after)
    if query and query.strip():
        found = _search_filter(db, query, user_id)
        if found is None:
            return Page([], None)
        stmt = stmt.where(found)
    order: list[UnaryExpression[Any]] = [Conversation.updated_at.desc(), Conversation.id.desc()]
    if pinned_first:
        order.insert(0, Conversation.pinned.desc())
    stmt = stmt.order_by(*order).limit(limit + 1)
    async with db.session() as session:
        rows = [summary(c) for c in (await session.scalars(stmt)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    last = encode_cursor(rows[-1], pinned_first=pinned_first) if more and rows else None
    return Page(rows, last)


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
