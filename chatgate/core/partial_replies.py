"""The text of a reply whose producing process died, kept as its stored reply.

A reply's producer stores it when it ends, as ``ConversationService.finish`` does; a process
that dies (killed, out of memory, its machine gone) never gets there. Every event it made is
still in the shared reply store, though, so the instance that finds it gone
(``Replies._take_over``, from a follower of the reply or from the sweep when nobody follows it)
stores that text under the id the reply was announced with, as a reply cut by an error is
stored. The id makes it once: an instance that ends the reply again (the first died while ending
it) finds it stored. The question was written behind when it was asked, so it is normally there
already; when it is not (the process died within the writer's interval), there is nothing to
attach the text to and nothing is stored.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from chatgate.core.conversations import ConversationService
from chatgate.core.reply_store import ReplyInfo
from chatgate.core.tokens import estimate_tokens
from chatgate.store.tables import Conversation, StoredMessage

log = logging.getLogger("chatgate.replies")

FINISH_REASON = "error"
"""As a reply the upstream broke off: the page offers to answer the question again."""


class PartialReplies:
    def __init__(self, conversations: ConversationService) -> None:
        self.conversations = conversations

    async def keep(self, info: ReplyInfo, text: str) -> None:
        """Store ``text`` as the reply (once: a reply already stored is left as it is), and make
        it the conversation's current message if the question still is."""
        if info.conversation_id is None or info.message_id is None or not text:
            return
        try:
            await self._store(info, info.conversation_id, info.message_id, text)
        except IntegrityError:
            if not await self._stored(info.message_id):
                raise
            # stored meanwhile by another instance: once is what is wanted
        self.conversations.forget(info.conversation_id)

    async def _stored(self, message_id: str) -> bool:
        async with self.conversations.db.session() as session:
            return await session.get(StoredMessage, message_id) is not None

    async def _store(
        self, info: ReplyInfo, conversation_id: str, message_id: str, text: str
    ) -> None:
        conversations = self.conversations
        now = conversations.clock.now()
        async with conversations.db.session() as session, session.begin():
            if await session.get(Conversation, conversation_id) is None:
                log.warning("reply %s: its conversation was never stored", info.reply_id)
                return
            if (
                info.parent_id is not None
                and await session.get(StoredMessage, info.parent_id) is None
            ):
                log.warning("reply %s: its question was never stored", info.reply_id)
                return
            if await session.get(StoredMessage, message_id) is not None:
                return
            session.add(
                StoredMessage(
                    id=message_id,
                    conversation_id=conversation_id,
                    parent_id=info.parent_id,
                    role="assistant",
                    content=text,
                    model=info.model,
                    finish_reason=FINISH_REASON,
                    prompt_tokens=0,
                    completion_tokens=estimate_tokens(text),
                    created_at=now,
                )
            )
            await session.execute(
                update(Conversation)
                .where(
                    Conversation.id == conversation_id,
                    Conversation.current_leaf_id == info.parent_id,
                )
                .values(current_leaf_id=message_id, updated_at=now)
            )
