"""Taking conversations out (Markdown of the current path, JSON of the whole tree) and bringing
ChatGPT's own data export in (``conversations.json`` or the ``.zip`` that holds it).

The Markdown is what the original chat page saved: each question quoted with ``>``, then the
answer, separated by blank lines, under a header naming the model and the date.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from chatgate.core.conversation_queries import ConversationTree
from chatgate.core.errors import InvalidRequest, PayloadTooLarge
from chatgate.core.ids import new_id
from chatgate.store.db import Database
from chatgate.store.tables import Conversation, StoredMessage

EXPORT_FORMAT = "chatgate.conversation"
MAX_IMPORT_BYTES = 1 << 30
_ROLES = frozenset(("user", "assistant", "system", "tool"))


def to_markdown(tree: ConversationTree, tz: tzinfo | None = None) -> str:
    conv = tree.conversation
    when = datetime.fromtimestamp(conv.created_at, tz).astimezone(tz)
    blocks = [f"# {conv.title or 'Conversation'}"]
    blocks.append(f"Model: {conv.model or 'unknown'} · {when:%Y-%m-%d %H:%M}")
    if conv.system_prompt:
        blocks.append(f"System: {conv.system_prompt}")
    for message in tree.path_messages():
        if message.role == "user":
            blocks.append("\n".join(f"> {line}".rstrip() for line in message.content.splitlines()))
        elif message.role == "assistant":
            blocks.append(message.content)
    return "\n\n".join(blocks) + "\n"


def to_json(tree: ConversationTree) -> dict[str, Any]:
    """The whole tree: every message with its parent, and the current path."""
    conv = tree.conversation
    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "id": conv.id,
        "title": conv.title,
        "model": conv.model,
        "system_prompt": conv.system_prompt,
        "created_at": conv.created_at,
        "updated_at": conv.updated_at,
        "current_leaf_id": conv.current_leaf_id,
        "current_path": tree.current_path,
        "messages": [asdict(m) for m in tree.messages],
    }


# ---- ChatGPT data export ------------------------------------------------------------------------


@dataclass(slots=True)
class ImportedMessage:
    source_id: str
    parent_source_id: str | None
    role: str
    content: str
    model: str | None
    created_at: float | None


@dataclass(slots=True)
class ImportedConversation:
    external_id: str
    title: str | None
    created_at: float | None
    updated_at: float | None
    current_source_id: str | None
    messages: list[ImportedMessage] = field(default_factory=list)

    default_model: str | None = None

    @property
    def model(self) -> str | None:
        """The model of the current branch's last reply, else the export's default."""
        by_id = {m.source_id: m for m in self.messages}
        current = by_id.get(self.current_source_id or "")
        while current is not None:
            if current.model:
                return current.model
            current = by_id.get(current.parent_source_id or "")
        return self.default_model


def read_export(path: Path) -> list[dict[str, Any]]:
    """The list of conversations in a ChatGPT export, from the JSON file or the zip."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                raw = _conversations_json(archive, path.name, MAX_IMPORT_BYTES)
        else:
            raw = path.read_bytes()
        data = orjson.loads(raw)
    except (OSError, zipfile.BadZipFile, orjson.JSONDecodeError) as exc:
        raise InvalidRequest(f"cannot read {path.name}: {exc}") from None
    return parse_export_list(data)


def export_from_bytes(raw: bytes, limit: int) -> list[dict[str, Any]]:
    """The list of conversations in an uploaded ChatGPT export: the zip as downloaded, or its
    conversations.json. A zip may unpack to at most ``limit`` bytes (its own listing says how
    much, and reading stops there), so a small upload cannot fill the memory."""
    try:
        if raw.startswith(b"PK"):
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                raw = _conversations_json(archive, "the upload", limit)
        data = orjson.loads(raw)
    except (zipfile.BadZipFile, orjson.JSONDecodeError, EOFError, ValueError) as exc:
        raise InvalidRequest(
            f"The upload is not a ChatGPT export (its .zip or conversations.json): {exc}",
            param="file",
        ) from None
    return parse_export_list(data)


