"""The server says when its database writes fall behind, and loses none of them meanwhile."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from support import Gateway

from chatgate.settings import Settings


def ask(gateway: Gateway, key: str) -> None:
    api = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
    api.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])


def wait_for(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def metric(gateway: Gateway, name: str) -> float:
    text = httpx.get(gateway.url + "/metrics").text
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[-1])


def test_readiness_without_a_credential_says_only_whether_the_server_is_ready(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(
        providers=[{"name": "local", "kind": "demo", "discover_models": False}],
        models=[
            {
                "name": "secret-model",
                "deployments": ["local"],
                "upstream_name": "demo",
                "allowed_roles": ["admin"],
            }
        ],
    )
    assert "secret-model" in gateway.services.models.names()
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}
    assert "secret-model" not in ready.text


@pytest.mark.sqlite  # holds SQLite's lock on the file
def test_a_locked_database_makes_the_server_not_ready_and_loses_no_write(
    make_settings: Callable[..., Settings],
) -> None:
    gateway = Gateway(make_settings()).start()
    try:
        key = gateway.key("alice")
        ask(gateway, key)  # the day's quota is loaded from the books before the lock
        gateway.flush()
        written = metric(gateway, "chatgate_writer_rows_written_total")
        assert written > 0 and metric(gateway, "chatgate_writer_failing") == 0
        holder = sqlite3.connect(gateway.settings.data_dir / "chatgate.db")
        holder.execute("BEGIN EXCLUSIVE")
        try:
            for _ in range(3):
                ask(gateway, key)  # answered: nothing on the request path waits on the database

            def not_ready() -> bool:
                return httpx.get(gateway.url + "/readyz").status_code == 503

            assert wait_for(not_ready)
            ready = httpx.get(gateway.url + "/readyz").json()
            assert "database is locked" in ready["status"]
            assert metric(gateway, "chatgate_writer_failing") == 1
            assert metric(gateway, "chatgate_writer_queue") > 0
            assert metric(gateway, "chatgate_writer_flush_failures_total") >= 1
        finally:
            holder.rollback()
            holder.close()
        assert wait_for(lambda: httpx.get(gateway.url + "/readyz").status_code == 200)
        assert [row.status for row in gateway.request_log()] == ["ok"] * 4
        assert metric(gateway, "chatgate_writer_rows_set_aside_total") == 0
    finally:
        gateway.stop()
