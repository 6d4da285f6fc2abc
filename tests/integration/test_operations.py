"""What an operator runs chatgate with: request ids, JSON and access logs, /readyz with Redis,
``chatgate doctor``, ``--version``, TLS and a ``.env`` file. Servers run as ``chatgate serve``
in a subprocess, or in a thread for the HTTP checks, on free ports."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from databases import process_env
from faulty_upstream import FaultyUpstream
from support import Gateway, free_port

from chatgate import __version__
from chatgate.settings import Settings

ROOT = Path(__file__).parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


def chatgate_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = process_env()
    env.update(CHATGATE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT), COLUMNS="200", **extra)
    return env


def chatgate(
    data_dir: Path, *args: str, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        env=chatgate_env(data_dir, **extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


class Served:
    """``chatgate serve`` in a subprocess; its standard error collected line by line."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "chatgate", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--grpc-port", "0", *args],
            env=chatgate_env(data_dir, CHATGATE_DEMO_CHUNK_DELAY="0"),
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.listening = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.listening.wait(120):
            self.stop()
            pytest.fail("the server never said it listens:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if "chatgate listening on" in line:
                self.listening.set()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def wait_for(self, check: Callable[[str], bool]) -> str:
        """The first line for which ``check`` holds, waiting for it up to 30 s."""
        for _ in range(600):
            found = next((line for line in list(self.lines) if check(line)), None)
            if found is not None:
                return found
            threading.Event().wait(0.05)
        raise AssertionError("no such log line:\n" + "".join(self.lines))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*args: str) -> Served:
        served = Served(tmp_path / "data", *args)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def test_version_prints_the_package_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatgate", "--version"],
        env=chatgate_env(Path("/nonexistent")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout == f"chatgate {__version__}\n"


def test_every_answer_carries_a_request_id_and_a_sane_one_from_the_client_is_kept(
    gateway: Gateway,
) -> None:
    key = gateway.key("alice")
    auth = {"Authorization": f"Bearer {key}"}
    first = httpx.get(gateway.url + "/healthz").headers["x-request-id"]
    second = httpx.get(gateway.url + "/healthz").headers["x-request-id"]
    assert first and second and first != second
    kept = httpx.get(gateway.url + "/healthz", headers={"x-request-id": "trace.42:a-b_c"})
    assert kept.headers["x-request-id"] == "trace.42:a-b_c"
    for insane in ("has space", "x" * 129, "<script>", ""):
        replaced = httpx.get(gateway.url + "/healthz", headers={"x-request-id": insane})
        assert replaced.headers["x-request-id"] not in (insane, first, second)
    chat = httpx.post(gateway.base_url + "/chat/completions", json=CHAT, headers=auth)
    assert chat.status_code == 200 and chat.headers["x-request-id"]
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json={**CHAT, "stream": True},
        headers={**auth, "x-request-id": "stream-1"},
    ) as streamed:
        assert streamed.headers["x-request-id"] == "stream-1"
        assert "[DONE]" in streamed.read().decode()
    with httpx.stream(
        "POST", gateway.base_url + "/chat/completions", json={**CHAT, "stream": True}, headers=auth
    ) as again:
        assert again.headers.get_list("x-request-id") != ["stream-1"], "each answer its own id"
        assert len(again.headers.get_list("x-request-id")) == 1
        again.read()
    native = httpx.get(gateway.url + "/api/v1/conversations", headers=auth)
    assert native.status_code == 200 and native.headers["x-request-id"]


def test_error_bodies_name_the_request_id_of_their_answer(gateway: Gateway) -> None:
    refused = httpx.post(
        gateway.base_url + "/chat/completions",
        json=CHAT,
        headers={"Authorization": "Bearer sk-cg-not-a-key", "x-request-id": "bad-key-1"},
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["request_id"] == "bad-key-1"
    missing = httpx.get(gateway.url + "/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["error"]["request_id"] == missing.headers["x-request-id"]
    auth = {"Authorization": f"Bearer {gateway.key('alice')}"}
    unknown = httpx.get(gateway.url + "/api/v1/conversations/nope", headers=auth)
    assert unknown.json()["error"]["request_id"] == unknown.headers["x-request-id"]


def test_json_logs_and_the_access_log_name_each_request(
    serve: Callable[..., Served],
) -> None:
    server = serve("--log-format", "json", "--access-log")
    url = f"http://127.0.0.1:{server.port}"
    httpx.get(url + "/healthz", headers={"x-request-id": "probe-7"})
    httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"x-request-id": "anon-8"})
    records = [json.loads(line) for line in list(server.lines)]
    listening = next(r for r in records if "chatgate listening" in r["message"])
    assert {"time", "level", "logger"} <= listening.keys() and listening["request_id"] is None
    access = json.loads(server.wait_for(lambda line: "probe-7" in line))
    assert access["logger"] == "chatgate.access" and access["request_id"] == "probe-7"
    assert access["method"] == "GET" and access["path"] == "/healthz"
    assert access["status"] == 200 and access["duration_ms"] >= 0
    refused = json.loads(server.wait_for(lambda line: "anon-8" in line))
    assert refused["status"] == 401 and refused["path"] == "/v1/chat/completions"


