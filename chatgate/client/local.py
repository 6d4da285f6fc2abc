"""The client that calls the core in this process, as the machine's own user.

The local user is created on first use with no limits (the daily cap of a team's accounts is
not for the machine's owner); limits an operator sets on it later apply.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from chatgate.client.base import Finished, Options, ReplyEvent
from chatgate.core.accounts import QUOTA_FIELDS, Principal
from chatgate.core.conversation_queries import (
    ConversationSummary,
    ConversationTree,
    ids_starting_with,
)
from chatgate.core.errors import NotFound
from chatgate.core.events import ChatRequest, Delta, Done, ErrorEvent
from chatgate.services import Services
from chatgate.settings import Settings


def local_user_name() -> str:
    """The OS user's name, as an account name (characters it may not hold become ``_``)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = "local"
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")
    return "".join(c if c in allowed else "_" for c in name)[:64] or "local"


class LocalClient:
    """``ChatClient`` over a ``Services`` opened on the local data directory."""

    def __init__(self, services: Services, username: str) -> None:
        self.services = services
        self.username = username

    @classmethod
    async def open(cls, settings: Settings, username: str | None = None) -> LocalClient:
        services = await Services.open(settings, watch_changes=False)
        client = cls(services, username or local_user_name())
        try:
            await client.principal()
        except BaseException:
            await services.close()
            raise
        return client

    async def principal(self) -> Principal:
        """The local user as the core sees them, read anew so that new limits apply."""
        accounts = self.services.accounts
        try:
            user = await accounts.get_user(self.username)
        except NotFound:
            await accounts.ensure_user(self.username)
            await accounts.set_quota(self.username, by=None, **dict.fromkeys(QUOTA_FIELDS, -1))
            user = await accounts.get_user(self.username)
        return accounts.principal_for(user)

    # ---- replies ------------------------------------------------------------------------------

    def send(
        self,
        conversation_id: str,
        content: str,
        options: Options,
        *,
        parent_id: str | None = None,
    ) -> AsyncIterator[ReplyEvent]:
        return self._reply(
            conversation_id,
            options,
            [{"role": "user", "content": content}],
            parent_id=parent_id,
            system=options.system,
        )

    def regenerate(
        self, conversation_id: str, message_id: str, options: Options
    ) -> AsyncIterator[ReplyEvent]:
        return self._reply(conversation_id, options, [], parent_id=message_id, regenerate=True)

    def edit(
        self, conversation_id: str, message_id: str, content: str, options: Options
    ) -> AsyncIterator[ReplyEvent]:
        message = {"role": "user", "content": content}
        return self._reply(conversation_id, options, [message], edit_id=message_id)

    async def _reply(
        self, conversation_id: str, options: Options, messages: list[Any], **place: Any
    ) -> AsyncGenerator[ReplyEvent, None]:
        principal = await self.principal()
        model = await self.services.conversations.model_for(
            principal, conversation_id, options.model
        )
        request = ChatRequest(
            model=model,
            messages=messages,
            params=options.params(),
            conversation_id=conversation_id,
            **place,
        )
        async with aclosing(self.services.chat.stream(principal, request)) as events:
            async for event in events:
                if isinstance(event, Delta):
                    if event.text:
                        yield event.text
                elif isinstance(event, Done):
                    yield Finished(
                        event.conversation_id,
                        event.message_id,
                        event.parent_id,
                        event.finish_reason,
                        event.model,
                        event.usage.as_openai(),
                    )
                elif isinstance(event, ErrorEvent):
                    raise event.error

    # ---- reading and changing conversations -------------------------------------------------

    async def models(self) -> list[str]:
        return self.services.models.names(await self.principal())

    async def conversations(
        self, *, limit: int = 20, query: str | None = None
    ) -> list[ConversationSummary]:
        principal = await self.principal()
        page = await self.services.conversations.page(
            principal.user_id, limit=limit, query=query or None
        )
        return page.items

    async def resolve(self, prefix: str) -> str:
        from chatgate.client.base import pick_one

        principal = await self.principal()
        await self.services.writer.flush()
        found = await ids_starting_with(self.services.db, prefix, principal.user_id, limit=6)
        return pick_one(prefix, found)

    async def tree(self, conversation_id: str) -> ConversationTree:
        return await self.services.conversations.tree(await self.principal(), conversation_id)

    async def switch(self, conversation_id: str, leaf_id: str) -> None:
        principal = await self.principal()
        await self.services.conversations.change(principal, conversation_id, leaf_id=leaf_id)

    async def rename(self, conversation_id: str, title: str) -> None:
        principal = await self.principal()
        await self.services.conversations.change(principal, conversation_id, title=title)

    async def set_system(self, conversation_id: str, system: str) -> None:
        principal = await self.principal()
        await self.services.conversations.change(principal, conversation_id, system_prompt=system)

    async def remaining_requests(self) -> int | None:
        principal = await self.principal()
        limit = principal.limits.daily_requests
        if limit is None:
            return None
        today = self.services.usage_queries.days_back(1)[1]
        used, _ = await self.services.usage_queries.counted(f"u:{principal.user_id}", today)
        return max(0, limit - used)

    async def close(self) -> None:
        await self.services.close()
