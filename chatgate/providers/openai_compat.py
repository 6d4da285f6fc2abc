"""Any OpenAI-compatible model server (OpenAI, Azure OpenAI, DeepSeek, Ollama, vLLM, ...).

One pooled keep-alive aiohttp session per provider, created once. Streamed replies are relayed
as the upstream sent them, cut at event boundaries; a copy of each event is parsed with orjson
only for what accounting needs (text, tool calls, finish reason, usage).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from chatgate.core.errors import (
    ChatgateError,
    ModelNotFound,
    UpstreamError,
    UpstreamMisconfigured,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chatgate.core.events import Delta, Usage
from chatgate.providers.base import UpstreamCall
from chatgate.settings import ProviderConfig

log = logging.getLogger("chatgate.upstream")

MAX_PENDING_BYTES = 8 * 1024 * 1024
_DONE = b"[DONE]"


class UpstreamRateLimited(UpstreamError):
    code = "upstream_rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode(errors="replace").strip() or "no message"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return "no message"


def upstream_status_error(name: str, status: int, body: bytes, headers: Any) -> ChatgateError:
    """Translate an upstream HTTP error into what our client should be told."""
    message = _error_message(body)
    if status in (401, 403):
        return UpstreamMisconfigured(
            f"The gateway's credentials for upstream '{name}' were refused; "
            "an operator must fix the configuration."
        )
    if status == 429:
        return UpstreamRateLimited(
            f"Upstream '{name}' is rate limiting: {message}", retry_after=_retry_after(headers)
        )
    if status >= 500:
        err = UpstreamUnavailable(f"Upstream '{name}' failed with HTTP {status}: {message}")
        return err
    if status == 404:
        return ModelNotFound(message)
    return UpstreamRejected(message, status=status if status in (400, 413, 422) else 400)


class OpenAICompatProvider:
    """A provider speaking the OpenAI HTTP API, with its keys used in turn."""

    def __init__(self, config: ProviderConfig, keys: list[str]) -> None:
        self.name = config.name
        self.config = config
        self._keys = keys
        self._turn = 0
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None

    # ---- the pooled client ------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            proxy = self.config.proxy
            connector: aiohttp.BaseConnector
            if proxy and proxy.startswith("socks"):
                from aiohttp_socks import ProxyConnector

                connector = ProxyConnector.from_url(proxy, limit=0, keepalive_timeout=30)
            else:
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=300)
                self._proxy = proxy
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.config.headers}
        if self._keys:
            key = self._keys[self._turn % len(self._keys)]
            self._turn += 1
            if self.config.kind == "azure-openai":
                headers["api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def _url(self, path: str) -> str:
        base = self.config.base_url.rstrip("/")
        if self.config.kind == "azure-openai":
            deployment = self.config.deployment or ""
            version = self.config.api_version or "2024-10-21"
            return f"{base}/openai/deployments/{deployment}/{path}?api-version={version}"
        return f"{base}/{path}"

    # ---- calls ------------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        timeout = aiohttp.ClientTimeout(total=self.config.timeouts.connect + 10)
        try:
            async with self._client().get(
                self._url("models"), headers=self._headers(), proxy=self._proxy, timeout=timeout
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise upstream_status_error(self.name, resp.status, body, resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"could not list models of upstream '{self.name}'") from exc
        data = orjson.loads(body).get("data") or []
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def stream(self, call: UpstreamCall) -> AsyncGenerator[Delta, None]:
        body = dict(call.body)
        streaming = bool(body.get("stream"))
        if streaming:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        if self.config.kind == "azure-openai":
            body.pop("model", None)
        payload = orjson.dumps(body)
        timeouts = self.config.timeouts
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeouts.first_token):
                resp = await self._client().post(
                    self._url(call.path),
                    data=payload,
                    headers=self._headers(),
                    proxy=self._proxy,
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"could not reach upstream '{self.name}'") from exc
        async with resp:
            if resp.status != 200:
                raw = await resp.read()
                raise upstream_status_error(self.name, resp.status, raw, resp.headers)
            if not streaming:
                yield await self._whole(resp, call, loop.time() + timeouts.first_token)
                return
            async for delta in self._relay(resp, call):
                yield delta

    async def _whole(self, resp: aiohttp.ClientResponse, call: UpstreamCall, until: float) -> Delta:
        try:
            async with asyncio.timeout_at(until):
                raw = await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"upstream '{self.name}' broke off its answer") from exc
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(f"upstream '{self.name}' sent a malformed reply") from exc
        message = choice.get("message") or {}
        text = message.get("content") if "message" in choice else choice.get("text")
        return Delta(
            text=text or "",
            tool_calls=message.get("tool_calls"),
            raw=raw if call.wants_raw else None,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=_usage(data.get("usage")),
        )

    async def _relay(
        self, resp: aiohttp.ClientResponse, call: UpstreamCall
    ) -> AsyncGenerator[Delta, None]:
        timeouts = self.config.timeouts
        loop = asyncio.get_running_loop()
        pending = b""
        first = True
        try:
            async with asyncio.timeout(timeouts.first_token) as idle:
                async for data in resp.content.iter_any():
                    pending += data
                    end = _event_boundary(pending)
                    if end < 0:
                        if len(pending) > MAX_PENDING_BYTES:
                            raise UpstreamError(
                                f"upstream '{self.name}' sent an event larger than "
                                f"{MAX_PENDING_BYTES} bytes"
                            )
                        continue
                    complete, pending = pending[:end], pending[end:]
                    delta = _parse_events(self.name, complete, call)
                    if delta is not None:
                        if first:
                            first = False
                        yield delta
                    idle.reschedule(loop.time() + timeouts.idle)
        except TimeoutError as exc:
            what = "first token" if first else "next chunk"
            raise UpstreamTimeout(f"upstream '{self.name}' stalled waiting for the {what}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream '{self.name}' broke off the stream") from exc
        if pending.strip():
            delta = _parse_events(self.name, pending, call)
            if delta is not None:
                yield delta


def _event_boundary(buf: bytes) -> int:
    """Index just past the last complete SSE event in ``buf``, or -1."""
    end = buf.rfind(b"\n\n")
    if end >= 0:
        return end + 2
    end = buf.rfind(b"\r\n\r\n")
    return end + 4 if end >= 0 else -1


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
    )


def _parse_events(name: str, complete: bytes, call: UpstreamCall) -> Delta | None:
    """Read the text, tool calls, finish reason and usage out of complete SSE events."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    finish: str | None = None
    usage: Usage | None = None
    drop: list[bytes] = []
    for line in complete.splitlines():
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == _DONE:
            drop.append(line)
            continue
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"upstream '{name}' sent malformed data in its stream") from exc
        if not isinstance(event, dict):
            raise UpstreamError(f"upstream '{name}' sent malformed data in its stream")
        if "error" in event:
            raise UpstreamError(f"upstream '{name}' reported: {_error_message(payload)}")
        if event.get("usage"):
            usage = _usage(event["usage"])
            if not event.get("choices") and not call.client_usage:
                drop.append(line)
        for choice in event.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta is not None:
                content = delta.get("content")
                if content:
                    texts.append(content)
                if delta.get("tool_calls"):
                    tool_calls.extend(delta["tool_calls"])
            elif choice.get("text"):
                texts.append(choice["text"])
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    raw: bytes | None = None
    if call.wants_raw:
        raw = complete if not drop else _without(complete, drop)
    if not texts and not tool_calls and finish is None and usage is None and not raw:
        return None
    return Delta(
        text="".join(texts),
        tool_calls=tool_calls or None,
        raw=raw or None,
        finish_reason=finish,
        usage=usage,
    )


def _without(complete: bytes, drop: list[bytes]) -> bytes:
    kept = [ev for ev in complete.split(b"\n\n") if ev.strip() and ev.strip() not in drop]
    return b"".join(ev + b"\n\n" for ev in kept)
