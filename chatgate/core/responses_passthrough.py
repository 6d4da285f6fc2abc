"""A Responses request passed through to an upstream that speaks the Responses API.

The request is the same ``ChatRequest`` as on the translated path (so quotas, routing, usage,
the stored exchange and its ownership are the core's, unchanged); it also carries a
``PassthroughSpec`` (``passthrough_spec``) for the deployments configured to take Responses
requests as they are (``providers/responses_relay.py`` says why the upstream keeps no state:
it gets the whole input with ``store: false``, rebuilt from chatgate's tree).

What comes back is relayed by ``RelayBuilder``: the upstream's events, renumbered, with their
items named by chatgate's ids (``msg_<reply id>`` for the reply's message, as on the
translated path), never the upstream's; the opening and closing events are chatgate's own,
so the response is chatgate's (its id, its ``previous_response_id`` and ``conversation``).
Hosted tool calls, reasoning items and annotations come through as the upstream sent them.
If a model's passing deployment fails before its first output and a translating one answers
instead, the builder renders that reply as the translated path does.
"""

from __future__ import annotations

import re
from typing import Any

from chatgate.core.events import ChatEvent, Delta, Done, Message
from chatgate.core.responses import Echo, ResponseBuilder, echoed_tools, item_id
from chatgate.providers.responses_relay import EVENTS, PassthroughSpec, forwarded

_PREFIX = re.compile(r"[a-z]{1,8}")
_TERMINAL = frozenset(("response.completed", "response.incomplete"))


def input_items(raw_input: Any) -> list[dict[str, Any]]:
    """The client's ``input`` as items (text is one user message), as it gave them."""
    if isinstance(raw_input, str):
        return [{"type": "message", "role": "user", "content": raw_input}]
    return [dict(item) for item in raw_input if isinstance(item, dict)]


def _answered(items: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The previous response's function calls put back before the first output whose call the
    input does not carry (a chained request sends only the output), as the translated path
    does for chat; they go without chatgate's item ids, which the upstream never knew."""
    asked = {i.get("call_id") for i in items if i.get("type") == "function_call"}
    for index, item in enumerate(items):
        if item.get("type") == "function_call_output" and item.get("call_id") not in asked:
            kept = ("type", "call_id", "name", "arguments", "namespace")
            wanted = [{k: c[k] for k in kept if k in c} for c in calls]
            return [*items[:index], *wanted, *items[index:]]
    return items


def passthrough_spec(
    body: dict[str, Any], messages: list[Message], calls: list[dict[str, Any]]
) -> PassthroughSpec:
    """``messages`` are the chat messages of the client's own input (earlier calls put back);
    those that are not system messages end the context the core builds, after the history."""
    new = sum(1 for m in messages if m.get("role") != "system")
    return PassthroughSpec(forwarded(body), _answered(input_items(body.get("input")), calls), new)


class RelayBuilder(ResponseBuilder):
    """A ``ResponseBuilder`` that relays a passing upstream's own events (see the module)."""

    def __init__(self, resp_id: str, echo: Echo) -> None:
        super().__init__(resp_id, echo)
        self.relayed = False
        self._ids: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._ended: dict[str, Any] | None = None

    def feed(self, event: ChatEvent) -> list[dict[str, Any]]:
        if isinstance(event, Delta) and event.extra and EVENTS in event.extra:
            self.relayed = True
            if event.text:
                self.text.append(event.text)
            out: list[dict[str, Any]] = []
            for upstream in event.extra[EVENTS]:
                out += self._relay(upstream)
            return out
        if isinstance(event, Done) and self.relayed:
            return self._relay_finish(event)
        return super().feed(event)

    def current(self) -> dict[str, Any]:
        if not self.relayed:
            return super().current()
        return self._snapshot(self.response["status"])

    def function_items(self) -> list[dict[str, Any]]:
        if not self.relayed:
            return super().function_items()
        return [dict(i) for i in self.output if i.get("type") == "function_call"]

    def stored_output(self) -> list[dict[str, Any]] | None:
        """The whole output to keep with a relayed response (hosted tool calls, reasoning and
        annotations have no place in the tree), or None when it was translated."""
        return [dict(i) for i in self.output] if self.relayed else None

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        data = super()._snapshot(status, **extra)
        tools = self.echo.body.get("tools")
        if getattr(self, "relayed", False) and isinstance(tools, list):
            kinds = ("function", "namespace")  # functions are echoed; namespaces have no form
            hosted = [t for t in tools if isinstance(t, dict) and t.get("type") not in kinds]
            data["tools"] = echoed_tools(tools) + hosted
        return data

    # ---- the upstream's events, made chatgate's -----------------------------------------

    def _id(self, upstream: str) -> str:
        ours = self._ids.get(upstream)
        if ours is None:
            prefix = upstream.split("_", 1)[0]
            prefix = prefix if _PREFIX.fullmatch(prefix) else "item"
            count = self._counts.get(prefix, 0)
            self._counts[prefix] = count + 1
            ours = item_id(prefix, self.resp_id, count if prefix == "msg" else count + 1)
            self._ids[upstream] = ours
        return ours

    def _own(self, given: Any) -> dict[str, Any] | None:
        """An output item with chatgate's id, and the fields a Response's readers rely on."""
        if not isinstance(given, dict) or not isinstance(given.get("type"), str):
            return None
        item: dict[str, Any] = dict(given)
        if isinstance(item.get("id"), str):
            item["id"] = self._id(item["id"])
        if item["type"] == "message":
            parts = item.get("content")
            item["content"] = [
                p if isinstance(p.get("text", ""), str) else {**p, "text": ""}
                for p in (parts if isinstance(parts, list) else ())
                if isinstance(p, dict)
            ]
        return item

    def _relay(self, upstream: dict[str, Any]) -> list[dict[str, Any]]:
        kind: str = upstream["type"]
        if kind in _TERMINAL:
            self._ended = upstream.get("response")
            return []
        data = {k: v for k, v in upstream.items() if k not in ("type", "sequence_number")}
        if "item" in data:
            item = self._own(data["item"])
            if item is None:
                return []
            data["item"] = item
            index = data.get("output_index")
            if type(index) is int and 0 <= index < len(self.output):
                self.output[index] = item
            else:
                data["output_index"] = len(self.output)
                self.output.append(item)
        if isinstance(data.get("item_id"), str):
            data["item_id"] = self._id(data["item_id"])
        return [self._event(kind, **data)]

    def _relay_finish(self, done: Done) -> list[dict[str, Any]]:
        ended = self._ended or {}
        status = "incomplete" if ended.get("status") == "incomplete" else "completed"
        if self.echo.store and done.conversation_id is not None:
            self.echo.conversation_id = done.conversation_id
        final = ended.get("output")
        if isinstance(final, list) and final:
            self.output = [i for i in (self._own(item) for item in final) if i is not None]
        self.response = self._snapshot(status, usage=done.usage, finish_reason=done.finish_reason)
        details = ended.get("usage")
        if isinstance(details, dict):
            for name in ("input_tokens_details", "output_tokens_details"):
                if isinstance(details.get(name), dict):
                    self.response["usage"][name].update(
                        {k: v for k, v in details[name].items() if type(v) is int}
                    )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [self._event(kind, response=self.response)]
