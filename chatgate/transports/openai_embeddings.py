"""OpenAI's ``POST /v1/embeddings``: vectors for texts, from any provider that serves them.

Thin: the body is read, ``EmbeddingService`` routes, limits and counts the request, and the
vectors are written back as floats or, with ``encoding_format: base64``, as the base64 of their
little-endian float32 bytes (what OpenAI's SDKs ask for by default).
"""

from __future__ import annotations

import base64
import struct
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from chatgate.core.accounts import Principal
from chatgate.core.embeddings import MAX_DIMENSIONS, EmbeddingRequest, Embeddings
from chatgate.transports.account_schemas import Incoming
from chatgate.transports.http_common import (
    StrictRoute,
    authenticate,
    json_response,
    rate_headers,
    services_of,
)

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], route_class=StrictRoute)
Caller = Annotated[Principal, Depends(authenticate)]


class EmbeddingsRequest(Incoming):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="a text, texts, or token ids (each list of ids is one input)"
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    user: str | None = Field(default=None, max_length=256)


class EmbeddingObject(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of float32 bytes")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingObject]
    model: str
    usage: EmbeddingUsage


def packed(vector: list[float]) -> str:
    """A vector as OpenAI's base64 encoding: little-endian float32 values."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def rendered(result: Embeddings, encoding: str) -> dict[str, object]:
    encode = packed if encoding == "base64" else None
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
        for i, v in enumerate(result.vectors)
    ]
    tokens = result.usage.prompt_tokens
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": result.model, "usage": usage}


@router.post("/embeddings", response_model=EmbeddingList, summary="Vectors for texts")
async def create_embeddings(body: EmbeddingsRequest, request: Request, caller: Caller) -> Response:
    """Counted against the caller's limits like a chat request (one request, its tokens)."""
    checked = EmbeddingRequest.of(body.model, body.input, body.dimensions)
    result = await services_of(request).embeddings.create(caller, checked)
    headers = rate_headers(result.reservation.facts)
    return json_response(rendered(result, body.encoding_format), headers=headers)
