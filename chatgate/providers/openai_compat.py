"""Any OpenAI-compatible model server (OpenAI, Azure OpenAI, DeepSeek, Ollama, vLLM, ...).

One pooled keep-alive aiohttp session per provider, created once. Streamed replies are relayed
as the upstream sent them, cut at event boundaries; a copy of each event is parsed with orjson
only for what accounting needs (text, tool calls, finish reason, usage). Those values are
checked and bounded here, at the edge, before anything counts, shows or stores them; a piece
whose values had to be replaced is not relayed in the upstream's own bytes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import aiohttp_socks
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

# Every way of not getting a connection to the upstream at all (refused, DNS, TLS, a proxy that
# is down or refuses, a connect timeout): each is "could not reach", retried and fallen back.
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ClientHttpProxyError,
    aiohttp.InvalidURL,
    aiohttp_socks.ProxyError,
    aiohttp_socks.ProxyConnectionError,
    aiohttp_socks.ProxyTimeoutError,
)
# What may go wrong once connected: the connection dropped, a broken HTTP answer, a reset.
_EXCHANGE_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError)
_READ_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *_EXCHANGE_ERRORS)

# What an upstream may set in an error object, and what it may not (it is shown to clients and
# stored): short identifiers only.
_IDENT = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
_MESSAGE_LIMIT = 2000


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
        seconds = float(value) * scale
    except ValueError:
        return None
    return min(seconds, 86_400.0) if seconds >= 0.0 else None  # not NaN, nor negative


def _openai_error(body: bytes) -> dict[str, Any] | None:
    """The upstream's error when it is one a model server writes (``{"error": {"message": …,
    "type": …, "code": …, "param": …}}``, or the plain ``{"error": "…"}`` some servers send);
    None for anything else (an HTML page, a proxy's own answer)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err
    if isinstance(err, str):
        return {"message": err}
    if isinstance(data.get("message"), str):
        return {"message": data["message"]}
    return None


def _ident(value: Any) -> str | None:
    return value if isinstance(value, str) and _IDENT.fullmatch(value) else None


def _redacted(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def upstream_status_error(
    name: str, status: int, body: bytes, headers: Any, secrets: list[str] | None = None
) -> ChatgateError:
    """Translate an upstream HTTP error into what our client should be told.

    An OpenAI-shaped error keeps its message, ``type``, ``code`` and ``param`` (clients branch
    on ``context_length_exceeded``). Anything else (an HTML page, a proxy's answer) may be an
    internal page: it is logged for the operator and the client is told only who failed how.
    """
    err = _openai_error(body)
    if err is None or status in (401, 403):
        text = body[:_MESSAGE_LIMIT].decode(errors="replace").strip()
        log.warning(
            "upstream %r answered HTTP %s: %s", name, status, _redacted(text, secrets or [])
        )
    if status in (401, 403):
        return UpstreamMisconfigured(
            f"The gateway's credentials for upstream '{name}' were refused; "
            "an operator must fix the configuration."
        )
    hidden = "details are in the server log"
    message = str(err["message"])[:_MESSAGE_LIMIT] if err is not None else hidden
    exc: ChatgateError
    if status == 429:
        exc = UpstreamRateLimited(
            f"Upstream '{name}' is rate limiting: {message}", retry_after=_retry_after(headers)
        )
    elif status >= 500:
        exc = UpstreamUnavailable(f"Upstream '{name}' failed with HTTP {status}: {message}")
        # Only these say "try again"; a 501 or 505 will answer the same the next time.
        exc.retryable = status in _RETRYABLE_5XX
    else:
        if err is None:
            message = f"Upstream '{name}' answered HTTP {status}; {hidden}."
        if status == 404:
            exc = ModelNotFound(message)
        else:
            exc = UpstreamRejected(message, status=status if status in (400, 413, 422) else 400)
    if err is not None:
        _keep_upstream_kind(exc, err)
    return exc


def _keep_upstream_kind(exc: ChatgateError, err: dict[str, Any]) -> None:
    """The upstream's own ``type``, ``code`` and ``param``, where it gave sound ones."""
    kind, code, param = _ident(err.get("type")), _ident(err.get("code")), _ident(err.get("param"))
    if kind is not None:
        exc.error_type = kind
    if code is not None:
        exc.code = code
        if code == "insufficient_quota":
            exc.retryable = False  # the upstream account is out of credit: asking again won't do
    if param is not None:
        exc.param = param


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
                try:
                    connector = aiohttp_socks.ProxyConnector.from_url(
                        proxy, limit=0, keepalive_timeout=30
                    )
                except ValueError as exc:
                    raise UpstreamMisconfigured(
                        f"The proxy of upstream '{self.name}' is not a usable URL; "
                        "an operator must fix the configuration."
                    ) from exc
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
                    raise upstream_status_error(
                        self.name, resp.status, body, resp.headers, self._keys
                    )
            data = orjson.loads(body).get("data") or []
            return [str(m["id"])[:256] for m in data if isinstance(m, dict) and "id" in m]
        except ChatgateError:
            raise
        except _CONNECT_ERRORS as exc:
            raise UpstreamUnavailable(f"could not connect to upstream '{self.name}'") from exc
        except _READ_ERRORS as exc:
            raise UpstreamUnavailable(f"upstream '{self.name}' did not list its models") from exc
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise UpstreamError(f"upstream '{self.name}' sent a malformed model list") from exc

    async def stream(self, call: UpstreamCall) -> AsyncGenerator[Delta, None]:
        body = dict(call.body)
        streaming = bool(body.get("stream"))
        if not self.config.takes_reasoning_effort:
            body.pop("reasoning_effort", None)
        if streaming and call.path != "responses":
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
        if call.deadline is not None and call.deadline < end:
            end = call.deadline
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
        except _CONNECT_ERRORS as exc:
            raise self._unreachable(exc) from exc
        except TimeoutError as exc:
            raise self._stalled(first, first, end) from exc
        except _EXCHANGE_ERRORS as exc:
            raise UpstreamUnavailable(
                f"upstream '{self.name}' dropped the connection before answering"
            ) from exc
        async with resp:
            if resp.status != 200:
                try:
                    async with asyncio.timeout_at(end):
                        raw = await resp.read()
                except _READ_ERRORS:
                    raw = b""
                raise upstream_status_error(self.name, resp.status, raw, resp.headers, self._keys)
            async for delta in self._relay(resp, call, first, end):
                yield delta

    def _unreachable(self, exc: BaseException) -> UpstreamError:
        """No connection at all: the cause is logged for the operator (the client learns only
        that the upstream could not be reached). No connection within ``connect`` seconds is a
        timeout, which the router does not ask of the same deployment again."""
        log.warning("could not reach upstream %r: %s: %s", self.name, type(exc).__name__, exc)
        if isinstance(exc, (aiohttp.ConnectionTimeoutError, aiohttp_socks.ProxyTimeoutError)):
            return UpstreamTimeout(f"could not reach upstream '{self.name}' in time")
        return UpstreamUnavailable(f"could not reach upstream '{self.name}'")

    async def _whole(self, url: str, payload: bytes, call: UpstreamCall, until: float) -> Delta:
        """A reply that is not streamed: asked and read under one deadline."""
        return whole_reply(self.name, await self._post(url, payload, until), call.wants_raw)

    async def embed(self, body: dict[str, Any], deadline: float | None) -> Any:
        """The upstream's answer to ``POST {base}/embeddings``, decoded (checked by the caller)."""
        model = body.get("model")
        if self.config.kind == "azure-openai":
            body = {k: v for k, v in body.items() if k != "model"}
        url = self._url("embeddings", model if isinstance(model, str) else None)
        end = asyncio.get_running_loop().time() + self.config.timeouts.total
        raw = await self._post(url, orjson.dumps(body), min(end, deadline or end))
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            error = UpstreamError(f"upstream '{self.name}' sent malformed embeddings")
            error.retryable = False
            raise error from exc

    async def _post(self, url: str, payload: bytes, until: float) -> bytes:
        """The body of a 200 answer to a POST, asked and read under one deadline."""
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
                        except _EXCHANGE_ERRORS:
                            raw = b""
                        raise upstream_status_error(
                            self.name, resp.status, raw, resp.headers, self._keys
                        )
                    raw = await resp.read()
        except _CONNECT_ERRORS as exc:
            raise self._unreachable(exc) from exc
        except TimeoutError as exc:
            raise self._stalled(until, until, until) from exc
        except _EXCHANGE_ERRORS as exc:
            what = "broke off its answer" if reached else "dropped the connection before answering"
            raise UpstreamUnavailable(f"upstream '{self.name}' {what}") from exc
        return raw

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
        parse = _parse_events
        if call.path == "responses":
            from chatgate.providers.responses_relay import parse  # the module imports this one
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
                    delta, ended = parse(self.name, complete, call)
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
        """The timeout for a read that did not come by ``deadline``. Once the total time (or
        the request's deadline) is used up, trying again cannot help: it is not retried."""
        if deadline >= end:
            what = "took longer than its time limit"
        elif deadline == first:
            what = "stalled waiting for the first token"
        else:
            what = "stalled waiting for the next chunk"
        exc = UpstreamTimeout(f"upstream '{self.name}' {what}")
        exc.retryable = deadline < end
        return exc

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


# Bounds on what an upstream says, so that nothing it sends can break what is counted or stored.
MAX_TOKENS = 2**31 - 1
MAX_FINISH = 32
MAX_TOOL_CALLS = 128
MAX_TOOL_FIELD = 256
_FINISH = re.compile(rf"[a-z0-9_\-]{{1,{MAX_FINISH}}}")
_KNOWN_FINISH = frozenset(("stop", "length", "tool_calls", "content_filter", "function_call"))


def _usage(data: Any) -> Usage | None:
    """The upstream's token counts, if they can be trusted: whole numbers from 0 to
    ``MAX_TOKENS``. Otherwise None, and the reply's usage is estimated instead."""
    if not isinstance(data, dict):
        return None
    prompt = data.get("prompt_tokens", 0)
    completion = data.get("completion_tokens", 0)
    if (
        type(prompt) is not int
        or type(completion) is not int
        or not 0 <= prompt <= MAX_TOKENS
        or not 0 <= completion <= MAX_TOKENS
    ):
        log.warning("upstream usage not used (estimated instead): %.200r", data)
        return None
    return Usage(prompt, completion)


def _finish(value: Any) -> str | None:
    """A finish reason as stored and shown: a short lower-case word ("stop", "length", or a
    server's own such as "eos"); anything else that says "finished" becomes "stop"."""
    if type(value) is str:
        return value if value in _KNOWN_FINISH or _FINISH.fullmatch(value) else "stop"
    return "stop" if value else None


def _tool_calls(value: Any) -> list[dict[str, Any]]:
    """Tool calls as relayed and stored: a bounded list of dicts with bounded fields (what
    does not fit is left out). Raises ``TypeError`` for anything that is not such a list."""
    if type(value) is not list or len(value) > MAX_TOOL_CALLS:
        raise TypeError("tool_calls is not a list of calls")
    calls = []
    for call in value:
        if type(call) is not dict:
            raise TypeError("a tool call is not an object")
        clean: dict[str, Any] = {}
        index = call.get("index")
        if type(index) is int and 0 <= index < MAX_TOOL_CALLS:
            clean["index"] = index
        for field in ("id", "type"):
            text = call.get(field)
            if type(text) is str and len(text) <= MAX_TOOL_FIELD:
                clean[field] = text
        function = call.get("function")
        if type(function) is dict:
            fn: dict[str, str] = {}
            name = function.get("name")
            if type(name) is str and len(name) <= MAX_TOOL_FIELD:
                fn["name"] = name
            arguments = function.get("arguments")
            if type(arguments) is str:  # bounded by the event size limit
                fn["arguments"] = arguments
            clean["function"] = fn
        calls.append(clean)
    return calls


def whole_reply(name: str, raw: bytes, wants_raw: bool = False) -> Delta:
    """A reply that was not streamed, read and checked; ``UpstreamError`` when it is not a
    chat or completion reply. Trying again would get the same: it is not retried."""
    try:
        data = orjson.loads(raw)
        choice = data["choices"][0]
        if "message" in choice:
            message = choice["message"] or {}
            text = message.get("content")
            tools = message.get("tool_calls")
        else:
            text, tools = choice.get("text"), None
        if text is not None and type(text) is not str:
            raise TypeError("the reply's text is not a string")
        tool_calls = _tool_calls(tools) if tools else None
        given = choice.get("finish_reason")
        finish = _finish(given) or "stop"
        usage = _usage(data.get("usage"))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        error = UpstreamError(f"upstream '{name}' sent a malformed reply")
        error.retryable = False
        raise error from exc
    # A value that was replaced must not reach the client in the upstream's own body either.
    trusted = (
        (usage is not None or data.get("usage") is None)
        and (given is None or finish == given)
        and tool_calls == (tools or None)
    )
    return Delta(text or "", tool_calls, raw if wants_raw and trusted else None, finish, usage)


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
    rewrite = False  # a value was replaced: the client must not get the upstream's own bytes
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
            raise _BadLine(line, _stream_error(name, line[5:]))
        if event.get("usage"):
            usage = _usage(event["usage"])
            rewrite = rewrite or usage is None
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
                        if type(content) is not str:
                            raise TypeError
                        text = text + content if text else content
                    if delta.get("tool_calls"):
                        calls = _tool_calls(delta["tool_calls"])
                        rewrite = rewrite or calls != delta["tool_calls"]
                        tool_calls = [*(tool_calls or ()), *calls]
                elif choice.get("text"):
                    text += choice["text"]
                if choice.get("finish_reason"):
                    finish = _finish(choice["finish_reason"])
                    rewrite = rewrite or finish != choice["finish_reason"]
        except (AttributeError, TypeError):
            raise _BadLine(line, UpstreamError(f"upstream '{name}' sent malformed data")) from None
    raw: bytes | None = None
    if call.wants_raw and not rewrite:
        raw = complete if drop is None else _without(complete, drop) or None
    if not text and tool_calls is None and finish is None and usage is None and raw is None:
        return None, done
    # Positional: keyword arguments cost a chunk twice as much to build.
    return Delta(text, tool_calls, raw, finish, usage), done


def _stream_error(name: str, data: bytes) -> UpstreamError:
    """An error the upstream sent as an event, with its own type, code and param if sound."""
    err = _openai_error(data)
    message = str(err["message"])[:_MESSAGE_LIMIT] if err is not None else "no message"
    exc = UpstreamError(f"upstream '{name}' reported: {message}")
    if err is not None:
        _keep_upstream_kind(exc, err)
    return exc


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
