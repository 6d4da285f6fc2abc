"""Which provider serves which model name, and how a request finds one that answers.

Models come from three places: the built-in demo model, models configured by name (with aliases
and an ordered list of deployments), and models an upstream lists at ``/v1/models`` (refreshed
now and then). ``resolve`` gives the route for a name; ``stream`` walks its deployments with
retries, backoff and circuit breakers (``routing.py``) until one answers.

The configuration can be replaced while serving (``apply``): a running stream keeps the route and
provider objects it started with, and a replaced provider's client is closed only once the last
stream using it has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from chatgate.core.accounts import Principal
from chatgate.core.errors import ChatgateError, ModelNotFound, UpstreamCoolingDown
from chatgate.core.events import Delta
from chatgate.providers.base import Provider, UpstreamCall
from chatgate.providers.demo import DEMO_MODEL, DemoProvider
from chatgate.providers.openai_compat import OpenAICompatProvider
from chatgate.providers.routing import Backoff, DeploymentKey, Health, counts_against
from chatgate.settings import ModelConfig, ProviderConfig, Settings

log = logging.getLogger("chatgate.router")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model can be served: a provider and the name it knows the model by."""

    provider: Provider
    upstream_model: str

    @property
    def key(self) -> DeploymentKey:
        return (self.provider.name, self.upstream_model)


@dataclass(slots=True)
class Served:
    """Filled in while streaming: which provider actually answered."""

    provider: str | None = None


@dataclass(frozen=True, slots=True)
class ModelRoute:
    name: str
    deployments: tuple[Deployment, ...]
    config: ModelConfig
    owned_by: str
    created: int

    def allows(self, principal: Principal | None) -> bool:
        config = self.config
        if principal is None or not (config.allowed_users or config.allowed_roles):
            return True
        return principal.username in config.allowed_users or principal.role in config.allowed_roles


