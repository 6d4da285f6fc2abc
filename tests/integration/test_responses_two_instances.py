"""Two ``chatgate serve`` processes sharing a PostgreSQL database and Redis answer the Responses
API as one service: a stored response deleted through one is gone on the other at once, for a
retrieve, its input items and a response chained to it, even when the other had just served it.

Skipped, with the reason, when no PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest
from serve_process import Serve
from test_two_instances import Shared, shared_service

NO_GRPC = ("--grpc-port", "0")

pytestmark = pytest.mark.timeout(600)  # two processes start, on a busy machine too


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with shared_service(tmp_path_factory.mktemp("responses")) as found:
        yield found


@pytest.fixture(scope="module")
def pair(shared: Shared) -> Iterator[tuple[Serve, Serve]]:
    servers = [Serve(shared.env(name), shared.tmp / f"{name}.log", *NO_GRPC) for name in ("a", "b")]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def clients(pair: tuple[Serve, Serve], key: str) -> tuple[openai.OpenAI, openai.OpenAI]:
    a, b = (openai.OpenAI(base_url=s.url + "/v1", api_key=key, max_retries=0) for s in pair)
    return a, b


def assert_gone_on(client: openai.OpenAI, resp_id: str) -> None:
    """Retrieve, input items and a chained response each answer 404 in OpenAI's shape."""
    with pytest.raises(openai.NotFoundError) as retrieved:
        client.responses.retrieve(resp_id)
    with pytest.raises(openai.NotFoundError) as items:
        client.responses.input_items.list(resp_id)
    with pytest.raises(openai.NotFoundError) as chained:
        client.responses.create(model="demo", input="and then?", previous_response_id=resp_id)
    for refused in (retrieved.value, items.value, chained.value):
        body = refused.response.json()
        assert body["error"]["type"] == "invalid_request_error", body
        assert resp_id in body["error"]["message"] or "No " in body["error"]["message"], body


def test_a_response_deleted_on_one_instance_is_gone_on_the_one_that_made_it(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    a, b = clients(pair, shared.user_key("resp-deleter", daily_requests=50))
    made = a.responses.create(model="demo", input="remember the tide tables")
    assert b.responses.retrieve(made.id).id == made.id  # B reads what A made
    assert a.responses.retrieve(made.id).output_text == made.output_text

    b.responses.delete(made.id)

    assert_gone_on(a, made.id)
    assert_gone_on(b, made.id)


def test_a_response_chained_and_listed_on_one_instance_then_deleted_on_the_other_is_gone(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    """A has loaded everything about the response (its record, its conversation, its input
    items, a response chained to it) before B deletes it."""
    a, b = clients(pair, shared.user_key("resp-loaded", daily_requests=50))
    first = a.responses.create(model="demo", input="name three rivers", instructions="be brief")
    second = a.responses.create(model="demo", input="and a fourth", previous_response_id=first.id)
    assert a.responses.retrieve(first.id).instructions == "be brief"
    assert [i.id for i in a.responses.input_items.list(second.id).data]  # A's cache holds both
    assert b.responses.retrieve(second.id).previous_response_id == first.id

    b.responses.delete(first.id)  # the branch after it goes too

    for resp_id in (first.id, second.id):
        assert_gone_on(a, resp_id)
    kept = a.responses.create(model="demo", input="start again")
    assert b.responses.retrieve(kept.id).output_text == kept.output_text


def test_a_background_response_deleted_on_the_other_instance_is_gone_where_it_ran(
    shared: Shared, pair: tuple[Serve, Serve]
) -> None:
    a, b = clients(pair, shared.user_key("resp-background", daily_requests=50))
    started = a.responses.create(model="demo", input="count the stars", background=True)
    done = a.responses.retrieve(started.id)
    deadline = time.monotonic() + 120  # a bound on waiting, not a measure of speed
    while done.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        done = a.responses.retrieve(started.id)
    assert done.status == "completed"
    assert b.responses.retrieve(started.id).status == "completed"

    b.responses.delete(started.id)

    assert_gone_on(a, started.id)
