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
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chatgate.core.events import Delta, Usage
from chatgate.providers.base import UpstreamCall
from chatgate.providers.deadlines import ReadDeadlines
from chatgate.settings import ProviderConfig

log = logging.getLogger("chatgate.upstream")

_DONE = b"[DONE]"
_RETRYABLE_5XX = frozenset((500, 502, 503, 504))


def _retry_after(headers: Any) -> float | None:
    """The upstream's pause hint: ``retry-after-ms`` (OpenAI) or ``retry-after`` in seconds
    (an HTTP date is read as "a while": the default backoff then applies)."""
    value = headers.get("retry-after-ms")
    scale = 0.001
    if value is None:
        value = headers.get("retry-after")
        scale = 1.0
    if value is None:
        return None
    try:
        return max(0.0, float(value) * scale)
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
        # Only these say "try again"; a 501 or 505 will answer the same the next time.
        err.retryable = status in _RETRYABLE_5XX
        return err
    if status == 404:
        return ModelNotFound(message)
    return UpstreamRejected(message, status=status if status in (400, 413, 422) else 400)


class OpenAICompatProvider:
    """A provider speaking the OpenAI HTTP API (or Azure OpenAI's flavour of it), with its keys
    used in turn: one request per key, round and round, so a retry goes out with the next key."""

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
            # Deadlines for the answer are kept by ``stream`` itself (first token, idle, total);
            # the session only bounds getting a connection.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=t.connect, sock_connect=t.connect
                ),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                auto_decompress=True,
            )
        return self._session

    @property
    def connector(self) -> aiohttp.BaseConnector | None:
        """The connection pool, while there is one (tests count its connections)."""
        return self._session.connector if self._session is not None else None

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

    def _url(self, path: str, model: str | None = None) -> str:
        base = self.config.base_url.rstrip("/")
        if self.config.kind == "azure-openai":
            version = self.config.api_version or AZURE_API_VERSION
            if path == "models":
                return f"{base}/openai/models?api-version={version}"
            deployment = self.config.deployment or model or ""
            return f"{base}/openai/deployments/{deployment}/{path}?api-version={version}"
        return f"{base}/{path}"

    # ---- calls ------------------------------------------------------------------------------

    async def list_models(self) -> list[str]:
        if self.config.kind == "azure-openai":
            # Azure serves deployments, not models: the configured one is what can be asked for.
            return [self.config.deployment] if self.config.deployment else []
        timeout = aiohttp.ClientTimeout(total=self.config.timeouts.connect + 10)
        try:
            async with self._client().get(
                self._url("models"), headers=self._headers(), proxy=self._proxy, timeout=timeout
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise upstream_status_error(self.name, resp.status, body, resp.headers)
            data = orjson.loads(body).get("data") or []
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"could not list models of upstream '{self.name}'") from exc
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise UpstreamError(f"upstream '{self.name}' sent a malformed model list") from exc
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def stream(self, call: UpstreamCall) -> AsyncGenerator[Delta, None]:
        body = dict(call.body)
        streaming = bool(body.get("stream"))
        if streaming:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        model = body.get("model")
        if self.config.kind == "azure-openai":
            body.pop("model", None)
        payload = orjson.dumps(body)
        url = self._url(call.path, model if isinstance(model, str) else None)
        timeouts = self.config.timeouts
        now = asyncio.get_running_loop().time()
        end = now + timeouts.total
        if not streaming:
            yield await self._whole(url, payload, call, end)
            return
        # A streamed reply must start within first_token; a whole one may take the total time.
        first = min(now + timeouts.first_token, end)
        try:
            async with asyncio.timeout_at(first):
                resp = await self._client().post(
                    url, data=payload, headers=self._headers(), proxy=self._proxy
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"could not reach upstream '{self.name}'") from exc
        async with resp:
            if resp.status != 200:
                try:
                    async with asyncio.timeout_at(end):
                        raw = await resp.read()
                except (TimeoutError, aiohttp.ClientError):
                    raw = b""
                raise upstream_status_error(self.name, resp.status, raw, resp.headers)
            async for delta in self._relay(resp, call, first, end):
                yield delta

    async def _whole(self, url: str, payload: bytes, call: UpstreamCall, until: float) -> Delta:
        """A reply that is not streamed: asked and read under one deadline."""
        reached = False
        try:
            async with asyncio.timeout_at(until):
                async with self._client().post(
                    url, data=payload, headers=self._headers(), proxy=self._proxy
                ) as resp:
                    reached = True
                    if resp.status != 200:
                        try:
                            raw = await resp.read()
                        except aiohttp.ClientError:
                            raw = b""
                        raise upstream_status_error(self.name, resp.status, raw, resp.headers)
                    raw = await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream '{self.name}' did not answer in time") from exc
        except aiohttp.ClientError as exc:
            if not reached:
                raise UpstreamUnavailable(f"could not reach upstream '{self.name}'") from exc
            raise UpstreamUnavailable(f"upstream '{self.name}' broke off its answer") from exc
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamError(f"upstream '{self.name}' sent a malformed reply") from exc
        text = message.get("content") if "message" in choice else choice.get("text")
        return Delta(
            text or "",
            message.get("tool_calls"),
            raw if call.wants_raw else None,
            choice.get("finish_reason") or "stop",
            _usage(data.get("usage")),
        )

    async def _relay(
        self, resp: aiohttp.ClientResponse, call: UpstreamCall, first: float, end: float
    ) -> AsyncGenerator[Delta, None]:
        """Yield complete SSE events as they come, each read bounded by a deadline: the first
        token's until a piece has come, then the idle gap, never past the total (kept by one
        timer for the whole stream, see ``deadlines``).

        The deadline covers the read only, never the ``yield``: time the client takes to
        accept a piece is not the upstream's fault.
        """
        idle = self.config.timeouts.idle
        limit = self.config.max_event_bytes
        loop = asyncio.get_running_loop()
        read = resp.content.readany
        pending = bytearray()
        deadline = first
        finished = False
        deadlines = ReadDeadlines()
        try:
            while True:
                deadlines.start(deadline)
                try:
                    data = await read()
                except asyncio.CancelledError:
                    if deadlines.expired():
                        raise self._stalled(deadline, first, end) from None
                    raise
                except aiohttp.ClientError as exc:
                    raise UpstreamError(f"upstream '{self.name}' broke off the stream") from exc
                deadlines.stop()
                last = not data
                if last:
                    if not pending.strip():
                        break
                    complete = bytes(pending)  # what came after the last event boundary
                else:
                    if len(data) > limit:
                        self._check_events(data, limit)
                    if pending:
                        start = max(0, len(pending) - 3)
                        pending += data
                        cut = _event_boundary(pending, start)
                        if cut < 0:
                            self._check_size(pending, limit)
                            continue
                        # The event that was pending ends at the first line end after ``start``.
                        if pending.find(b"\n", start) > limit:
                            raise self._too_large(limit)
                        complete = bytes(pending[:cut])
                        del pending[:cut]
                    elif data.endswith(b"\n\n"):  # the usual read: whole events
                        complete = data
                    else:
                        cut = _event_boundary(data, 0)
                        if cut == len(data):
                            complete = data
                        elif cut < 0:
                            pending += data
                            self._check_size(pending, limit)
                            continue
                        else:
                            complete = data[:cut]
                            pending += data[cut:]
                try:
                    delta, ended = _parse_events(self.name, complete, call)
                except _Malformed as bad:
                    if bad.before is not None:
                        yield bad.before
                    raise bad.error from None
                finished = finished or ended
                if delta is not None:
                    finished = finished or delta.finish_reason is not None
                    yield delta
                    deadline = min(loop.time() + idle, end)
                if last:
                    break
            if not finished:
                raise UpstreamError(f"upstream '{self.name}' ended the stream before the reply did")
        finally:
            deadlines.close()

    def _stalled(self, deadline: float, first: float, end: float) -> UpstreamTimeout:
        if deadline >= end:
            what = "took longer than its total time limit"
        elif deadline == first:
            what = "stalled waiting for the first token"
        else:
            what = "stalled waiting for the next chunk"
        return UpstreamTimeout(f"upstream '{self.name}' {what}")

    def _check_events(self, data: bytes, limit: int) -> None:
        """A read larger than the limit: no event in it may be (whatever the read boundaries)."""
        if any(len(event) > limit for event in data.split(b"\n\n")):
            raise self._too_large(limit)

    def _check_size(self, pending: bytearray, limit: int) -> None:
        if len(pending) > limit:
            raise self._too_large(limit)

    def _too_large(self, limit: int) -> UpstreamError:
        return UpstreamError(f"upstream '{self.name}' sent an event larger than {limit} bytes")


