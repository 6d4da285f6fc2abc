"""The API description at ``/openapi.json`` and the pages that show it, ``/docs`` and ``/redoc``.

FastAPI describes the routes it handles (``/api/v1/...``). The OpenAI-compatible routes and the
older programs' routes are plain Starlette routes, so their operations are written here and
merged into FastAPI's document once, on first use. The pages load Swagger UI and ReDoc from
the installed ``fastapi_offline`` package (Swagger UI 5, which reads OpenAPI 3.1), so they work
on a machine with no internet access.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from chatgate.core.validation import FLAGS, NUMBERS
from chatgate.transports.openapi_schemas import MODELS
from chatgate.transports.responses_schemas import RESPONSE_MODELS

ASSETS = "/docs/assets"
_REF = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session_cookie": []}]

_WEBSOCKETS = """

## WebSocket endpoints

OpenAPI cannot describe them; they take the same keys and login tokens as the HTTP routes
(`Authorization: Bearer …` on the handshake, or `?token=…`).

- **`/api/v1/ws`**, the native protocol: JSON text frames, several requests at once told apart
  by `id`. Send `{"type": "chat", "id", "model", "messages" | "prompt", "conversation_id",
  "parent_id", …}`, `{"type": "cancel", "id"}` or `{"type": "ping", "id"}`; receive
  `{"type": "delta", "id", "text"}` pieces, then `{"type": "done", "id", "conversation_id",
  "message_id", "parent_id", "finish_reason", "model", "usage"}` or
  `{"type": "error", "id", "code", "message"}`. A first frame `{"type": "auth", "token"}` also
  authenticates.
- **`/compat/ws/seq`**, the seq protocol: send `{"seq", "data": {"query" | "messages",
  "model", …}}`; receive `{"code", "msg", "seq", "data": {"consume_time", "finish_reason",
  "contents"}}` frames, the last one with a `finish_reason`.
- **`/compat/ws/ask`**, the ask protocol: send `<|ask|>$CONVERSATION$PARENT$PROMPT` (`new`
  starts a conversation); receive text pieces, then `<|end|>$conversation_id$parent_id`, or
  `<|err|>$reason`.
