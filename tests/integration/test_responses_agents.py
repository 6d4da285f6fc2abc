"""The OpenAI Agents SDK runs an agent with one function tool through chatgate, in front of a
Chat-Completions-only model that calls tools (the demo model over HTTP).

The SDK drives the Responses API: it replays a run's items, or with
``auto_previous_response_id`` chains each call to the last and sends only what is new (the
tool's output), so chatgate rebuilds the call and the history from its tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from support import Gateway, ServerThread

CITY = "Paris"


@pytest.fixture
def relayed(make_gateway: Callable[..., Gateway], demo_upstream: ServerThread) -> Gateway:
    return make_gateway(
        openai_base_url=demo_upstream.url + "/v1",
        openai_api_key="upstream-key",
        conversation_titles=False,
    )


def _agent(client: AsyncOpenAI, calls: list[str]) -> Agent[Any]:
    @function_tool
    def get_weather(query: str) -> str:
        """The weather a question asks for (the demo model sends its question as ``query``)."""
        calls.append(query)
        return f"sunny and 21 C in {CITY}"

    return Agent(
        name="Forecaster",
        instructions="Answer with the weather the tool gives.",
        tools=[get_weather],
        model=OpenAIResponsesModel("demo", client),
    )


async def _run(gateway: Gateway, calls: list[str], **kwargs: Any) -> Any:
    """One run, its client closed within the loop that used it."""
    key = gateway.key("agent")
    async with AsyncOpenAI(base_url=gateway.base_url, api_key=key, max_retries=0) as client:
        return await Runner.run(
            _agent(client, calls),
            f"Use the tool to get the weather in {CITY}",
            run_config=_config(),
            **kwargs,
        )


def _config() -> RunConfig:
    set_tracing_disabled(True)  # nothing leaves for OpenAI's trace servers
    return RunConfig(tracing_disabled=True)


@pytest.mark.parametrize("chained", [False, True], ids=["replayed", "chained"])
def test_an_agent_runs_its_function_tool_through_chatgate(
    relayed: Gateway, demo_upstream: Any, chained: bool
) -> None:
    calls: list[str] = []
    result = asyncio.run(_run(relayed, calls, auto_previous_response_id=chained))
    assert len(calls) == 1 and CITY in calls[0]
    assert "sunny and 21 C in Paris" in result.final_output
    sent = demo_upstream.app.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Answer with the weather the tool gives."}
    call = next(m for m in sent if m.get("tool_calls"))
    assert call["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "sunny and 21 C in Paris"
    # Chained, the second call continues the first one's conversation; replayed, it starts
    # one of its own.
    listed = httpx.get(
        relayed.url + "/api/v1/conversations",
        headers={"authorization": f"Bearer {relayed.key('agent')}"},
    ).json()["data"]
    assert len(listed) == (1 if chained else 2)
    assert result.last_response_id is not None and result.last_response_id.startswith("resp_")


def test_a_streamed_agent_run_gets_every_event_and_the_answer(
    relayed: Gateway,
) -> None:
    calls: list[str] = []

    async def run() -> tuple[list[str], str]:
        key = relayed.key("agent")
        async with AsyncOpenAI(base_url=relayed.base_url, api_key=key, max_retries=0) as client:
            streamed = Runner.run_streamed(
                _agent(client, calls), f"Use the tool for {CITY}", run_config=_config()
            )
            kinds = [event.type async for event in streamed.stream_events()]
            return kinds, str(streamed.final_output)

    kinds, answer = asyncio.run(run())
    assert calls and "raw_response_event" in kinds
    assert "sunny and 21 C in Paris" in answer