def build_provider(config: ProviderConfig, settings: Settings) -> Provider:
    if config.kind == "demo":
        provider = DemoProvider(settings.demo_chunk_delay)
        provider.name = config.name
        return provider
    keys = [k.get_secret_value() for k in config.api_keys]
    return OpenAICompatProvider(config, keys)


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.health = Health(settings.routing)
        self.backoff = Backoff(settings.routing)
        self.providers: dict[str, Provider] = {}
        self._configs: dict[str, ProviderConfig] = {}
        self._routes: dict[str, ModelRoute] = {}
        self._discovered: dict[str, list[str]] = {}
        self._in_use: dict[Provider, int] = {}
        self._retiring: set[Provider] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self.config_lock = asyncio.Lock()
        self._swap(settings)

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        if self.settings.models_refresh_seconds > 0:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="model-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for task in list(self._closing):
            await task
        for provider in {*self.providers.values(), *self._retiring}:
            await provider.close()

    def _discoverable(self) -> list[str]:
        return [n for n, c in self._configs.items() if c.discover_models and c.kind != "demo"]

    async def refresh(self, names: list[str] | None = None) -> None:
        """Ask each upstream for its models; one that does not answer keeps its last list."""
        for name in self._discoverable() if names is None else names:
            provider = self.providers.get(name)
            if provider is None:
                continue
            try:
                self._discovered[name] = await provider.list_models()
            except ChatgateError as exc:
                log.warning("could not list the models of upstream %r: %s", name, exc.message)
        self._rebuild()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.models_refresh_seconds)
            await self.refresh()

    # ---- configuration, replaced while serving ----------------------------------------------

    async def apply(self, settings: Settings) -> None:
        """Serve ``settings``' providers and models from now on, without dropping streams.

        Providers whose configuration did not change keep their object (and its pooled
        connections and breaker history); the others are built anew and the old ones closed
        as soon as no stream uses them. Raises ``ValueError`` if a model names an unknown
        provider, leaving the running configuration as it was.
        """
        old_configs = dict(self._configs)
        old_providers = dict(self.providers)
        self._swap(settings)
        changed = [n for n, c in self._configs.items() if old_configs.get(n) != c]
        for name, provider in old_providers.items():
            if self.providers.get(name) is not provider:
                self._discovered.pop(name, None)
                self.health.forget(name)
                self._retire(provider)
        await self.refresh([n for n in changed if n in self._discoverable()])

    def _swap(self, settings: Settings) -> None:
        configs = {c.name: c for c in settings.upstream_providers}
        providers: dict[str, Provider] = {}
        for name, config in configs.items():
            same = self._configs.get(name) == config and name in self.providers
            providers[name] = self.providers[name] if same else build_provider(config, settings)
        if settings.serve_demo and DEMO_MODEL not in providers:
            old = self.providers.get(DEMO_MODEL)
            providers[DEMO_MODEL] = old or DemoProvider(settings.demo_chunk_delay)
        routes = self._routes_for(settings, providers)  # raises before anything is replaced
        self.settings, self._configs, self.providers = settings, configs, providers
        self.health.config = self.backoff.config = settings.routing
        self._routes = routes

    def _retire(self, provider: Provider) -> None:
        if self._in_use.get(provider, 0) == 0:
            self._close_later(provider)
        else:
            self._retiring.add(provider)

    def _close_later(self, provider: Provider) -> None:
        task = asyncio.get_running_loop().create_task(provider.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def provider_configs(self) -> list[ProviderConfig]:
        return list(self._configs.values())

    # ---- routing ----------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self._routes = self._routes_for(self.settings, self.providers)

    def _routes_for(
        self, settings: Settings, providers: dict[str, Provider]
    ) -> dict[str, ModelRoute]:
        routes: dict[str, ModelRoute] = {}
        now = int(time.time())
        if settings.serve_demo:
            demo = providers[DEMO_MODEL]
            routes[DEMO_MODEL] = ModelRoute(
                DEMO_MODEL,
                (Deployment(demo, DEMO_MODEL),),
                ModelConfig(name=DEMO_MODEL),
                "chatgate-demo",
                now,
            )
        for provider_name, names in self._discovered.items():
            provider = providers.get(provider_name)
            if provider is None:
                continue
            for model in names:
                if model not in routes:
                    routes[model] = ModelRoute(
                        model,
                        (Deployment(provider, model),),
                        ModelConfig(name=model, deployments=[provider_name]),
                        provider_name,
                        now,
                    )
        for config in settings.models:
            route = _configured_route(config, providers, now)
            for name in (config.name, *config.aliases):
                routes[name] = route
        return routes

    def resolve(self, model: str, principal: Principal | None = None) -> ModelRoute:
        route = self._routes.get(model)
        if route is None or not route.allows(principal):
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            )
        return route

    def routes(self) -> list[ModelRoute]:
        return list(self._routes.values())

    def names(self, principal: Principal | None = None) -> list[str]:
        """Every name (aliases included) that ``principal`` may ask for."""
        return [n for n, r in self._routes.items() if r.allows(principal)]

    async def stream(
        self, route: ModelRoute, call: UpstreamCall, served: Served
    ) -> AsyncGenerator[Delta, None]:
        """Stream from the first deployment that answers.

        Until the first piece has been yielded, a retryable failure is tried again on the same
        deployment (with backoff) and then on the next one; a deployment whose breaker is open
        is skipped. After the first piece, and for any failure that is not retryable, the error
        goes to the caller as it is: nothing that may have been acted on is sent twice.
        """
        last: ChatgateError | None = None
        for deployment in route.deployments:
            key = deployment.key
            provider = deployment.provider
            tries = 0
            last_here: ChatgateError | None = None
            while self.health.acquire(key):
                served.provider = provider.name
                started = judged = False
                self._in_use[provider] = self._in_use.get(provider, 0) + 1
                try:
                    body = dict(call.body, model=deployment.upstream_model)
                    attempt = UpstreamCall(body, call.path, call.wants_raw, call.client_usage)
                    async with aclosing(provider.stream(attempt)) as pieces:
                        async for piece in pieces:
                            if not started:
                                started = judged = True
                                self.health.succeeded(key)
                            yield piece
                    return
                except ChatgateError as exc:
                    if counts_against(exc):
                        judged = True
                        self.health.failed(key, self._rest_for(exc))
                    if started or not exc.retryable:
                        raise
                    last = last_here = exc
                finally:
                    if not judged:
                        self.health.release(key)
                    self._done_with(provider)
                assert last_here is not None
                wait = self.backoff.delay(tries, last_here)
                if wait is None:
                    break
                log.warning(
                    "upstream %r failed (%s); trying it again in %.2fs",
                    provider.name,
                    last_here.code,
                    wait,
                )
                await asyncio.sleep(wait)
                tries += 1
            if last_here is not None:
                log.warning(
                    "upstream %r failed (%s); trying the next", provider.name, last_here.code
                )
        if last is None:
            waits = [self.health.retry_in(d.key) or 0.0 for d in route.deployments]
            raise UpstreamCoolingDown(
                f"Every upstream of `{route.name}` failed lately and is resting; "
                "try again shortly.",
                retry_after=min(waits, default=None),
            )
        raise last

    def _rest_for(self, exc: ChatgateError) -> float | None:
        """An upstream asking for a longer pause than we would wait gets it, as a cooldown."""
        hinted: float | None = getattr(exc, "retry_after", None)
        if hinted is not None and hinted > self.settings.routing.max_retry_wait:
            return hinted
        return None

    def _done_with(self, provider: Provider) -> None:
        left = self._in_use[provider] - 1
        if left:
            self._in_use[provider] = left
            return
        del self._in_use[provider]
        if provider in self._retiring:
            self._retiring.discard(provider)
            self._close_later(provider)


def _configured_route(config: ModelConfig, providers: dict[str, Provider], now: int) -> ModelRoute:
    names = config.deployments or [n for n in providers if n != DEMO_MODEL] or list(providers)
    deployments = []
    for name in names:
        provider = providers.get(name)
        if provider is None:
            raise ValueError(f"model {config.name!r} names an unknown provider {name!r}")
        deployments.append(Deployment(provider, config.upstream_name or config.name))
    owner = names[0] if names else "chatgate"
    return ModelRoute(config.name, tuple(deployments), config, owner, now)