def _conversations_json(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    names = [n for n in archive.namelist() if Path(n).name == "conversations.json"]
    if not names:
        raise InvalidRequest(f"{name} holds no conversations.json", param="file")
    info = archive.getinfo(min(names, key=len))
    if info.file_size > limit:
        raise PayloadTooLarge(
            f"conversations.json is too large to import ({info.file_size} bytes; at most {limit})."
        )
    return archive.read(info)


def parse_export_list(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and "mapping" in data:
        data = [data]
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise InvalidRequest("a ChatGPT export is a list of conversations with a 'mapping'")
    return data


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or {}
    if not isinstance(content, dict):
        return ""
    parts = content.get("parts")
    if isinstance(parts, list):
        return "\n".join(p for p in parts if isinstance(p, str))
    value = content.get("text")
    return value if isinstance(value, str) else ""


def _kept(message: Any) -> tuple[str, str] | None:
    """The role and text of a node worth importing: skips the empty root and hidden prompts."""
    if not isinstance(message, dict):
        return None
    role = (message.get("author") or {}).get("role")
    metadata = message.get("metadata") or {}
    if role not in _ROLES or metadata.get("is_visually_hidden_from_conversation"):
        return None
    text = _text(message)
    return (role, text) if text.strip() else None


def parse_chatgpt(conv: dict[str, Any]) -> ImportedConversation:
    """One exported conversation, with skipped nodes' children moved up to a kept ancestor."""
    mapping = conv.get("mapping")
    source_id = conv.get("conversation_id") or conv.get("id")
    if not isinstance(mapping, dict) or not isinstance(source_id, str):
        raise InvalidRequest("every conversation in the export needs an id and a 'mapping'")
    kept: dict[str, str | None] = {}  # node id -> nearest kept ancestor (itself when kept)
    out = ImportedConversation(
        f"chatgpt:{source_id}",
        conv.get("title"),
        conv.get("create_time"),
        conv.get("update_time"),
        None,
    )
    roots = [k for k, n in mapping.items() if not n.get("parent") or n["parent"] not in mapping]
    stack = [(root, None) for root in reversed(roots)]
    while stack:
        node_id, above = stack.pop()
        node = mapping.get(node_id) or {}
        found = _kept(node.get("message"))
        if found is not None:
            message = node["message"]
            out.messages.append(
                ImportedMessage(
                    node_id,
                    above,
                    found[0],
                    found[1],
                    (message.get("metadata") or {}).get("model_slug"),
                    message.get("create_time"),
                )
            )
            above = node_id
        kept[node_id] = above
        children = [c for c in node.get("children") or [] if c in mapping and c not in kept]
        stack.extend((child, above) for child in reversed(children))
    current = conv.get("current_node")
    out.current_source_id = kept.get(current) if isinstance(current, str) else None
    default = conv.get("default_model_slug")
    out.default_model = default if isinstance(default, str) else None
    if out.current_source_id is None and out.messages:
        out.current_source_id = out.messages[-1].source_id
    return out


@dataclass(slots=True)
class ImportResult:
    imported: int = 0
    skipped: int = 0
    messages: int = 0
    ids: list[str] = field(default_factory=list)


def owned_external_id(external_id: str, user_id: int) -> str:
    """The stored form of an import's id: ``conversations.external_id`` is unique across all
    users, so the owner is part of it, and two users can import the same export."""
    return f"{user_id}/{external_id}"


async def already_imported(db: Database, user_id: int, external_ids: list[str]) -> set[str]:
    """Which of ``external_ids`` this user already holds (also in the owner-less form that
    earlier versions stored)."""
    owned = {owned_external_id(e, user_id): e for e in external_ids}
    async with db.session() as session:
        found = (
            await session.scalars(
                select(Conversation.external_id).where(
                    Conversation.user_id == user_id,
                    Conversation.external_id.in_([*owned, *external_ids]),
                )
            )
        ).all()
    return {owned.get(e, e) for e in found if e is not None}


async def store_imports(
    db: Database, user_id: int, items: list[ImportedConversation], now: float
) -> ImportResult:
    """Write parsed conversations for ``user_id``; those this user already imported are
    skipped.

    Idempotent through ``conversations.external_id``: the same export imported twice for one
    user adds nothing the second time. Each conversation is written in one transaction.
    """
    result = ImportResult()
    seen = await already_imported(db, user_id, [i.external_id for i in items])
    for item in items:
        if item.external_id in seen:
            result.skipped += 1
            continue
        seen.add(item.external_id)
        conv_id = new_id()
        ids = {m.source_id: new_id() for m in item.messages}
        created = item.created_at or now
        async with db.session() as session, session.begin():
            session.add(
                Conversation(
                    id=conv_id,
                    user_id=user_id,
                    title=(item.title or "")[:255] or None,
                    system_prompt=None,
                    model=item.model,
                    current_leaf_id=ids.get(item.current_source_id or ""),
                    external_id=owned_external_id(item.external_id, user_id),
                    created_at=created,
                    updated_at=item.updated_at or created,
                )
            )
            await session.flush()
            session.add_all(
                StoredMessage(
                    id=ids[m.source_id],
                    conversation_id=conv_id,
                    parent_id=ids.get(m.parent_source_id or ""),
                    role=m.role,
                    content=m.content,
                    model=m.model,
                    finish_reason="stop" if m.role == "assistant" else None,
                    prompt_tokens=0,
                    completion_tokens=0,
                    created_at=m.created_at or created,
                )
                for m in item.messages
            )
        result.imported += 1
        result.messages += len(item.messages)
        result.ids.append(conv_id)
    return result
