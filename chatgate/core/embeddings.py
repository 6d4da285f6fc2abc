"""Embeddings: one request of vectors for texts, routed, limited and counted like a chat reply.

The caller's quota is reserved before the upstream is asked, one usage row is kept for every
request (with the upstream's token count, or an estimate), and the reservation is settled
however the request ends. The vectors come from the model's deployments in turn
(``ModelRegistry.embed``), so fallbacks and circuit breakers apply as they do to chat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chatgate.core.accounts import Principal
from chatgate.core.errors import ChatgateError, InvalidRequest, LimitExceeded, UpstreamError
from chatgate.core.events import Usage
from chatgate.core.metrics import Metrics
from chatgate.core.quotas import QuotaService, Reservation
from chatgate.core.sizes import message_too_long
from chatgate.core.tokens import estimate_tokens
from chatgate.core.usage import Outcome, UsageRecorder
from chatgate.providers.router import ModelRegistry, ModelRoute, Served
from chatgate.settings import Settings

MAX_INPUTS = 2048
MAX_DIMENSIONS = 8192
MAX_TOKEN_ID = 2**31 - 1

EmbeddingInput = str | list[str] | list[int] | list[list[int]]


def embedding_texts(value: Any) -> list[str]:
    """The texts of an ``input``: a string, a list of strings, a list of token ids or a list
    of such lists (token ids stand for themselves, written out as text). Anything else, an
    empty text or more than ``MAX_INPUTS`` inputs is refused."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(type(t) is int for t in value):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidRequest("'input' must be a string or an array of strings.", param="input")
    if not items or len(items) > MAX_INPUTS:
        raise InvalidRequest(f"'input' must hold 1 to {MAX_INPUTS} inputs.", param="input")
    return [_text(item) for item in items]


def _text(item: Any) -> str:
    if isinstance(item, str) and item:
        return item
    if (
        isinstance(item, list)
        and item
        and all(type(t) is int and 0 <= t <= MAX_TOKEN_ID for t in item)
    ):
        return " ".join(str(t) for t in item)
    raise InvalidRequest(
        "Each input must be a non-empty string or a non-empty array of token ids.", param="input"
    )


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    input: EmbeddingInput
    texts: list[str]
    dimensions: int | None = None

    @classmethod
    def of(cls, model: Any, value: Any, dimensions: Any = None) -> EmbeddingRequest:
        """A checked request from a body's fields."""
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", param="model")
        if dimensions is not None and (
            type(dimensions) is not int or not 1 <= dimensions <= MAX_DIMENSIONS
        ):
            raise InvalidRequest(
                f"'dimensions' must be a whole number from 1 to {MAX_DIMENSIONS}.",
                param="dimensions",
            )
        return cls(model, value, embedding_texts(value), dimensions)


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    usage: Usage
    model: str
    reservation: Reservation


def read_vectors(answer: Any, count: int, provider: str) -> tuple[list[list[float]], Usage | None]:
    """The vectors of an upstream's answer, in input order, and its token count if it gave
    one; ``UpstreamError`` when the answer is not ``count`` float vectors."""
    try:
        data = sorted(answer["data"], key=lambda item: item["index"])
        vectors = [item["embedding"] for item in data]
        if len(vectors) != count or not all(
            isinstance(v, list) and all(type(x) in (float, int) for x in v) for v in vectors
        ):
            raise TypeError("not one vector of numbers per input")
    except (KeyError, TypeError, AttributeError) as exc:
        error = UpstreamError(f"upstream '{provider}' sent malformed embeddings")
        error.retryable = False
        raise error from exc
    usage = answer.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    known = Usage(tokens, 0) if type(tokens) is int and tokens >= 0 else None
    return [[float(x) for x in v] for v in vectors], known


class EmbeddingService:
    def __init__(
        self,
        models: ModelRegistry,
        quotas: QuotaService,
        usage: UsageRecorder,
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self.models = models
        self.quotas = quotas
        self.usage = usage
        self.metrics = metrics
        self.settings = settings

    async def create(self, principal: Principal, request: EmbeddingRequest) -> Embeddings:
        """The vectors of ``request``'s inputs, taken from the caller's quota."""
        if any(len(text) > self.settings.max_message_chars for text in request.texts):
            raise message_too_long(self.settings, param="input")
        route = self.models.resolve(request.model, principal)
        try:
            reservation = await self.quotas.reserve(principal, route.name)
        except LimitExceeded as exc:
            self.usage.refused(principal, route.name, exc.code)
            raise
        books = _Books(self, principal, route, reservation)
        body: dict[str, Any] = {"model": route.name, "input": request.input}
        body["encoding_format"] = "float"
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        try:
            answer = await self.models.embed(route, body, books.served)
            vectors, usage = read_vectors(answer, len(request.texts), books.served.provider or "")
        except ChatgateError as exc:
            books.settle("error", Usage(), exc)
            raise
        except BaseException:
            books.settle("cancelled", Usage(), None)
            raise
        usage = usage or Usage(sum(estimate_tokens(t) for t in request.texts), estimated=True)
        books.settle("ok", usage, None)
        return Embeddings(vectors, usage, route.name, reservation)


class _Books:
    """The usage row and the reservation of one embeddings request, settled once."""

    def __init__(
        self, service: EmbeddingService, principal: Principal, route: ModelRoute, r: Reservation
    ) -> None:
        self.service = service
        self.route = route
        self.reservation = r
        self.entry = service.usage.begin(principal, route.name, r.day)
        self.served = Served()
        self.started = time.perf_counter()

    def settle(self, status: str, usage: Usage, error: ChatgateError | None) -> None:
        counted = status == "ok"
        self.reservation.settle(counted=counted, tokens=usage.total_tokens)
        outcome = Outcome(
            model=self.route.name,
            provider=self.served.provider,
            status=status,
            usage=usage,
            counted=counted,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            error_code=error.code if error else None,
            cost=usage.prompt_tokens * self.route.config.input_price / 1_000_000,
        )
        self.service.usage.record(self.entry, outcome)
        self.service.metrics.observe(outcome)
