"""What every provider is: one streaming call over an OpenAI-shaped body, plus a model list.

The body is what the OpenAI API would receive; a provider for another wire format translates
it in its own module. A provider yields ``Delta`` pieces and sets ``finish_reason``/``usage`` on
the piece that carried them. It raises ``ChatgateError``s only, before or during the stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from chatgate.core.events import Delta


@dataclass(slots=True)
class UpstreamCall:
    """One call to a provider. ``path`` is ``chat/completions`` or ``completions``.

    ``deadline`` (event-loop time) is when the whole request must be over, whatever the
    provider's own timeouts would allow: later tries get only what earlier ones left."""

    body: dict[str, Any]
    path: str = "chat/completions"
    wants_raw: bool = False
    client_usage: bool = False
    deadline: float | None = None


class Provider(Protocol):
    name: str

    def stream(self, call: UpstreamCall) -> AsyncGenerator[Delta, None]: ...

    async def list_models(self) -> list[str]: ...

    async def close(self) -> None: ...


@runtime_checkable
class Embedder(Protocol):
    """A provider that also serves embeddings: ``body`` is OpenAI's embeddings request, the
    answer its decoded reply. ``deadline`` (event-loop time) bounds the whole call."""

    async def embed(self, body: dict[str, Any], deadline: float | None) -> Any: ...
