"""Which provider serves which model name.

Models come from three places: the built-in demo model, models configured by name (with aliases
and an ordered list of deployments), and models an upstream lists at ``/v1/models`` (refreshed
now and then). ``resolve`` gives the ordered deployments for a name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from chatgate.core.errors import ChatgateError, ModelNotFound
from chatgate.core.events import Delta
from chatgate.providers.base import Provider, UpstreamCall
from chatgate.providers.demo import DEMO_MODEL, DemoProvider
from chatgate.providers.openai_compat import OpenAICompatProvider
from chatgate.settings import ModelConfig, ProviderConfig, Settings

log = logging.getLogger("chatgate.router")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model can be served: a provider and the name it knows the model by."""

    provider: Provider
    upstream_model: str


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


def build_provider(config: ProviderConfig, settings: Settings) -> Provider:
    if config.kind == "demo":
        return DemoProvider(settings.demo_chunk_delay)
    keys = [k.get_secret_value() for k in config.api_keys]
    return OpenAICompatProvider(config, keys)


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers: dict[str, Provider] = {}
        for config in settings.upstream_providers:
            self.providers[config.name] = build_provider(config, settings)
        self._configs = {c.name: c for c in settings.upstream_providers}
        if settings.serve_demo:
            self.providers.setdefault(DEMO_MODEL, DemoProvider(settings.demo_chunk_delay))
        self._routes: dict[str, ModelRoute] = {}
        self._discovered: dict[str, list[str]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._rebuild()

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        if self._discoverable() and self.settings.models_refresh_seconds > 0:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="model-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for provider in self.providers.values():
            await provider.close()

    def _discoverable(self) -> list[str]:
        return [n for n, c in self._configs.items() if c.discover_models and c.kind != "demo"]

    async def refresh(self) -> None:
        """Ask each upstream for its models; one that does not answer keeps its last list."""
        for name in self._discoverable():
            try:
                self._discovered[name] = await self.providers[name].list_models()
            except ChatgateError as exc:
                log.warning("could not list the models of upstream %r: %s", name, exc.message)
        self._rebuild()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.models_refresh_seconds)
            await self.refresh()

    # ---- routing ----------------------------------------------------------------------------

    def _rebuild(self) -> None:
        routes: dict[str, ModelRoute] = {}
        now = int(time.time())
        if self.settings.serve_demo:
            demo = self.providers[DEMO_MODEL]
            routes[DEMO_MODEL] = ModelRoute(
                DEMO_MODEL,
                (Deployment(demo, DEMO_MODEL),),
                ModelConfig(name=DEMO_MODEL),
                "chatgate-demo",
                now,
            )
        for provider_name, names in self._discovered.items():
            provider = self.providers[provider_name]
            for model in names:
                if model not in routes:
                    routes[model] = ModelRoute(
                        model,
                        (Deployment(provider, model),),
                        ModelConfig(name=model, deployments=[provider_name]),
                        provider_name,
                        now,
                    )
        for config in self.settings.models:
            route = self._configured_route(config, now)
            for name in (config.name, *config.aliases):
                routes[name] = route
        self._routes = routes

    def _configured_route(self, config: ModelConfig, now: int) -> ModelRoute:
        names = config.deployments or list(self.providers)
        deployments = []
        for name in names:
            provider = self.providers.get(name)
            if provider is None:
                raise ValueError(f"model {config.name!r} names an unknown provider {name!r}")
            deployments.append(Deployment(provider, config.upstream_name or config.name))
        owner = names[0] if names else "chatgate"
        return ModelRoute(config.name, tuple(deployments), config, owner, now)

    def resolve(self, model: str) -> ModelRoute:
        route = self._routes.get(model)
        if route is None:
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            )
        return route

    def routes(self) -> list[ModelRoute]:
        return list(self._routes.values())

    def names(self) -> list[str]:
        return list(self._routes)

    async def stream(
        self, route: ModelRoute, call: UpstreamCall, served: Served
    ) -> AsyncGenerator[Delta, None]:
        """Stream from the first deployment that answers.

        A deployment is given up for the next one only while nothing has been yielded and the
        failure is retryable; after the first piece, errors go to the caller as they are.
        """
        last: ChatgateError | None = None
        for deployment in route.deployments:
            served.provider = deployment.provider.name
            body = dict(call.body, model=deployment.upstream_model)
            attempt = UpstreamCall(body, call.path, call.wants_raw, call.client_usage)
            started = False
            try:
                async for piece in deployment.provider.stream(attempt):
                    started = True
                    yield piece
                return
            except ChatgateError as exc:
                if started or not exc.retryable:
                    raise
                last = exc
                log.warning("upstream %r failed (%s); trying the next", served.provider, exc.code)
        assert last is not None
        raise last
