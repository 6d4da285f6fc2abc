"""The OpenAI-compatible provider on an httpx client, for measuring httpx against aiohttp.

Everything but the client is the provider's own code: the same body, headers, SSE cutting and
parsing of copies for accounting. The pool is as unbounded as the aiohttp one (no connection
cap, every idle connection kept alive), so the comparison is of the libraries, not of limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson

from chatgate.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from chatgate.core.events import Delta
from chatgate.providers import router
from chatgate.providers.base import Provider, UpstreamCall
from chatgate.providers.openai_compat import (
    OpenAICompatProvider,
    _event_boundary,
    _parse_events,
    _usage,
    upstream_status_error,
)
from chatgate.settings import ProviderConfig, Settings


class HttpxProvider(OpenAICompatProvider):
    def __init__(self, config: ProviderConfig, keys: list[str]) -> None:
        super().__init__(config, keys)
        self._hx: httpx.AsyncClient | None = None

    def _httpx(self) -> httpx.AsyncClient:
        if self._hx is None:
            t = self.config.timeouts
            self._hx = httpx.AsyncClient(
                timeout=httpx.Timeout(t.total, connect=t.connect),
                limits=httpx.Limits(
                    max_connections=None, max_keepalive_connections=None, keepalive_expiry=30
                ),
                proxy=self.config.proxy,
            )
        return self._hx

    async def close(self) -> None:
        if self._hx is not None:
            await self._hx.aclose()
            self._hx = None

    async def list_models(self) -> list[str]:
        try:
            resp = await self._httpx().get(self._url("models"), headers=self._headers())
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"could not list models of upstream '{self.name}'") from exc
        if resp.status_code != 200:
            raise upstream_status_error(self.name, resp.status_code, resp.content, resp.headers)
        data = orjson.loads(resp.content).get("data") or []
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def stream(self, call: UpstreamCall) -> AsyncGenerator[Delta, None]:
        body = dict(call.body)
        streaming = bool(body.get("stream"))
        if streaming:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        client = self._httpx()
        request = client.build_request(
            "POST", self._url(call.path), content=orjson.dumps(body), headers=self._headers()
        )
        try:
            async with asyncio.timeout(self.config.timeouts.first_token):
                resp = await client.send(request, stream=True)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"could not reach upstream '{self.name}'") from exc
        try:
            if resp.status_code != 200:
                raw = await resp.aread()
                raise upstream_status_error(self.name, resp.status_code, raw, resp.headers)
            if not streaming:
                yield _whole(self.name, await resp.aread(), call)
                return
            async for delta in self._relay_httpx(resp, call):
                yield delta
        finally:
            await resp.aclose()

    async def _relay_httpx(
        self, resp: httpx.Response, call: UpstreamCall
    ) -> AsyncGenerator[Delta, None]:
        limit = self.config.max_event_bytes
        pending = b""
        try:
            async for data in resp.aiter_raw():
                pending += data
                end = _event_boundary(pending, 0)
                if end < 0:
                    if len(pending) > limit:
                        raise UpstreamError(f"upstream '{self.name}' sent too large an event")
                    continue
                complete, pending = pending[:end], pending[end:]
                delta, _ = _parse_events(self.name, complete, call)
                if delta is not None:
                    yield delta
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream '{self.name}' broke off the stream") from exc
        if pending.strip():
            delta, _ = _parse_events(self.name, pending, call)
            if delta is not None:
                yield delta


def _whole(name: str, raw: bytes, call: UpstreamCall) -> Delta:
    try:
        data: dict[str, Any] = orjson.loads(raw)
        choice = data["choices"][0]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise UpstreamError(f"upstream '{name}' sent a malformed reply") from exc
    message = choice.get("message") or {}
    text = message.get("content") if "message" in choice else choice.get("text")
    return Delta(
        text=text or "",
        tool_calls=message.get("tool_calls"),
        raw=raw if call.wants_raw else None,
        finish_reason=choice.get("finish_reason") or "stop",
        usage=_usage(data.get("usage")),
    )


def install() -> None:
    """Make the model registry build ``HttpxProvider`` for OpenAI-compatible upstreams."""
    original = router.build_provider

    def build(config: ProviderConfig, settings: Settings) -> Provider:
        if config.kind == "demo":
            return original(config, settings)
        keys = [k.get_secret_value() for k in config.api_keys]
        return HttpxProvider(config, keys)

    router.build_provider = build
