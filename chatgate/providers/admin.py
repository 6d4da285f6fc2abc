"""Changing providers and models while serving: one at a time through the admin API, or all
at once by re-reading the TOML file (``POST /api/v1/admin/providers/reload`` or SIGHUP).

Every change builds a whole new configuration and hands it to ``ModelRegistry.apply``, which
keeps running streams on the objects they started with. Changes made one at a time live until
the next reload or restart; the TOML file is the lasting record.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError

from chatgate.core.audit import Actor, AuditLog
from chatgate.core.errors import Conflict, InvalidRequest, NotFound
from chatgate.providers.router import ModelRegistry
from chatgate.settings import ModelConfig, ProviderConfig, read_upstreams

log = logging.getLogger("chatgate.providers")
M = TypeVar("M", bound=BaseModel)

if TYPE_CHECKING:
    from chatgate.core.changes import ChangeFeed


class ProviderAdmin:
    """Cheap to make: the lock that keeps changes one at a time lives on the registry.
    Changes go to ``audit`` as made by ``by`` (the operator, when not said)."""

    def __init__(
        self,
        registry: ModelRegistry,
        audit: AuditLog | None = None,
        by: Actor | None = None,
        changes: ChangeFeed | None = None,
    ) -> None:
        self.registry = registry
        self._changes = changes  # to tell the other processes that the file was reloaded
        self._lock = registry.config_lock
        self._audit = audit
        self._by = by

    async def _log(self, action: str, target: str, details: dict[str, Any]) -> None:
        if self._audit is not None:
            await self._audit.record(self._by or Actor.operator(), action, target, details)

    # ---- reading ----------------------------------------------------------------------------

    def providers(self) -> list[dict[str, Any]]:
        return [self.describe(c) for c in self.registry.provider_configs()]

    def describe(self, config: ProviderConfig) -> dict[str, Any]:
        """A provider as an operator may see it: never a key, a header value or a proxy
        password."""
        health = self.registry.health
        resting = [
            {"model": key[1], "state": health.state(key), "retry_in": health.retry_in(key)}
            for key in health.troubled()
            if key[0] == config.name
        ]
        return {
            "name": config.name,
            "kind": config.kind,
            "base_url": config.base_url,
            "keys": len(config.api_keys),
            "api_key_envs": config.api_key_envs,
            "headers": sorted(config.headers),
            "proxy": _without_password(config.proxy),
            "timeouts": config.timeouts.model_dump(),
            "api_version": config.api_version,
            "deployment": config.deployment,
            "discover_models": config.discover_models,
            "max_event_bytes": config.max_event_bytes,
            "responses": config.responses,
            "takes_reasoning_effort": config.takes_reasoning_effort,
            "breakers": resting,
        }

    def models(self) -> list[dict[str, Any]]:
        configured = {m.name for m in self.registry.settings.models}
        out = [m.model_dump() for m in self.registry.settings.models]
        for route in self.registry.routes():
            if route.name not in configured:
                configured.add(route.name)
                out.append(
                    {"name": route.name, "deployments": [route.owned_by], "discovered": True}
                )
        return out

    # ---- changing ---------------------------------------------------------------------------

    async def put_provider(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add or replace a provider. Keys left out of ``body`` are kept from the old one."""
        self._check_key_envs(body.get("api_key_envs"))
        async with self._lock:
            old = {c.name: c for c in self.registry.settings.providers}
            previous = old.get(name)
            if previous is not None and "api_keys" not in body:
                body = {**body, "api_keys": [k.get_secret_value() for k in previous.api_keys]}
            config = _validate(ProviderConfig, {**body, "name": name})
            old[name] = config
            await self._apply(providers=list(old.values()))
            shown = self.describe(config)
            await self._log("provider.put", name, shown)
            return shown

    def _check_key_envs(self, names: Any) -> None:
        """Environment variables named through the API must be on the operator's list, set in
        the configuration file: otherwise any variable of the server's, its signing secret
        included, could be sent to a URL of the caller's choosing."""
        allowed = set(self.registry.settings.provider_key_envs_allowed)
        for name in names if isinstance(names, list) else []:
            if not isinstance(name, str):
                continue  # the model's validation says what is wrong with it
            if name.upper().startswith("CHATGATE_") or name not in allowed:
                raise InvalidRequest(
                    f"api_key_envs: {name!r} is not in the server's provider_key_envs_allowed "
                    "(set in its configuration file; CHATGATE_* variables are never allowed)",
                    param="api_key_envs",
                )

    async def remove_provider(self, name: str) -> None:
        async with self._lock:
            providers = [c for c in self.registry.settings.providers if c.name != name]
            if len(providers) == len(self.registry.settings.providers):
                raise NotFound(f"No configured provider is named `{name}`.")
            await self._apply(providers=providers)
            await self._log("provider.delete", name, {})

    async def put_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            config = _validate(ModelConfig, {**body, "name": name})
            models = [m for m in self.registry.settings.models if m.name != name]
            models.append(config)
            await self._apply(models=models)
            await self._log("model.put", name, config.model_dump())
            return config.model_dump()

    async def remove_model(self, name: str) -> None:
        async with self._lock:
            models = [m for m in self.registry.settings.models if m.name != name]
            if len(models) == len(self.registry.settings.models):
                raise NotFound(f"No configured model is named `{name}`.")
            await self._apply(models=models)
            await self._log("model.delete", name, {})

    async def reload(self) -> dict[str, int]:
        """Re-read providers, models and routing from the TOML file the server started with."""
        path = self.registry.settings.config_file
        if path is None:
            raise Conflict("The server was started without a --config file to reload.")
        try:
            fresh = read_upstreams(path)
        except (OSError, ValueError) as exc:  # ValidationError and TOMLDecodeError included
            raise InvalidRequest(f"The config file could not be used: {exc}") from None
        async with self._lock:
            await self._apply(**fresh)
        log.info("reloaded providers and models from %s", path)
        counts = {"providers": len(fresh["providers"]), "models": len(fresh["models"])}
        await self._log("providers.reload", str(path), counts)
        if self._changes is not None:  # every other process re-reads its own file
            await self._changes.announce("providers")
        return counts

    async def _apply(self, **changes: Any) -> None:
        settings = self.registry.settings.model_copy(update=changes)
        try:
            await self.registry.apply(settings)
        except ValueError as exc:
            raise Conflict(str(exc)) from None


def install_reload_signal(admin: ProviderAdmin) -> None:
    """SIGHUP re-reads the TOML file, as daemons do (only where signals can be had)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not hasattr(signal, "SIGHUP") or admin.registry.settings.config_file is None:
        return
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    def on_hangup() -> None:
        task = loop.create_task(_reload_logged(admin))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)


async def reload_announced(registry: ModelRegistry) -> None:
    """Another process reloaded its providers: re-read this one's file too (without announcing
    it again). A server started without a file has nothing to re-read."""
    if registry.settings.config_file is None:
        return
    try:
        counts = await ProviderAdmin(registry).reload()
    except (InvalidRequest, Conflict) as exc:
        log.error("providers were reloaded elsewhere; this file was not: %s", exc.message)
    else:
        log.info(
            "providers were reloaded elsewhere: %(providers)d providers and %(models)d models",
            counts,
        )


async def _reload_logged(admin: ProviderAdmin) -> None:
    try:
        counts = await admin.reload()
    except (InvalidRequest, Conflict) as exc:
        log.error("SIGHUP: the configuration was not reloaded: %s", exc.message)
    else:
        log.info("SIGHUP: %(providers)d providers and %(models)d models loaded", counts)


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"{where or 'body'}: {message}", param=where or None) from None


def _without_password(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
