"""A model server that speaks OpenAI's Responses API (``POST /v1/responses``, streamed or
not), answering each request with the reply a test queued: output items (text, a function
call, a hosted web search), usage, or an HTTP error. It keeps no state and records every body
it gets. Its ids all start with ``up`` so a test can tell them from chatgate's."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

MODEL = "upstream-model"


@dataclass
class Reply:
    """One answer: output items, or ``status`` with an error message."""

    items: list[dict[str, Any]] = field(default_factory=list)
    usage: tuple[int, int] = (11, 7)
    status: int = 200
    incomplete: bool = False
    fails: bool = False
    """After its items, ``response.failed`` instead of ``response.completed``."""


def text(words: str) -> dict[str, Any]:
    return {"type": "message", "text": words}


def function_call(name: str, arguments: str, call_id: str = "call_1") -> dict[str, Any]:
    return {"type": "function_call", "name": name, "arguments": arguments, "call_id": call_id}


def web_search(query: str) -> dict[str, Any]:
    return {"type": "web_search_call", "query": query}


def failure(status: int, message: str = "the upstream is down") -> Reply:
    return Reply(status=status, items=[{"message": message}])


class _Writer:
    """One response's events, numbered as the upstream numbers them."""

    def __init__(self, reply: Reply, body: dict[str, Any]) -> None:
        self.reply = reply
        self.body = body
        self.sequence = 0
        self.events: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []

    def emit(self, kind: str, **data: Any) -> None:
        self.events.append({"type": kind, "sequence_number": self.sequence, **data})
        self.sequence += 1

    def response(self, status: str) -> dict[str, Any]:
        given, made = self.reply.usage
        data: dict[str, Any] = {
            "id": "resp_up_upstream",
            "object": "response",
            "created_at": 0,
            "status": status,
            "model": self.body.get("model"),
            "output": list(self.output),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": self.body.get("tools") or [],
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": self.body.get("instructions"),
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
        }
        if status != "in_progress":
            data["usage"] = {
                "input_tokens": given,
                "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                "output_tokens": made,
                "output_tokens_details": {"reasoning_tokens": 2},
                "total_tokens": given + made,
            }
        return data

    def write(self) -> None:
        self.emit("response.created", response=self.response("in_progress"))
        self.emit("response.in_progress", response=self.response("in_progress"))
        for index, spec in enumerate(self.reply.items):
            getattr(self, "_" + spec["type"])(index, spec)
        if self.reply.fails:
            failed = self.response("failed")
            failed["error"] = {"code": "server_error", "message": "the model crashed"}
            self.emit("response.failed", response=failed)
            return
        status = "incomplete" if self.reply.incomplete else "completed"
        self.emit(f"response.{status}", response=self.response(status))

    def _message(self, index: int, spec: dict[str, Any]) -> None:
        item_id = f"msg_up{index}"
        item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant"}
        self.emit("response.output_item.added", output_index=index, item={**item, "content": []})
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        self.emit("response.content_part.added", **where, part=part)
        words = spec["text"].split(" ")
        for n, word in enumerate(words):
            piece = word if n == 0 else " " + word
            self.emit("response.output_text.delta", **where, delta=piece, logprobs=[])
        self.emit("response.output_text.done", **where, text=spec["text"], logprobs=[])
        part = {**part, "text": spec["text"]}
        self.emit("response.content_part.done", **where, part=part)
        done = {**item, "status": "completed", "content": [part]}
        self.output.append(done)
        self.emit("response.output_item.done", output_index=index, item=done)

    def _function_call(self, index: int, spec: dict[str, Any]) -> None:
        item = {
            "type": "function_call",
            "id": f"fc_up{index}",
            "call_id": spec["call_id"],
            "name": spec["name"],
            "arguments": "",
            "status": "in_progress",
        }
        self.emit("response.output_item.added", output_index=index, item=item)
        where = {"item_id": item["id"], "output_index": index}
        self.emit("response.function_call_arguments.delta", **where, delta=spec["arguments"])
        self.emit(
            "response.function_call_arguments.done",
            **where,
            name=spec["name"],
            arguments=spec["arguments"],
        )
        done = {**item, "arguments": spec["arguments"], "status": "completed"}
        self.output.append(done)
        self.emit("response.output_item.done", output_index=index, item=done)

    def _web_search_call(self, index: int, spec: dict[str, Any]) -> None:
        action = {"type": "search", "query": spec["query"]}
        item = {"type": "web_search_call", "id": f"ws_up{index}", "status": "in_progress"}
        self.emit("response.output_item.added", output_index=index, item={**item, "action": action})
        where = {"item_id": item["id"], "output_index": index}
        for step in ("in_progress", "searching", "completed"):
            self.emit(f"response.web_search_call.{step}", **where)
        done = {**item, "status": "completed", "action": action}
        self.output.append(done)
        self.emit("response.output_item.done", output_index=index, item=done)


class ResponsesUpstream:
    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def enqueue(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"].endswith("/models"):
            body = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0}]}
            await self._reply(send, 200, "application/json", json.dumps(body).encode())
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(raw)
        self.requests.append(request)
        self.paths.append(scope["path"])
        reply = self.script.popleft() if self.script else Reply([text("Hello from upstream")])
        if reply.status != 200:
            error = {"error": {"message": reply.items[0]["message"], "type": "server_error"}}
            await self._reply(send, reply.status, "application/json", json.dumps(error).encode())
            return
        writer = _Writer(reply, request)
        writer.write()
        if request.get("stream"):
            lines = [
                f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in writer.events
            ]
            await self._reply(send, 200, "text/event-stream", b"".join(lines))
            return
        final = writer.events[-1]["response"]
        await self._reply(send, 200, "application/json", json.dumps(final).encode())

    @staticmethod
    async def _reply(send: Send, status: int, kind: str, body: bytes) -> None:
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
