"""The shapes of the OpenAI-compatible and compatibility routes, for the API description only.

Those routes parse their bodies by hand (they are the hot path, or must answer in an old
program's own error shape), so these models never see a request: they exist so that
``/openapi.json`` tells clients, code generators and fuzzers what the routes accept and answer.
Each model allows fields it does not name, as the routes do (OpenAI parameters are passed on
to the upstream as they came).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_OPEN = ConfigDict(extra="allow")


# ---- OpenAI requests ------------------------------------------------------------------------


class TextPart(BaseModel):
    model_config = _OPEN
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    model_config = _OPEN
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    model_config = _OPEN
    type: Literal["image_url"]
    image_url: ImageUrl


class FunctionCall(BaseModel):
    model_config = _OPEN
    name: str
    arguments: str = Field(description="The arguments as a JSON text.")


class ToolCall(BaseModel):
    model_config = _OPEN
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(BaseModel):
    """One message of the conversation so far."""

    model_config = _OPEN
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    model_config = _OPEN
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="The function's arguments as a JSON Schema object."
    )


class Tool(BaseModel):
    model_config = _OPEN
    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(BaseModel):
    model_config = _OPEN
    type: Literal["function"]
    function: dict[str, str] = Field(examples=[{"name": "get_weather"}])


class StreamOptions(BaseModel):
    model_config = _OPEN
    include_usage: bool | None = Field(
        default=None, description="Add a last chunk with the reply's token counts."
    )


class _Common(BaseModel):
    model_config = _OPEN
    model: str = Field(min_length=1, examples=["demo"], description="A name from /v1/models.")
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="chatgate: store the exchange in this conversation (`new` starts one); "
        "send only the new message, the history comes from the stored tree.",
    )
    parent_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="chatgate: the message to continue from (default: the current leaf).",
    )


class ChatCompletionRequest(_Common):
    """``POST /v1/chat/completions``. Other OpenAI parameters are passed to the upstream."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None


class CompletionRequest(_Common):
    """``POST /v1/completions`` (the legacy text completions)."""

    prompt: str | list[str] = Field(examples=["Say this is a test"])
    best_of: int | None = Field(default=None, ge=1)


# ---- OpenAI answers -------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class _Ids(BaseModel):
    """chatgate's ids of a stored exchange; present when the request named a conversation."""

    conversation_id: str | None = None
    message_id: str | None = Field(default=None, description="The reply: continue from it.")
    parent_id: str | None = Field(default=None, description="The question.")


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class ChatCompletion(_Ids):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ChunkToolCall(BaseModel):
    model_config = _OPEN
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: dict[str, str] | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class ChatCompletionChunk(_Ids):
    """One ``data:`` event of a streamed chat reply; the stream ends with ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None


class Completion(_Ids):
    """A text completion, or one ``data:`` event of a streamed one."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """Every error of the OpenAI-compatible routes, also as a ``data:`` event mid-stream."""

    error: ErrorDetail


# ---- the older programs' protocols -----------------------------------------------------------


class ChatApiLogin(BaseModel):
    model_config = _OPEN
    u: str = Field(description="User name.")
    p: str = Field(description="Password.")


class ChatApiToken(BaseModel):
    username: str
    token: str
    expiration_time: str = Field(examples=["2026-12-22 10:00:00"])


class ChatApiTokenAnswer(BaseModel):
    statu: Literal[True]
    message: ChatApiToken


class ChatApiAnswer(BaseModel):
    statu: Literal[True]
    message: str = Field(description="The model's reply.")


class ChatApiError(BaseModel):
    statu: Literal[False]
    message: str


class EasyBackendAsk(BaseModel):
    model_config = _OPEN
    prompt: str = Field(min_length=1)
    parent_id: str | None = Field(
        default=None, max_length=64, description="The reply to continue from; `new` or null."
    )


class EasyBackendAnswer(BaseModel):
    message: str
    conversation_id: str
    parent_id: str = Field(description="The reply's id: send it back to continue from it.")


class EasyBackendError(BaseModel):
    detail: str


MODELS: tuple[type[BaseModel], ...] = (
    ChatCompletionRequest,
    CompletionRequest,
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    Model,
    ModelList,
    OpenAIError,
    ChatApiLogin,
    ChatApiTokenAnswer,
    ChatApiAnswer,
    ChatApiError,
    EasyBackendAsk,
    EasyBackendAnswer,
    EasyBackendError,
)