"""


# ---- the pages ------------------------------------------------------------------------------


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _pages(app: FastAPI) -> list[Route]:
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    async def swagger(request: Request) -> Response:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            oauth2_redirect_url=root + redirect_url,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def redirect(request: Request) -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> Response:
        root = _root(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    return [
        Route("/docs", swagger, methods=["GET"]),
        Route(redirect_url, redirect, methods=["GET"]),
        Route("/redoc", redoc, methods=["GET"]),
    ]


# ---- the operations FastAPI does not know ---------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(schema: str, *statuses: int) -> dict[str, Any]:
    reasons = {
        400: "The request is malformed.",
        401: "No valid key or login token.",
        404: "No such model or conversation.",
        413: "The body is larger than `max_request_bytes`.",
        429: "A limit was reached (`retry-after`, `x-ratelimit-*` headers).",
        502: "The upstream failed.",
        503: "No upstream can take the request now.",
        504: "The upstream did not answer in time.",
    }
    return {str(status): _json(schema, reasons[status]) for status in statuses}


def _other(schema: str = "OpenAIError") -> dict[str, Any]:
    return {"default": _json(schema, "Any other refusal, in the same shape.")}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


_CALL_ERRORS = (400, 401, 404, 413, 429, 502, 503, 504)


def _event(chunk: str) -> dict[str, Any]:
    """One server-sent event of a streamed reply (OpenAPI before 3.2 describes an event stream
    by the schema of each event): its ``data`` is a chunk, an error, or the closing ``[DONE]``."""
    payload = {"anyOf": [_ref(chunk), _ref("OpenAIError")]}
    json_data = {"type": "string", "contentMediaType": "application/json"}
    return {
        "type": "object",
        "description": f"Each `data:` is a `{chunk}`, or one `OpenAIError` if the reply fails "
        "mid-stream; a reply that finished ends with `data: [DONE]`.",
        "required": ["data"],
        "properties": {
            "data": {"anyOf": [{"const": "[DONE]"}, {**json_data, "contentSchema": payload}]}
        },
    }


def _generation(answer: str, chunk: str, summary: str, request: str, op_id: str) -> dict[str, Any]:
    ok = _json(answer, "The reply, or with `stream: true` its server-sent events.")
    ok["content"]["text/event-stream"] = {"schema": _event(chunk)}
    return {
        "post": {
            "tags": ["OpenAI-compatible"],
            "summary": summary,
            "operationId": op_id,
            "requestBody": _body(request),
            "responses": {"200": ok, **_errors("OpenAIError", *_CALL_ERRORS), **_other()},
            "security": _SECURITY,
        }
    }


def _model_paths() -> dict[str, Any]:
    model = {
        "name": "model",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "A model name; it may contain `/`.",
    }
    return {
        "/v1/models": {
            "get": {
                "tags": ["OpenAI-compatible"],
                "summary": "The models this caller may use, aliases included",
                "operationId": "listModels",
                "responses": {
                    "200": _json("ModelList", "The models."),
                    **_errors("OpenAIError", 401),
                    **_other(),
                },
                "security": _SECURITY,
            }
        },
        "/v1/models/{model}": {
            "get": {
                "tags": ["OpenAI-compatible"],
                "summary": "One model",
                "operationId": "retrieveModel",
                "parameters": [model],
                "responses": {
                    "200": _json("Model", "The model."),
                    **_errors("OpenAIError", 401, 404),
                    **_other(),
                },
                "security": _SECURITY,
            }
        },
    }


def _compat_paths() -> dict[str, Any]:
    tags = ["compatibility"]
    return {
        "/token": {
            "post": {
                "tags": tags,
                "summary": "ChatAPI: a login token (201 new, 200 the same one while valid)",
                "operationId": "chatapiToken",
                "requestBody": _body("ChatApiLogin"),
                "responses": {
                    "200": _json("ChatApiTokenAnswer", "The token that is still valid."),
                    "201": _json("ChatApiTokenAnswer", "A new token."),
                    **_errors("ChatApiError", 400, 401, 413, 429),
                    **_other("ChatApiError"),
                },
                "security": [],
            }
        },
        "/api": {
            "get": {
                "tags": tags,
                "summary": "ChatAPI: ask `compat_model` one question",
                "operationId": "chatapiAsk",
                "parameters": [
                    {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json("ChatApiAnswer", "The reply."),
                    **_errors("ChatApiError", 400, 401, 429, 502),
                    **_other("ChatApiError"),
                },
                "security": [{"bearer": []}],
            }
        },
        "/ask/{conversation_id}": {
            "post": {
                "tags": tags,
                "summary": "EasyBackend: ask in a conversation (`new` starts one)",
                "operationId": "easybackendAsk",
                "parameters": [
                    {
                        "name": "conversation_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": _body("EasyBackendAsk"),
                "responses": {
                    "200": _json("EasyBackendAnswer", "The reply and the ids to continue."),
                    **_errors("EasyBackendError", *_CALL_ERRORS),
                    **_other("EasyBackendError"),
                },
                "security": _SECURITY,
            }
        },
    }


def _operations_paths() -> dict[str, Any]:
    status = {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    }

    def probe(summary: str, op_id: str, responses: dict[str, str]) -> dict[str, Any]:
        answers = {
            code: {"description": text, "content": {"application/json": {"schema": status}}}
            for code, text in responses.items()
        }
        get = {"tags": ["operations"], "summary": summary, "operationId": op_id}
        return {"get": {**get, "responses": answers, "security": []}}

    text = {"text/plain": {"schema": {"type": "string"}}}
    metrics = {"200": {"description": "Prometheus text format.", "content": text}}
    return {
        "/healthz": probe("The process is up", "health", {"200": "Up."}),
        "/readyz": probe(
            "The service can serve requests",
            "readiness",
            {"200": "Ready.", "503": "Not ready; `status` says why."},
        ),
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": metrics,
                "security": [],
            }
        },
    }


def _responses_paths() -> dict[str, Any]:
    """OpenAI's Responses routes, over chatgate's conversation trees."""
    stream = {
        "type": "object",
        "description": "Each event is named by its `type` (`event:`), its `data` a "
        "`ResponseStreamEvent` with a `sequence_number`.",
        "properties": {"data": {"type": "string", "contentMediaType": "application/json"}},
    }
    ok = _json("ResponseObject", "The response, or with `stream: true` its events.")
    ok["content"]["text/event-stream"] = {"schema": stream}
    rid = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}
    tags = ["OpenAI-compatible"]

    def one(summary: str, op_id: str, answer: str, **more: Any) -> dict[str, Any]:
        return {
            "tags": tags,
            "summary": summary,
            "operationId": op_id,
            "parameters": [rid, *more.get("query", [])],
            "responses": {
                "200": _json(answer, summary + "."),
                **_errors("OpenAIError", 400, 401, 404),
                **_other(),
            },
            "security": _SECURITY,
        }

    query = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
        {"name": "after", "in": "query", "schema": {"type": "string"}},
    ]
    resume = [
        {"name": "stream", "in": "query", "schema": {"type": "boolean"}},
        {"name": "starting_after", "in": "query", "schema": {"type": "integer", "minimum": -1}},
    ]
    retrieve = one(
        "A stored response, running or finished; with `stream=true` its events after "
        "`starting_after`, then live until it ends",
        "getResponse",
        "ResponseObject",
        query=resume,
    )
    retrieve["responses"]["200"]["content"]["text/event-stream"] = {"schema": stream}
    delete = one("Delete a stored response", "deleteResponse", "ResponseDeleted")
    delete["responses"]["409"] = _json("OpenAIError", "The response is still being written.")
    return {
        "/v1/responses": {
            "post": {
                "tags": tags,
                "summary": "A response (OpenAI's Responses API) from any chat model",
                "operationId": "createResponse",
                "requestBody": _body("ResponseRequest"),
                "responses": {"200": ok, **_errors("OpenAIError", *_CALL_ERRORS), **_other()},
                "security": _SECURITY,
            }
        },
        "/v1/responses/{response_id}": {
            "get": retrieve,
            "delete": delete,
        },
        "/v1/responses/{response_id}/cancel": {
            "post": one("Cancel a background response", "cancelResponse", "ResponseObject")
        },
        "/v1/responses/{response_id}/input_items": {
            "get": one(
                "What a response answered", "listInputItems", "ResponseItemList", query=query
            )
        },
    }


def openai_paths() -> dict[str, Any]:
    """The OpenAI-compatible operations, which FastAPI does not describe."""
    return {
        **_responses_paths(),
        "/v1/chat/completions": _generation(
            "ChatCompletion",
            "ChatCompletionChunk",
            "A chat reply (OpenAI's chat completions)",
            "ChatCompletionRequest",
            "createChatCompletion",
        ),
        "/v1/completions": _generation(
            "Completion",
            "Completion",
            "A text completion (OpenAI's legacy completions)",
            "CompletionRequest",
            "createCompletion",
        ),
        **_model_paths(),
    }


def other_paths() -> dict[str, Any]:
    """The older programs' operations and the probes, which FastAPI does not describe."""
    return {**_compat_paths(), **_operations_paths()}


