"""``chatgate doctor``: what a server started here would find, one line a check.

It reads the configuration as ``serve`` would, opens the database, pings Redis when one is
configured, and asks every provider for its models. A check that fails names its cause and
what to change; the command then exits 1, so that a deployment script can stop on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from chatgate import health
from chatgate.core.errors import ChatgateError
from chatgate.settings import ProviderConfig, Settings


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


async def check_database(settings: Settings) -> Check:
    from chatgate.store.db import Database

    url = settings.resolved_database_url
    shown = health.shown_url(url)
    file = Path(url.split("///", 1)[-1])
    if settings.is_sqlite and not await asyncio.to_thread(file.exists):
        return Check("database", True, f"{shown} does not exist yet; serve creates it")
    db = Database(url)
    try:
        async with asyncio.timeout(10):
            current = await db.is_current()
    except Exception as exc:  # whatever stops the connection is the answer
        why = f"cannot open {shown} ({health.cause(exc)})"
        return Check("database", False, f"{why}: check database_url and that it is running")
    finally:
        await db.close()
    if current:
        return Check("database", True, f"{shown}, schema current")
    if settings.is_sqlite:
        return Check("database", True, f"{shown}, schema older; serve upgrades it")
    return Check("database", False, f"{shown}, schema not current: run chatgate db upgrade")


async def check_redis(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check("redis", True, "not configured (limits are kept in this process)")
    shown = health.shown_url(settings.redis_url)
    client = health.redis_client(settings.redis_url)
    try:
        problem = await health.redis_problem(client)
    finally:
        await client.aclose()
    if problem is not None:
        return Check("redis", False, f"{shown}: {problem}: check redis_url and that it is running")
    return Check("redis", True, f"{shown} answers")


async def check_provider(config: ProviderConfig, settings: Settings) -> Check:
    from chatgate.providers.router import build_provider

    name = f"provider {config.name}"
    where = config.base_url if config.kind != "demo" else "built in"
    provider = build_provider(config, settings)
    try:
        async with asyncio.timeout(config.timeouts.connect + config.timeouts.first_token):
            models = await provider.list_models()
    except Exception as exc:  # the provider's failure, whatever it is, is reported
        why = exc.message if isinstance(exc, ChatgateError) else health.cause(exc)
        if isinstance(exc, ChatgateError) and exc.__cause__ is not None:
            why += f" ({health.cause(exc.__cause__)})"
        for key in config.api_keys:
            if key.get_secret_value():
                why = why.replace(key.get_secret_value(), "***")
        fix = "check its base_url, its key and that it is reachable from here"
        return Check(name, False, f"{where}: {why}: {fix}")
    finally:
        await provider.close()
    if not models:
        return Check(name, True, f"{where}: reachable, but it lists no models")
    listed = ", ".join(sorted(models)[:8]) + (", …" if len(models) > 8 else "")
    count = f"{len(models)} model" + ("" if len(models) == 1 else "s")
    return Check(name, True, f"{where}: {count} ({listed})")


def providers_of(settings: Settings) -> list[ProviderConfig]:
    configs = list(settings.upstream_providers)
    if settings.serve_demo and not any(c.kind == "demo" for c in configs):
        configs.append(ProviderConfig(name="demo", kind="demo"))
    return configs


async def run_checks(settings: Settings) -> list[Check]:
    checks = [await check_database(settings), await check_redis(settings)]
    providers = providers_of(settings)
    checks += await asyncio.gather(*(check_provider(c, settings) for c in providers))
    return checks
