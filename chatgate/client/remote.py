"""The client that calls a chatgate server's native API (``/api/v1``) with an API key.

Replies come as server-sent events (``delta``, then ``done`` or ``error``); refusals come as
OpenAI-shaped error bodies, turned back into ``ChatgateError``s with the server's message and
code, so the commands show them exactly as they show the core's own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import orjson

from chatgate.client.base import Finished, Options, ReplyEvent, pick_one
from chatgate.core.conversation_queries import (
    ConversationSummary,
    ConversationTree,
    MessageView,
)
from chatgate.core.errors import ChatgateError, UpstreamUnavailable

API = "/api/v1"


def error_of(status: int, body: Any) -> ChatgateError:
    """The server's refusal as an error of the one hierarchy, keeping its message and code."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        detail = {"message": f"the server answered HTTP {status}"}
    error = ChatgateError(str(detail.get("message") or f"HTTP {status}"))
    error.code = str(detail.get("code") or detail.get("type") or "error")
    error.status = status
    return error


def _summary(item: dict[str, Any]) -> ConversationSummary:
    return ConversationSummary(
        id=item["id"],
        user_id=0,
        title=item.get("title"),
        model=item.get("model"),
        system_prompt=item.get("system"),
        current_leaf_id=item.get("current_leaf_id"),
        created_at=item.get("created_at", 0.0),
        updated_at=item.get("updated_at", 0.0),
    )


def _message(item: dict[str, Any]) -> MessageView:
    return MessageView(
        id=item["id"],
        parent_id=item.get("parent_id"),
        role=item["role"],
        content=item.get("content", ""),
        model=item.get("model"),
        finish_reason=item.get("finish_reason"),
        prompt_tokens=item.get("prompt_tokens", 0),
        completion_tokens=item.get("completion_tokens", 0),
        created_at=item.get("created_at", 0.0),
    )


class RemoteClient:
    """``ChatClient`` over HTTP: one connection pool for the whole session."""

    def __init__(self, url: str, key: str, *, timeout: float = 600) -> None:
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[: -len("/v1")]
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10),
        )

    def _unreachable(self, exc: Exception) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"cannot reach {self.url}: {exc or type(exc).__name__}")

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self._session.request(method, self.url + path, **kwargs) as response:
                raw = await response.read()
                body = orjson.loads(raw) if raw else None
                if response.status >= 400:
                    raise error_of(response.status, body)
                return body
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise self._unreachable(exc) from None

    # ---- replies ------------------------------------------------------------------------------

    def send(
        self,
        conversation_id: str,
        content: str,
        options: Options,
        *,
        parent_id: str | None = None,
    ) -> AsyncIterator[ReplyEvent]:
        body = {"content": content, "parent_id": parent_id, "system": options.system}
        return self._reply(f"/conversations/{conversation_id}/messages", options, body)

    def regenerate(
        self, conversation_id: str, message_id: str, options: Options
    ) -> AsyncIterator[ReplyEvent]:
        path = f"/conversations/{conversation_id}/messages/{message_id}/regenerate"
        return self._reply(path, options, {})

    def edit(
        self, conversation_id: str, message_id: str, content: str, options: Options
    ) -> AsyncIterator[ReplyEvent]:
        path = f"/conversations/{conversation_id}/messages/{message_id}/edit"
        return self._reply(path, options, {"content": content})

    async def _reply(
        self, path: str, options: Options, body: dict[str, Any]
    ) -> AsyncGenerator[ReplyEvent, None]:
        payload = {k: v for k, v in body.items() if v is not None}
        payload.update(options.params(), stream=True)
        if options.model:
            payload["model"] = options.model
        try:
            async with self._session.post(
                self.url + API + path, json=payload, headers={"Accept": "text/event-stream"}
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    raise error_of(response.status, orjson.loads(raw) if raw else None)
                async for name, data in _events(response.content):
                    if name == "delta":
                        yield str(data.get("text", ""))
                    elif name == "done":
                        yield Finished(
                            data.get("conversation_id"),
                            data.get("message_id"),
                            data.get("parent_id"),
                            data.get("finish_reason") or "stop",
                            data.get("model") or "",
                            data.get("usage") or {},
                        )
                        return
                    elif name == "error":
                        raise error_of(502, data)
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise self._unreachable(exc) from None
        raise UpstreamUnavailable("the server ended the reply without finishing it")

    # ---- reading and changing conversations -------------------------------------------------

    async def models(self) -> list[str]:
        body = await self._call("GET", "/v1/models")
        return [m["id"] for m in body.get("data", [])]

    async def conversations(
        self, *, limit: int = 20, query: str | None = None
    ) -> list[ConversationSummary]:
        params: dict[str, Any] = {"limit": limit}
        if query:
            params["q"] = query
        body = await self._call("GET", API + "/conversations", params=params)
        return [_summary(item) for item in body["data"]]

    async def resolve(self, prefix: str) -> str:
        try:
            return str((await self._call("GET", f"{API}/conversations/{prefix}"))["id"])
        except ChatgateError as exc:
            if exc.status != 404:
                raise
        recent = await self.conversations(limit=200)
        return pick_one(prefix, [c.id for c in recent])

    async def tree(self, conversation_id: str) -> ConversationTree:
        body = await self._call("GET", f"{API}/conversations/{conversation_id}")
        return ConversationTree(
            _summary(body), [_message(m) for m in body["messages"]], body["current_path"]
        )

    async def switch(self, conversation_id: str, leaf_id: str) -> None:
        path = f"{API}/conversations/{conversation_id}"
        await self._call("PATCH", path, json={"current_leaf_id": leaf_id})

    async def rename(self, conversation_id: str, title: str) -> None:
        await self._call("PATCH", f"{API}/conversations/{conversation_id}", json={"title": title})

    async def set_system(self, conversation_id: str, system: str) -> None:
        path = f"{API}/conversations/{conversation_id}"
        await self._call("PATCH", path, json={"system": system})

    async def remaining_requests(self) -> int | None:
        me = await self._call("GET", API + "/auth/me")
        limits = [me["limits"].get("daily_requests"), me["key_limits"].get("daily_requests")]
        binding = [v for v in limits if v is not None]
        if not binding:
            return None
        usage = await self._call("GET", API + "/usage", params={"group_by": "day"})
        used = sum(int(r["requests"]) for r in usage["rows"] if r["day"] == usage["to"])
        return max(0, int(min(binding)) - used)

    async def close(self) -> None:
        await self._session.close()


async def _events(stream: aiohttp.StreamReader) -> AsyncGenerator[tuple[str, Any], None]:
    """Server-sent events as (name, decoded data), one per blank-line-ended block."""
    name, data = "message", list[str]()
    async for raw in stream:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield name, orjson.loads("\n".join(data))
            name, data = "message", list[str]()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
