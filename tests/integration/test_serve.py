"""``chatgate serve`` as an operator starts it: in a subprocess, on real ports."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import process_env
from support import free_port

ROOT = Path(__file__).parents[2]


def serve_command(data_dir: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = process_env()
    env.update(CHATGATE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT), COLUMNS="200")
    return [sys.executable, "-m", "chatgate", "serve", *args], env


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize(
    ("which", "option"), [("--grpc-port", "--grpc-port (0 turns gRPC off)"), ("--port", "--port")]
)
def test_a_busy_port_is_one_line_that_says_how_to_choose_another(
    tmp_path: Path, busy_port: int, which: str, option: str
) -> None:
    other = "--port" if which == "--grpc-port" else "--grpc-port"
    command, env = serve_command(tmp_path, which, str(busy_port), other, str(free_port()))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert f"127.0.0.1:{busy_port}" in line and f"choose another port with {option}" in line


# The server as ``serve`` runs it once the ports were found free: the gRPC port is then taken by
# another program before start-up binds it.
_TAKEN_IN_BETWEEN = """
import sys
from chatgate.cli.main import setup_logging
from chatgate.cli.serving import bind, run
from chatgate.settings import Settings

settings = Settings.load(data_dir=sys.argv[1], port=int(sys.argv[2]), grpc_port=int(sys.argv[3]))
setup_logging("info")
run(settings, bind("HTTP", settings.host, settings.port, "--port"))
"""


def test_a_grpc_port_taken_after_the_check_is_still_told_without_a_traceback(
    tmp_path: Path, busy_port: int
) -> None:
    _, env = serve_command(tmp_path)
    command = [sys.executable, "-c", _TAKEN_IN_BETWEEN, str(tmp_path), str(free_port())]
    done = subprocess.run(
        [*command, str(busy_port)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "chatgate listening" not in done.stderr
    assert f"cannot listen for gRPC on 127.0.0.1:{busy_port}" in done.stderr
    assert "choose another port with --grpc-port" in done.stderr


def test_listening_is_said_only_once_both_ports_take_connections(tmp_path: Path) -> None:
    http, grpc = free_port(), free_port()
    command, env = serve_command(tmp_path, "--port", str(http), "--grpc-port", str(grpc))
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "chatgate listening on" in line:
                break
        else:
            pytest.fail("the server never said it listens:\n" + "".join(seen))
        for port in (http, grpc):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert f"http://127.0.0.1:{http}" in line and f"gRPC on 127.0.0.1:{grpc}" in line
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
