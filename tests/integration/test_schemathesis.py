"""Schemathesis over ``/openapi.json``: no input, valid or not, makes any route answer 5xx, and
every answer is one the description gives (status, content type and body schema).

Every described operation is called with the examples its description gives, inputs generated
from its schema (positive) and inputs that break it (negative), as a normal user and as an
administrator, against a real gateway serving the demo model. The run is bounded and
derandomized, so the same inputs are tried on every run; a failure lists every 5xx with its
route, input and the server's traceback, and every answer the description does not allow.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, strategies
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import LOG_LINES, Gateway

from chatgate.app import PUBLIC_PATHS

# Inputs per operation, role and kind (examples, positive, negative): about 2,000 requests in
# all, under two minutes on two cores.
MAX_EXAMPLES = 10
# What makes the server connect to a URL the caller chose: never to be sent to random hosts.
NOT_FUZZED = {("PUT", "/api/v1/admin/providers/{name}")}
DESCRIBED = [status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Fuzzing:
    gateway: Gateway
    user: str
    key: str = ""
    tried: int = 0
    findings: list[str] = field(default_factory=list)
    undescribed: list[str] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)

    def renew_key(self) -> None:
        """The fuzzer may revoke the key it calls with (``DELETE /api/v1/keys/1``)."""
        self.key = self.gateway.key(self.user)

    def call(self, case: schemathesis.Case) -> None:
        log_from = len(LOG_LINES)
        headers = {"Authorization": f"Bearer {self.key}"}
        response = case.call(
            base_url=self.gateway.url, session=self.session, headers=headers, timeout=30
        )
        self.tried += 1
        if response.status_code == 401 and case.operation.path not in PUBLIC_PATHS:
            self.renew_key()
        if response.status_code >= 500:
            self.findings.append(_finding(case, response, log_from))
            return
        try:
            case.validate_response(response, checks=DESCRIBED)
        except (AssertionError, FailureGroup) as failure:
            self.undescribed.append(f"{case.operation.label} -> {response.status_code}: {failure}")


def _finding(case: schemathesis.Case, response: Any, log_from: int) -> str:
    """Route, input, answer and the server's traceback (logged just after the answer)."""
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline and not _tracebacks(log_from):
        time.sleep(0.02)
    request = response.request
    body = request.body.decode(errors="replace") if isinstance(request.body, bytes) else ""
    return (
        f"{case.operation.label} -> {response.status_code}\n"
        f"  {request.method} {request.url}\n  body: {body[:500]}\n"
        f"  answer: {response.text[:300]}\n" + "\n".join(_tracebacks(log_from)[-1:])
    )


def _tracebacks(log_from: int) -> list[str]:
    return [line for line in LOG_LINES[log_from:] if "Traceback" in line]


def _settings() -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def _run(run: Fuzzing, strategy: strategies.SearchStrategy[schemathesis.Case]) -> None:
    @_settings()
    @given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        run.call(case)

    call()


def _fuzz(run: Fuzzing) -> None:
    schema = schemathesis.openapi.from_url(run.gateway.url + "/openapi.json")
    run.renew_key()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in NOT_FUZZED:
            continue
        examples = schema.get_strategies_from_examples(operation)
        if examples:
            _run(run, strategies.one_of(examples))
        _run(run, operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        # An operation with no parameter and no body has nothing to break.
        with contextlib.suppress(hypothesis.errors.Unsatisfiable):
            _run(run, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("admin", [False, True], ids=["user", "admin"])
def test_no_generated_input_gets_a_server_error_or_an_undescribed_answer(
    make_gateway: Callable[..., Gateway], admin: bool
) -> None:
    gateway = make_gateway()
    user = "fuzz-admin-7c1e" if admin else "fuzz-user-7c1e"
    gateway.user(user, "correct horse battery staple", admin=admin)
    run = Fuzzing(gateway, user)
    _fuzz(run)
    print(
        f"\nschemathesis as {user}: {run.tried} requests, {len(run.findings)} answered 5xx, "
        f"{len(run.undescribed)} answers not as described"
    )
    assert run.tried > 500
    assert run.findings == [], "\n\n".join(run.findings)
    assert run.undescribed == [], "\n\n".join(run.undescribed[:20])
