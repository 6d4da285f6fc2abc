"""How each upstream is doing, for the console: per provider and deployment, the recent
requests, errors and latency, the breaker's state, the models found; and every model with its
aliases.

Two sources, said apart in the answer because they differ in reach:

- the request log (every server sharing the database): the requests each provider ended up
  serving in the window, those that ended in an error, and the mean latency and time to the
  first token of those answered in full;
- this server's own record (like the breakers themselves): each failed try of a deployment,
  retries and fallbacks included, with the last one's message. Messages are cleaned of
  anything that looks like a credential and of the provider's own keys before they are shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from chatgate.log_redaction import MASK, redact
from chatgate.providers.router import ModelRegistry
from chatgate.store.db import Database
from chatgate.store.tables import RequestLog
from chatgate.store.writer import BatchWriter

WINDOW = 3600.0
LAST_ERRORS_READ = 1000  # the newest error rows read for each group's last error code


@dataclass(slots=True)
class Traffic:
    """What the request log says of one provider (and model) in the window."""

    requests: int = 0
    errors: int = 0
    latency_ms: float | None = None
    first_token_ms: float | None = None
    last_error_at: float | None = None
    last_error_code: str | None = None


@dataclass(slots=True)
class Failures:
    """This server's failed tries of a deployment in the window."""

    count: int = 0
    last: dict[str, Any] | None = None


@dataclass(slots=True)
class DeploymentHealth:
    model: str
    upstream_model: str
    state: str
    resting: bool
    retry_in: float | None
    resting_until: float | None
    traffic: Traffic
    failures: Failures


@dataclass(slots=True)
class ProviderHealth:
    name: str
    kind: str
    base_url: str | None
    models_found: list[str] | None
    models_error: str | None
    traffic: Traffic
    failures: Failures
    deployments: list[DeploymentHealth] = field(default_factory=list)


@dataclass(slots=True)
class ModelCard:
    name: str
    aliases: list[str]
    deployments: list[dict[str, str]]
    kind: str
    discovered: bool


@dataclass(slots=True)
class HealthReport:
    window_seconds: float
    providers: list[ProviderHealth]
    models: list[ModelCard]


class UpstreamHealth:
    def __init__(
        self,
        db: Database,
        writer: BatchWriter,
        registry: ModelRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._writer = writer
        self._registry = registry
        self._now = clock

    async def report(self, window: float = WINDOW) -> HealthReport:
        now = self._now()
        since = now - window
        traffic = await self._traffic(since)
        registry = self._registry
        health = registry.health
        configs = {c.name: c for c in registry.provider_configs()}
        by_provider: dict[str, ProviderHealth] = {}
        for name, config in configs.items():
            found, why = registry.listing(name)
            secrets = [k.get_secret_value() for k in config.api_keys]
            by_provider[name] = ProviderHealth(
                name=name,
                kind=config.kind,
                base_url=config.base_url,
                models_found=sorted(found) if found is not None else None,
                models_error=_clean(why, secrets) if why else None,
                traffic=traffic.get((name, None), Traffic()),
                failures=Failures(),
            )
        for route in registry.routes():
            for deployment in route.deployments:
                key = deployment.key
                provider = by_provider.get(key[0])
                if provider is None or any(
                    d.model == route.name and d.upstream_model == key[1]
                    for d in provider.deployments
                ):
                    continue
                retry_in = health.retry_in(key)
                state = health.state(key)
                secrets = [k.get_secret_value() for k in configs[key[0]].api_keys]
                failures = self._failures(key, since, secrets)
                provider.failures.count += failures.count
                if failures.last is not None and (
                    provider.failures.last is None
                    or failures.last["at"] > provider.failures.last["at"]
                ):
                    provider.failures.last = failures.last
                provider.deployments.append(
                    DeploymentHealth(
                        model=route.name,
                        upstream_model=key[1],
                        state=state,
                        resting=state in ("open", "resting"),
                        retry_in=round(retry_in, 3) if retry_in else None,
                        resting_until=now + retry_in if retry_in else None,
                        traffic=traffic.get((key[0], route.name), Traffic()),
                        failures=failures,
                    )
                )
        return HealthReport(window, list(by_provider.values()), self._models())

    def _failures(self, key: tuple[str, str], since: float, secrets: list[str]) -> Failures:
        recent = [f for f in self._registry.failures.get(key, ()) if f[0] >= since]
        if not recent:
            return Failures()
        at, code, message = recent[-1]
        return Failures(len(recent), {"at": at, "code": code, "message": _clean(message, secrets)})

    async def _traffic(self, since: float) -> dict[tuple[str, str | None], Traffic]:
        """The request log's numbers per (provider, model), and per (provider, None)."""
        await self._writer.flush()
        ok = RequestLog.status == "ok"
        failed = RequestLog.status == "error"
        columns = (
            func.count(),
            func.sum(case((failed, 1), else_=0)),
            func.avg(case((ok, RequestLog.latency_ms))),
            func.avg(case((ok, RequestLog.first_token_ms))),
            func.max(case((failed, RequestLog.created_at))),
        )
        recent = (RequestLog.created_at >= since, RequestLog.provider.is_not(None))
        per_model = (
            select(RequestLog.provider, RequestLog.model, *columns)
            .where(*recent)
            .group_by(RequestLog.provider, RequestLog.model)
        )
        per_provider = (
            select(RequestLog.provider, *columns).where(*recent).group_by(RequestLog.provider)
        )
        errors = (
            select(RequestLog.provider, RequestLog.model, RequestLog.error_code)
            .where(*recent, failed)
            .order_by(RequestLog.created_at.desc())
            .limit(LAST_ERRORS_READ)
        )
        async with self._db.session() as session:
            models = (await session.execute(per_model)).all()
            providers = (await session.execute(per_provider)).all()
            codes: list[Any] = list((await session.execute(errors)).all())
        newest: dict[tuple[str, str | None], str | None] = {}
        for provider, model, code in codes:
            newest.setdefault((provider, model), code)
            newest.setdefault((provider, None), code)
        out: dict[tuple[str, str | None], Traffic] = {}
        for provider, model, *numbers in models:
            out[(provider, model)] = _traffic(numbers, newest.get((provider, model)))
        for provider, *numbers in providers:
            out[(provider, None)] = _traffic(numbers, newest.get((provider, None)))
        return out

    def _models(self) -> list[ModelCard]:
        registry = self._registry
        aliases: dict[str, list[str]] = {}
        routes = {}
        for name in registry.names():
            route = registry.resolve(name)
            routes[route.name] = route
            if name != route.name:
                aliases.setdefault(route.name, []).append(name)
        configured = {m.name for m in registry.settings.models}
        return [
            ModelCard(
                name=route.name,
                aliases=sorted(aliases.get(route.name, [])),
                deployments=[
                    {"provider": d.provider.name, "upstream_model": d.upstream_model}
                    for d in route.deployments
                ],
                kind=route.config.kind,
                discovered=route.name not in configured,
            )
            for route in routes.values()
        ]


def _traffic(numbers: list[Any], last_code: str | None) -> Traffic:
    count, errors, latency, first_token, last_error = numbers
    return Traffic(
        requests=int(count),
        errors=int(errors or 0),
        latency_ms=_ms(latency),
        first_token_ms=_ms(first_token),
        last_error_at=last_error,
        last_error_code=last_code,
    )


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _clean(text: str, secrets: list[str]) -> str:
    """A message as the console may show it: no credential, none of the provider's keys."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact(text)[:500]
