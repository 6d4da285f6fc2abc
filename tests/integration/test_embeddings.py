"""Embeddings through ``POST /v1/embeddings`` with the official ``openai`` package: from the demo
model in process and relayed to an upstream that serves them, limited and counted like chat."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from faulty_upstream import FaultyUpstream, status, whole_body
from support import Gateway, ServerThread
from upstream_rig import TIMEOUTS

from chatgate.demo_upstream import DemoUpstream
from chatgate.providers.demo import DEMO_DIMENSIONS, demo_vector


@pytest.fixture(params=["in-process", "relayed"])
def any_gateway(request: pytest.FixtureRequest) -> Gateway:
    name = "gateway" if request.param == "in-process" else "proxied_gateway"
    gateway: Gateway = request.getfixturevalue(name)
    return gateway


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)


def test_same_text_gets_the_same_unit_vector(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    texts = ["The cat sat on the mat.", "Stock prices fell sharply.", "The cat sat on the mat."]
    reply = api.embeddings.create(model="demo", input=texts, encoding_format="float")
    vectors = [item.embedding for item in reply.data]
    assert [item.index for item in reply.data] == [0, 1, 2]
    assert all(len(v) == DEMO_DIMENSIONS for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-6)
    assert vectors[0] == pytest.approx(demo_vector(texts[0]))
    assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens == reply.usage.prompt_tokens
    assert reply.model == "demo"


def test_sdk_default_base64_decodes_to_the_float_vectors(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    floats = api.embeddings.create(model="demo", input="hello world", encoding_format="float")
    default = api.embeddings.create(model="demo", input="hello world")  # the SDK asks base64
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    raw = httpx.post(
        any_gateway.url + "/v1/embeddings",
        json={"model": "demo", "input": "hello world", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {any_gateway.key('bob')}"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert struct.unpack(f"<{DEMO_DIMENSIONS}f", packed) == pytest.approx(
        floats.data[0].embedding, abs=1e-6
    )


def test_dimensions_and_token_arrays(any_gateway: Gateway) -> None:
    api = client(any_gateway, any_gateway.key("alice"))
    reply = api.embeddings.create(
        model="demo", input=[[1, 2, 3], [4, 5]], dimensions=8, encoding_format="float"
    )
    assert [len(item.embedding) for item in reply.data] == [8, 8]
    assert reply.data[0].embedding != reply.data[1].embedding


def test_relayed_request_reaches_the_upstream_as_asked(
    proxied_gateway: Gateway, demo_upstream: ServerThread
) -> None:
    api = client(proxied_gateway, proxied_gateway.key("alice"))
    api.embeddings.create(model="demo", input=["one", "two"], dimensions=16)
    assert isinstance(demo_upstream.app, DemoUpstream)
    sent = [b for b in demo_upstream.app.requests if "input" in b]
    assert sent == [
        {"model": "demo", "input": ["one", "two"], "encoding_format": "float", "dimensions": 16}
    ]


@pytest.fixture
def faulty() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream().start()
    yield upstream
    upstream.stop()


def _deployed(gateway_of: Callable[..., Gateway], first: str, second: str) -> Gateway:
    providers = [
        {"name": "first", "base_url": first, "timeouts": TIMEOUTS, "discover_models": False},
        {"name": "second", "base_url": second, "timeouts": TIMEOUTS, "discover_models": False},
    ]
    model = {"name": "embedder", "deployments": ["first", "second"], "upstream_name": "demo"}
    return gateway_of(providers=providers, models=[model])


def test_a_failing_deployment_falls_back_to_the_next(
    make_gateway: Callable[..., Gateway], faulty: FaultyUpstream, demo_upstream: ServerThread
) -> None:
    gateway = _deployed(make_gateway, faulty.base_url, demo_upstream.url + "/v1")
    faulty.enqueue(status(503))
    reply = client(gateway, gateway.key("alice")).embeddings.create(model="embedder", input="x")
    assert len(reply.data[0].embedding) == DEMO_DIMENSIONS
    assert [seen.path for seen in faulty.seen if seen.method == "POST"] == ["/v1/embeddings"]


@pytest.mark.parametrize(
    ("act", "code"),
    [(status(400, "input too long"), 400), (whole_body(b'{"data": 1}'), 502)],
    ids=["refused", "malformed"],
)
def test_an_upstream_refusal_or_garbage_is_not_sent_twice(
    make_gateway: Callable[..., Gateway],
    faulty: FaultyUpstream,
    demo_upstream: ServerThread,
    act: Any,
    code: int,
) -> None:
    gateway = _deployed(make_gateway, faulty.base_url, demo_upstream.url + "/v1")
    faulty.enqueue(act)
    response = httpx.post(
        gateway.url + "/v1/embeddings",
        json={"model": "embedder", "input": "x"},
        headers={"Authorization": f"Bearer {gateway.key('alice')}"},
    )
    assert response.status_code == code, response.text
    assert response.json()["error"]["message"]
    assert isinstance(demo_upstream.app, DemoUpstream) and demo_upstream.app.requests == []


def test_eleventh_embedding_past_a_cap_of_ten_is_refused(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(default_daily_requests=10)
    api = client(gateway, gateway.key("alice"))
    for _ in range(10):
        api.embeddings.create(model="demo", input="count me")
    with pytest.raises(openai.RateLimitError) as refused:
        api.embeddings.create(model="demo", input="count me")
    assert refused.value.status_code == 429
    assert refused.value.response.headers.get("retry-after")


def test_embeddings_are_in_the_usage_books(gateway: Gateway) -> None:
    key = gateway.key("alice")
    reply = client(gateway, key).embeddings.create(model="demo", input=["a b c", "d e f"])
    headers = {"Authorization": f"Bearer {key}"}
    rows = httpx.get(gateway.url + "/api/v1/usage", headers=headers).json()["rows"]
    assert [(r["model"], r["requests"], r["prompt_tokens"]) for r in rows] == [
        ("demo", 1, reply.usage.prompt_tokens)
    ]


BAD_INPUTS: list[tuple[str, Any]] = [
    ("empty list", []),
    ("empty text", ""),
    ("a number", 3),
    ("mixed list", ["a", 1]),
    ("negative token", [[-1]]),
]


@pytest.mark.parametrize("value", [v for _, v in BAD_INPUTS], ids=[n for n, _ in BAD_INPUTS])
def test_bad_input_is_refused_in_openai_shape(gateway: Gateway, value: Any) -> None:
    response = httpx.post(
        gateway.url + "/v1/embeddings",
        json={"model": "demo", "input": value},
        headers={"Authorization": f"Bearer {gateway.key('alice')}"},
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["message"]


def test_embeddings_need_a_key(gateway: Gateway) -> None:
    response = httpx.post(gateway.url + "/v1/embeddings", json={"model": "demo", "input": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"]