def _parameters() -> dict[str, Any]:
    """The OpenAI parameters the generation routes check, with the ranges they check."""
    properties: dict[str, Any] = {}
    for name, (low, high, whole) in NUMBERS.items():
        kind = "integer" if whole else "number"
        properties[name] = {"type": kind, "minimum": low, "maximum": high}
    for name in FLAGS:
        properties.setdefault(name, {"type": "boolean"})
    return properties


def extra_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation") for m in (*MODELS, *RESPONSE_MODELS)], ref_template=_REF
    )
    schemas: dict[str, Any] = top["$defs"]
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        schemas[name]["properties"] = {**_parameters(), **schemas[name]["properties"]}
    return schemas


# ---- putting it together --------------------------------------------------------------------


_ANY_ERROR = (
    "Any other refusal, in this shape: 401 without a valid credential, 403 for what needs an "
    "administrator, or for a login that must first choose a new password "
    "(`password_change_required`), 404 for what does not exist or is not the caller's, 409, "
    "413 for a body too large, 429 past a limit."
)


def _errors_as_answered(schema: dict[str, Any]) -> None:
    """FastAPI describes its 422 as ``{"detail": [...]}`` and no other refusal; chatgate
    answers every refusal of these routes in OpenAI's shape."""
    schemas = schema["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            invalid = responses.get("422")
            if invalid is not None:
                invalid["description"] = "A field is missing or has the wrong type."
                invalid["content"] = {"application/json": {"schema": _ref("OpenAIError")}}
            responses.setdefault("default", _json("OpenAIError", _ANY_ERROR))


def _extend(schema: dict[str, Any], public: frozenset[str]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    extra = extra_schemas()
    clash = set(schemas) & set(extra)
    if clash:
        raise RuntimeError(f"schema names used twice in the API description: {sorted(clash)}")
    schemas.update(extra)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key or login token."},
        "session_cookie": {"type": "apiKey", "in": "cookie", "name": "chatgate_session"},
    }
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            operation.setdefault("security", [] if path in public else _SECURITY)
    _errors_as_answered(schema)
    schema["paths"] = {**openai_paths(), **schema["paths"], **other_paths()}
    schema["info"]["description"] = schema["info"].get("description", "") + _WEBSOCKETS


def install(app: FastAPI, public: frozenset[str]) -> None:
    """Serve ``/docs`` and ``/redoc`` offline and describe every HTTP route in the document.

    ``public`` names the paths that need no credential. Create ``app`` with ``docs_url=None``
    and ``redoc_url=None``: the pages are added here.
    """
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _extend(generated(), public)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.router.routes.extend(_pages(app))
    assets = StaticFiles(packages=[("fastapi_offline", "static")])
    app.router.routes.append(Mount(ASSETS, app=assets, name="docs-assets"))