def test_text_logs_name_the_request_and_the_access_log_is_off_by_default(
    serve: Callable[..., Served],
) -> None:
    quiet = serve()
    httpx.get(f"http://127.0.0.1:{quiet.port}/healthz", headers={"x-request-id": "unseen-1"})
    logged = serve("--access-log")
    httpx.get(f"http://127.0.0.1:{logged.port}/readyz", headers={"x-request-id": "seen-2"})
    line = logged.wait_for(lambda line: "seen-2" in line)
    assert "INFO chatgate.access [seen-2]: GET /readyz 200" in line
    assert not any("unseen-1" in line for line in quiet.lines)
    assert not any("chatgate.access" in line for line in quiet.lines)


def test_readyz_says_when_redis_cannot_be_reached(
    make_gateway: Callable[..., Gateway],
) -> None:
    down = make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    answer = httpx.get(down.url + "/readyz", timeout=30)
    assert answer.status_code == 503
    assert answer.json()["status"].startswith("Redis unreachable (ConnectionError")


def test_readyz_is_ready_with_a_redis_that_answers(
    make_gateway: Callable[..., Gateway],
) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        pytest.skip("no Redis server at 127.0.0.1:6379")
    up = make_gateway(redis_url=REDIS_URL, redis_prefix="test-readyz:")
    answer = httpx.get(up.url + "/readyz", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"status": "ready"}


def test_doctor_passes_on_a_fresh_machine_and_lists_the_demo_model(tmp_path: Path) -> None:
    done = chatgate(tmp_path / "data", "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "ok    configuration",
        "ok    database",
        "ok    redis",
        "ok    provider demo",
    ]
    assert "1 model (demo)" in lines[-1]


def test_doctor_names_what_fails_and_exits_non_zero(tmp_path: Path) -> None:
    upstream = FaultyUpstream(models=("small", "large")).start()
    try:
        done = chatgate(
            tmp_path / "data",
            "doctor",
            CHATGATE_REDIS_URL=f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0",
            OPENAI_BASE_URL=upstream.base_url,
            OPENAI_API_KEY="sk-upstream-secret",
            CHATGATE_PROVIDERS=json.dumps(
                [{"name": "gone", "base_url": f"http://127.0.0.1:{free_port()}/v1"}]
            ),
        )
    finally:
        upstream.stop()
    assert done.returncode == 1
    lines = {line.split(":")[0].split()[-1]: line for line in done.stdout.splitlines()}
    assert lines["redis"].startswith("FAIL") and "ConnectionError" in lines["redis"]
    assert lines["openai"].startswith("ok") and "2 models (large, small)" in lines["openai"]
    assert lines["gone"].startswith("FAIL") and "could not connect" in lines["gone"]
    assert "secret" not in done.stdout + done.stderr, "no password or key is shown"
    assert "Traceback" not in done.stderr


def test_doctor_says_what_is_wrong_with_the_configuration(tmp_path: Path) -> None:
    done = chatgate(tmp_path / "data", "doctor", CHATGATE_PORT="99999")
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL  configuration:") and "port" in done.stdout


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here with ``cryptography``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_with_a_certificate_and_its_key(tmp_path: Path, serve: Callable[..., Served]) -> None:
    cert, key = self_signed(tmp_path)
    server = serve("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    assert f"https://127.0.0.1:{server.port}" in server.wait_for(lambda x: "listening" in x)
    trusted = ssl.create_default_context(cafile=str(cert))
    answer = httpx.get(f"https://127.0.0.1:{server.port}/healthz", verify=trusted)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://127.0.0.1:{server.port}/healthz")  # not trusted without it


def test_a_key_that_does_not_fit_the_certificate_is_one_line(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = self_signed(tmp_path / "other")
    done = chatgate(
        tmp_path / "data",
        "serve",
        "--port",
        str(free_port()),
        "--grpc-port",
        "0",
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(other_key),
    )
    assert done.returncode == 1
    assert "cannot use the TLS certificate or key" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_dot_env_file_in_the_working_directory_is_read_like_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CHATGATE_PORT", "CHATGATE_LOG_FORMAT", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "CHATGATE_PORT=8123\nCHATGATE_LOG_FORMAT=json\nOPENAI_API_KEY=sk-from-dotenv\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATGATE_LOG_FORMAT", "text")
    settings = Settings.load(data_dir=tmp_path)
    assert settings.port == 8123
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-from-dotenv"
    assert settings.log_format == "text", "the environment wins over the file"


def test_ask_reaches_the_server_a_dot_env_file_names(
    tmp_path: Path, make_gateway: Callable[..., Gateway]
) -> None:
    gateway = make_gateway()
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(
        f"CHATGATE_URL={gateway.url}\nCHATGATE_API_KEY={gateway.key('alice')}\n"
    )
    done = chatgate(tmp_path / "data", "ask", "--json", "from a dot env", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "from a dot env" in [m.content for m in gateway.stored_messages()]
