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
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chatgate.core.accounts import Principal
from chatgate.core.errors import (
    ChatgateError,
    InvalidRequest,
    ModelNotFound,
    UpstreamCoolingDown,
    UpstreamModelsUnknown,
)
from chatgate.core.events import Delta
from chatgate.providers.base import Embedder, Provider, UpstreamCall
from chatgate.providers.demo import DEMO_MODEL, DemoProvider
from chatgate.providers.openai_compat import OpenAICompatProvider
from chatgate.providers.responses_relay import PATH as RESPONSES_PATH
from chatgate.providers.responses_relay import (
    SPEC_KEY,
    PassthroughSpec,
    speaks_responses,
    upstream_body,
)
from chatgate.providers.routing import Backoff, DeploymentKey, Health, counts_against
from chatgate.settings import ModelConfig, ProviderConfig, Settings

log = logging.getLogger("chatgate.router")
FAILURES_KEPT = 100

# An upstream whose model list could not be read is asked again after this many seconds,
# doubled each time up to the most.
LIST_RETRY_FIRST = 1.0
LIST_RETRY_MAX = 60.0
# Start-up waits this long for the first model lists; an upstream slower than that is listed in
# the background, and its models answer 503 "not known yet" until it is.
LIST_WAIT_AT_START = 3.0
READING = "it is still being read"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model can be served: a provider and the name it knows the model by.
    ``passes``: the provider takes Responses requests as they are, decided once here when the
    providers are loaded rather than for every request."""

    provider: Provider
    upstream_model: str
    passes: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "passes", speaks_responses(self.provider))

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
        # Each deployment's recent failed tries (time, code, message), newest last, for the
        # console's view of upstream health; this process's own, like the breakers.
        self.failures: dict[DeploymentKey, deque[tuple[float, str, str]]] = {}
        self.backoff = Backoff(settings.routing)
        self.providers: dict[str, Provider] = {}
        self._configs: dict[str, ProviderConfig] = {}
        self._routes: dict[str, ModelRoute] = {}
        self._discovered: dict[str, list[str]] = {}
        self._in_use: dict[Provider, int] = {}
        self._retiring: set[Provider] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._first_listing: asyncio.Task[None] | None = None
        self._unlisted: dict[str, str] = {}  # provider -> why its model list could not be read
        self._relisting: dict[str, asyncio.Task[None]] = {}
        self._relist_at: dict[str, float] = {}
        self.config_lock = asyncio.Lock()
        self._swap(settings)

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """List the upstreams' models, waiting a little: a host that never answers must not
        hold up the start (nor the other upstreams) for its whole connect timeout."""
        for name in self._discoverable():
            self._unlisted.setdefault(name, READING)
        self._first_listing = asyncio.create_task(self.refresh(), name="model-list-first")
        await asyncio.wait({self._first_listing}, timeout=LIST_WAIT_AT_START)
        if not self._first_listing.done():
            log.warning(
                "the model lists of some upstreams are still being read after %.0fs; "
                "serving the others meanwhile",
                LIST_WAIT_AT_START,
            )
        if self.settings.models_refresh_seconds > 0:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="model-refresh")

    async def close(self) -> None:
        for task in [self._refresher, self._first_listing, *self._relisting.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in list(self._closing):
            await task
        for provider in {*self.providers.values(), *self._retiring}:
            await provider.close()

    def _discoverable(self) -> list[str]:
        return [n for n, c in self._configs.items() if c.discover_models and c.kind != "demo"]

    async def refresh(self, names: list[str] | None = None) -> None:
        """Ask each upstream for its models; one that does not answer keeps its last list and
        is asked again soon (see ``_relist``)."""

        async def listed(name: str) -> None:
            if await self._list(name, LIST_RETRY_FIRST):
                self._rebuild()  # a quick upstream is served without waiting for a slow one

        names = self._discoverable() if names is None else names
        await asyncio.gather(*(listed(name) for name in names))
        self._rebuild()

    async def _list(self, name: str, retry_in: float) -> bool:
        """Read one upstream's model list. Whatever goes wrong is logged (which URL, and why)
        and retried in ``retry_in`` seconds: nothing an upstream does may stop the server."""
        provider = self.providers.get(name)
        if provider is None:
            return True
        try:
            self._discovered[name] = await provider.list_models()
        except Exception as exc:
            self._unlisted[name] = exc.message if isinstance(exc, ChatgateError) else "failed"
            log.warning(
                "could not list the models of upstream %r at %s: %s; trying again in %.0fs",
                name,
                self._models_url(name),
                self._why(name, exc),
                retry_in,
                exc_info=not isinstance(exc, ChatgateError),
            )
            self._retry_listing(name)
            return False
        self._unlisted.pop(name, None)
        return True

    def _models_url(self, name: str) -> str:
        """Where the model list is read, without credentials or query."""
        url = urlsplit(self._configs[name].base_url)
        host = url.hostname or ""
        netloc = f"{host}:{url.port}" if url.port else host
        return urlunsplit((url.scheme, netloc, url.path.rstrip("/") + "/models", "", ""))

    def _why(self, name: str, exc: BaseException) -> str:
        """The causes of a failure, for the operator, with the provider's keys blanked."""
        parts: list[str] = []
        seen: BaseException | None = exc
        while seen is not None and len(parts) < 4:
            parts.append(f"{type(seen).__name__}: {seen}")
            seen = seen.__cause__ or seen.__context__
        text = " <- ".join(parts)
        for key in self._configs[name].api_keys:
            secret = key.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text

    def _retry_listing(self, name: str) -> None:
        if name in self._relisting:
            return
        task = asyncio.get_running_loop().create_task(self._relist(name), name=f"relist-{name}")
        self._relisting[name] = task
        task.add_done_callback(lambda _: self._relisting.pop(name, None))

    async def _relist(self, name: str) -> None:
        """Ask an upstream whose list could not be read again, soon and then less often, until
        it answers (an upstream down at start is served as soon as it is back)."""
        delay = LIST_RETRY_FIRST
        while name in self._discoverable():
            self._relist_at[name] = time.monotonic() + delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, LIST_RETRY_MAX)
            if await self._list(name, delay):
                self._rebuild()
                return

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.models_refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("the model refresh failed; it runs again in due time")

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
                self._unlisted.pop(name, None)
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
        for alias, target in settings.model_aliases.items():
            if target in routes:
                routes[alias] = routes[target]
        return routes

    def resolve(self, model: str, principal: Principal | None = None) -> ModelRoute:
        route = self._routes.get(model)
        if route is None and self._unlisted:
            self._not_listed_yet(model)
        if route is None or not route.allows(principal):
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            )
        return route

    def _not_listed_yet(self, model: str) -> None:
        """An unknown name while an upstream has never listed its models may be one of them:
        say so (503) rather than "does not exist"."""
        for name, why in self._unlisted.items():
            if name in self._discovered or name not in self._configs:
                continue
            retry_at = self._relist_at.get(name)
            state = why if why == READING else f"could not be read ({why})"
            raise UpstreamModelsUnknown(
                f"The model `{model}` is not known yet: the model list of upstream '{name}' "
                f"{state}. Try again shortly.",
                retry_after=max(0.0, retry_at - time.monotonic()) if retry_at else None,
            )

    def routes(self) -> list[ModelRoute]:
        return list(self._routes.values())

    def listing(self, provider: str) -> tuple[list[str] | None, str | None]:
        """The models an upstream listed last (None: never listed), and why its list could
        not be read lately (None: it could)."""
        return self._discovered.get(provider), self._unlisted.get(provider)

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
        goes to the caller as it is: nothing that may have been acted on is sent twice. The
        whole request, every try, wait and fallback included, ends by ``request_deadline``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.routing.request_deadline
        last: ChatgateError | None = None
        given: dict[str, Any] = call.body
        spec: PassthroughSpec | None = None
        if SPEC_KEY in given:  # a Responses request that a deployment may take as it is
            given = dict(given)
            spec = given.pop(SPEC_KEY)
        for deployment in route.deployments:
            if last is not None and loop.time() >= deadline:
                break
            key = deployment.key
            provider = deployment.provider
            tries = 0
            last_here: ChatgateError | None = None
            while self.health.acquire(key):
                served.provider = provider.name
                started = judged = False
                self._in_use[provider] = self._in_use.get(provider, 0) + 1
                try:
                    body = dict(given, model=deployment.upstream_model)
                    path = call.path
                    if spec is not None and deployment.passes:
                        body = upstream_body(spec, body["messages"], deployment.upstream_model)
                        path = RESPONSES_PATH
                    attempt = UpstreamCall(body, path, call.wants_raw, call.client_usage, deadline)
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
                        self._judge(key, exc, again=last_here is not None)
                    if started or not exc.retryable:
                        raise
                    last = last_here = exc
                finally:
                    if not judged:
                        self.health.release(key)
                    self._done_with(provider)
                wait = self.backoff.delay(tries, last_here)
                if wait is None or not self._may_wait(key, wait, deadline):
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

    async def embed(self, route: ModelRoute, body: dict[str, Any], served: Served) -> Any:
        """Embeddings from the first deployment that serves them and answers: a retryable
        failure moves on to the next deployment, as it does before a chat reply starts."""
        deadline = asyncio.get_running_loop().time() + self.settings.routing.request_deadline
        last: ChatgateError | None = None
        for deployment in route.deployments:
            provider, key = deployment.provider, deployment.key
            if not isinstance(provider, Embedder) or not self.health.acquire(key):
                continue
            served.provider = provider.name
            judged = False
            self._in_use[provider] = self._in_use.get(provider, 0) + 1
            try:
                answer = await provider.embed(dict(body, model=deployment.upstream_model), deadline)
                judged = True
                self.health.succeeded(key)
                return answer
            except ChatgateError as exc:
                if counts_against(exc):
                    judged = True
                    self._judge(key, exc, again=False)
                if not exc.retryable:
                    raise
                last = exc
            finally:
                if not judged:
                    self.health.release(key)
                self._done_with(provider)
        if last is not None:
            raise last
        if not any(isinstance(d.provider, Embedder) for d in route.deployments):
            raise InvalidRequest(
                f"The model `{route.name}` does not serve embeddings.", param="model"
            )
        raise UpstreamCoolingDown(
            f"Every upstream of `{route.name}` failed lately and is resting; try again shortly."
        )

    def _judge(self, key: DeploymentKey, exc: ChatgateError, *, again: bool) -> None:
        """Record a failure: an upstream's own pause is honoured as it is, anything else is
        evidence for the breaker (once per request)."""
        seen = self.failures.setdefault(key, deque(maxlen=FAILURES_KEPT))
        seen.append((time.time(), exc.code, exc.message))
        hinted: float | None = getattr(exc, "retry_after", None)
        if hinted is not None:
            self.health.rest(key, hinted)
        else:
            self.health.failed(key, again=again)

    def _may_wait(self, key: DeploymentKey, wait: float, deadline: float) -> bool:
        """Whether to wait ``wait`` seconds and try the same deployment again: not when its
        breaker has opened meanwhile (it would refuse the try), nor past the deadline."""
        if asyncio.get_running_loop().time() + wait >= deadline:
            return False
        if self.health.admits(key):
            return True
        retry_in = self.health.retry_in(key)
        return retry_in is not None and self.health.state(key) == "resting" and retry_in <= wait

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