AZURE_API_VERSION = "2024-10-21"


def _event_boundary(buf: bytes | bytearray, start: int) -> int:
    """Index just past the last complete SSE event in ``buf`` (searching from ``start``), or -1."""
    lf = buf.rfind(b"\n\n", start)
    crlf = buf.rfind(b"\r\n\r\n", start)
    if crlf >= 0 and crlf + 2 > lf:
        return crlf + 4
    return lf + 2 if lf >= 0 else -1


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
    )


class _BadLine(Exception):
    def __init__(self, line: bytes, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.line = line
        self.error = error


class _Malformed(Exception):
    """A bad event, and the good ones that came before it in the same read (still relayed)."""

    def __init__(self, error: UpstreamError, before: Delta | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.before = before


def _parse_events(name: str, complete: bytes, call: UpstreamCall) -> tuple[Delta | None, bool]:
    """Read the text, tool calls, finish reason and usage out of complete SSE events; the flag
    says whether ``[DONE]`` was among them. Raises ``_Malformed`` at the first bad event."""
    try:
        return _read_events(name, complete, call)
    except _BadLine as bad:
        cut = complete.find(bad.line)
        before = _read_events(name, complete[:cut], call)[0] if cut > 0 else None
        raise _Malformed(bad.error, before) from None


def _read_events(name: str, complete: bytes, call: UpstreamCall) -> tuple[Delta | None, bool]:
    """The loop runs once per streamed chunk, so it keeps to what accounting needs.

    The usual read holds one event of one data line; it is taken whole, without splitting.
    """
    if complete.startswith(b"data:") and complete.find(b"\n") == len(complete) - 2:
        lines: list[bytes] | tuple[bytes] = (complete[:-2],)
    else:
        lines = complete.splitlines()
    text = ""
    tool_calls: list[dict[str, Any]] | None = None
    finish: str | None = None
    usage: Usage | None = None
    drop: list[bytes] | None = None
    done = False
    loads = orjson.loads
    for line in lines:
        if not line:
            continue
        if not line.startswith(b"data:"):
            # comments, event:, id:, retry: - OpenAI clients choke on some
            drop = [line] if drop is None else [*drop, line]
            continue
        try:
            event = loads(line[5:])
        except orjson.JSONDecodeError:
            if line[5:].strip() == _DONE:
                drop = [line] if drop is None else [*drop, line]
                done = True
                continue
            event = None
        if type(event) is not dict:
            raise _BadLine(line, UpstreamError(f"upstream '{name}' sent malformed data"))
        if "error" in event:
            message = _error_message(line[5:])
            raise _BadLine(line, UpstreamError(f"upstream '{name}' reported: {message}"))
        if event.get("usage"):
            usage = _usage(event["usage"])
            if not event.get("choices") and not call.client_usage:
                drop = [line] if drop is None else [*drop, line]
        try:
            for choice in event.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if delta is not None:
                    content = delta.get("content")
                    if content:
                        text = text + content if text else content
                    if delta.get("tool_calls"):
                        tool_calls = [*(tool_calls or ()), *delta["tool_calls"]]
                elif choice.get("text"):
                    text += choice["text"]
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        except (AttributeError, TypeError):
            raise _BadLine(line, UpstreamError(f"upstream '{name}' sent malformed data")) from None
    raw: bytes | None = None
    if call.wants_raw:
        raw = complete if drop is None else _without(complete, drop) or None
    if not text and tool_calls is None and finish is None and usage is None and raw is None:
        return None, done
    # Positional: keyword arguments cost a chunk twice as much to build.
    return Delta(text, tool_calls, raw, finish, usage), done


def _without(complete: bytes, drop: list[bytes]) -> bytes:
    """The events again without the lines in ``drop``.

    Usually those are the usage chunk and ``[DONE]``, whole events at the very end: then the
    events before them are kept as they came. Otherwise every event that is kept is written
    again as one data line."""
    cut = complete.find(drop[0])
    if (
        cut >= 0
        and (cut == 0 or complete.endswith(b"\n\n", 0, cut))
        and [line for line in complete[cut:].splitlines() if line] == drop
    ):
        return complete[:cut]
    gone = set(drop)
    return b"".join(
        line + b"\n\n"
        for line in complete.splitlines()
        if line.startswith(b"data:") and line not in gone
    )
