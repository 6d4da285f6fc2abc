"""The shapes of the Responses routes, for the API description only.

``POST /v1/responses`` parses its body by hand, as the other OpenAI routes do; these models
exist so that ``/openapi.json`` tells clients and fuzzers what the routes accept and answer.
They name the fields chatgate reads and forbid none it does not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

_EXAMPLES: list[JsonValue] = [
    {"model": "demo", "input": "Hello!"},
    {"model": "demo", "input": "And then?", "previous_response_id": "resp_…", "stream": True},
    {
        "model": "demo",
        "instructions": "Answer briefly.",
        "input": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "store": False,
    },
]


class ResponseRequest(BaseModel):
    """``POST /v1/responses``: translated to a chat request for any Chat Completions upstream.

    Hosted tools (``web_search`` and the like) are left out: no such upstream runs them; a
    ``namespace`` tool's functions are sent as ``namespace__name``.
    """

    model_config = ConfigDict(json_schema_extra={"examples": _EXAMPLES})
    model: str = Field(min_length=1, description="A name from /v1/models.")
    input: str | list[dict[str, Any]] = Field(
        description="Text, or items: messages (`user`, `assistant`, `system`, `developer`), "
        "`function_call` and `function_call_output`."
    )
    instructions: str | None = None
    previous_response_id: str | None = Field(
        default=None, description="Continue from this stored response (its tree's message)."
    )
    conversation: str | dict[str, Any] | None = Field(
        default=None, description="Continue this conversation from its current message."
    )
    store: bool = Field(default=True, description="false: keep nothing but the usage record.")
    stream: bool = Field(default=False, description="Answer with the Responses event stream.")
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    text: dict[str, Any] | None = Field(
        default=None, description="`format` json_schema / json_object becomes `response_format`."
    )
    reasoning: dict[str, Any] | None = Field(
        default=None, description="Its `effort` is sent as `reasoning_effort`."
    )
    truncation: Literal["auto", "disabled"] | None = Field(
        default=None,
        description="`auto` drops the oldest turns to fit the context window; `disabled` "
        "(the default) refuses an input too long for a configured window.",
    )
    background: bool | None = Field(
        default=None, description="Run detached from the connection (needs `store`)."
    )
    include: list[str] | None = Field(default=None, description="Accepted, not sent on.")
    prompt_cache_key: str | None = Field(default=None, description="Accepted, not sent on.")
    client_metadata: dict[str, Any] | None = Field(
        default=None, description="Accepted, not sent on."
    )


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int


class ResponseObject(BaseModel):
    """A Response; a stored one's id is ``resp_`` and its reply message's id."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]
    model: str
    output: list[dict[str, Any]]
    usage: ResponseUsage | None = None
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    previous_response_id: str | None = None
    conversation: dict[str, Any] | None = None
    background: bool | None = None
    metadata: dict[str, str] | None = None


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response.deleted"]
    deleted: bool


class ResponseItemList(BaseModel):
    object: Literal["list"]
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ResponseStreamEvent(BaseModel):
    """One event of a streamed response; ``type`` is also the SSE ``event:`` name."""

    type: str
    sequence_number: int


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ResponseRequest,
    ResponseObject,
    ResponseDeleted,
    ResponseItemList,
    ResponseStreamEvent,
)
