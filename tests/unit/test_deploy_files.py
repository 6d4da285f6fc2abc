"""The deployment files in deploy/ say what chatgate reads and does: the compose file runs two
instances on PostgreSQL and Redis behind a balancer that does not buffer streams, the image is
built in stages and runs as a user of its own with a health check, and the systemd unit waits
for a drain to end. With Docker on the machine, Docker itself reads the compose file and builds
the image."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatgate.cli.serving import AFTER_GRACE
from chatgate.settings import Settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
GATEWAYS = ("gateway-1", "gateway-2")
COMPOSE_ENV = {"POSTGRES_PASSWORD": "compose-check-password", "CHATGATE_SECRET_KEY": "c" * 32}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def seconds(duration: str) -> float:
    """A compose duration such as ``40s`` or ``1m30s``."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def drain_seconds() -> float:
    """How long a drain may take at most with the default settings."""
    return float(Settings.model_fields["shutdown_grace_seconds"].default) + AFTER_GRACE


def test_compose_runs_two_gateways_behind_a_balancer_on_postgres_and_redis() -> None:
    services = compose()["services"]
    assert {*GATEWAYS, "postgres", "redis", "balancer"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["balancer"]["image"].startswith("nginx:")
    assert set(services["balancer"]["depends_on"]) == set(GATEWAYS)
    for name in ("postgres", "redis", "balancer"):
        assert services[name]["healthcheck"]["test"], name


def test_each_gateway_has_the_database_redis_a_shared_secret_and_a_readiness_check() -> None:
    services = compose()["services"]
    for name in GATEWAYS:
        gateway = services[name]
        env = gateway["environment"]
        assert env["CHATGATE_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["CHATGATE_DATABASE_URL"]
        assert env["CHATGATE_REDIS_URL"] == "redis://redis:6379/0"
        assert env["CHATGATE_SECRET_KEY"].startswith("${CHATGATE_SECRET_KEY:?")  # never a default
        assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
        assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert seconds(gateway["stop_grace_period"]) > drain_seconds()
        for variable in env:  # every variable is a setting chatgate reads
            field = variable.removeprefix("CHATGATE_").lower()
            assert variable.startswith("CHATGATE_") and field in Settings.model_fields, variable
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_the_balancer_sends_streams_on_as_they_come_to_both_gateways() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    for name in GATEWAYS:
        assert f"server {name}:8000" in conf and f"server {name}:9000" in conf
    assert "proxy_buffering off;" in conf and "proxy_request_buffering off;" in conf
    reads = [int(n) for n in re.findall(r"(?:proxy|grpc)_read_timeout (\d+)s;", conf)]
    assert len(reads) == 2 and min(reads) >= Settings().upstream_timeouts.total
    assert "proxy_set_header Upgrade $http_upgrade;" in conf  # WebSockets
    assert "grpc_pass grpc://chatgate_grpc;" in conf


def test_the_image_is_built_in_stages_and_runs_as_a_user_with_a_health_check() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 3 and stages[0].startswith("FROM node:")
    assert stages[-1].startswith("FROM python:") and " AS " not in stages[-1]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = next(line for line in lines if line.startswith("HEALTHCHECK "))
    command = lines[lines.index(health) + 1]
    assert command.startswith("CMD ") and "/healthz" in command
    assert 'ENTRYPOINT ["chatgate"]' in lines and 'CMD ["serve"]' in lines


def test_the_systemd_unit_serves_and_waits_longer_than_a_drain() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "chatgate.service").read_text())
    service = unit["Service"]
    program, *arguments = service["ExecStart"].split()
    assert (Path(program).name, arguments) == ("chatgate", ["serve"])
    assert service["User"] == "chatgate" and service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > drain_seconds()
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **COMPOSE_ENV},
    )


def test_docker_compose_reads_the_compose_file() -> None:
    if _docker("compose", "version").returncode != 0:
        pytest.skip("docker compose is not installed")
    done = _docker("compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet")
    assert done.returncode == 0, done.stderr


def test_docker_builds_the_image() -> None:
    if _docker("info").returncode != 0:
        pytest.skip("no Docker daemon answers on this machine")
    done = _docker("build", "-f", str(DEPLOY / "Dockerfile"), "-t", "chatgate:test", str(ROOT))
    assert done.returncode == 0, done.stderr[-4000:]
