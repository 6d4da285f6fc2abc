"""The shapes of the OpenAI-compatible and compatibility routes, for the API description only.

Those routes parse their bodies by hand (they are the hot path, or must answer in an old
program's own error shape), so these models never see a request: they exist so that
``/openapi.json`` tells clients, code generators and fuzzers what the routes accept and answer.
No model forbids fields it does not name (JSON Schema's default), as the routes take them:
OpenAI parameters are passed on to the upstream as they came.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from chatgate.core.validation import MAX_STOP, ROLES

_ROLES: list[JsonValue] = [*sorted(ROLES)]


# ---- OpenAI requests ------------------------------------------------------------------------


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    url: str
    detail: str | None = Field(default=None, examples=["auto"])


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: str | ImageUrl


class RefusalPart(BaseModel):
    type: Literal["refusal"]
    refusal: str


class InputAudio(BaseModel):
    data: str = Field(description="Base64-encoded audio.")
    format: str = Field(examples=["wav"])


class AudioPart(BaseModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(BaseModel):
    type: Literal["file"]
    file: dict[str, Any]


ContentPart = TextPart | ImagePart | RefusalPart | AudioPart | FilePart


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="The arguments as a JSON text.")


class ToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(BaseModel):
    """One message of the conversation so far. ``content`` may be left out or null only by an
    assistant message (one that made tool calls); a ``tool`` message names its call."""

    role: str = Field(json_schema_extra={"enum": _ROLES})
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="The function's arguments as a JSON Schema object."
    )


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: dict[str, str] = Field(examples=[{"name": "get_weather"}])


class StreamOptions(BaseModel):
    include_usage: bool | None = Field(
        default=None, description="Add a last chunk with the reply's token counts."
    )


class _Common(BaseModel):
    """What both generation routes take; the numeric parameters and flags they check (from
    ``chatgate.core.validation``) are added to the description beside these."""

    model: str = Field(min_length=1, examples=["demo"], description="A name from /v1/models.")
    stream: bool = Field(default=False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(default=None, max_length=MAX_STOP)
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


_CHAT_EXAMPLES: list[JsonValue] = [
    {"model": "demo", "messages": [{"role": "user", "content": "Hello!"}]},
    {
        "model": "demo",
        "stream": True,
        "messages": [{"role": "user", "content": "Name a tree."}],
        "conversation_id": "new",
    },
    {
        "model": "demo",
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        "tool_choice": "required",
    },
]


class ChatCompletionRequest(_Common):
    """``POST /v1/chat/completions``. Other OpenAI parameters are passed to the upstream."""

    model_config = ConfigDict(json_schema_extra={"examples": _CHAT_EXAMPLES})
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None


class CompletionRequest(_Common):
    """``POST /v1/completions`` (the legacy text completions)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model": "demo", "prompt": "Say this is a test"}]}
    )
    prompt: str | list[str] = Field(examples=["Say this is a test"])


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
    model_config = ConfigDict(json_schema_extra={"examples": [{"u": "alice", "p": "secret"}]})
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
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"prompt": "Hello!", "parent_id": None}]}
    )
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
