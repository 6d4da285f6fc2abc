"""Where the gateway under test keeps its rows and counts its quotas.

``sqlite``: a fresh SQLite file in the run's data directory, quotas counted in the process (the
default, as ``chatgate serve`` runs with nothing configured).

``pg-redis``: a PostgreSQL database created for the run (``chatgate_bench_<time>_<hex>``,
dropped at the end) and Redis for the quota counters under a prefix of the run's own (its keys
deleted at the end), so runs never see each other's rows or counts. The schema is made with
``chatgate db upgrade`` before the first user is.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

STORES = ("sqlite", "pg-redis")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Store:
    """The settings that point a gateway at its store, and how to take the store down."""

    kind: str
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None  # the PostgreSQL database made for this run
    admin_url: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def database_url(self) -> str | None:
        return self.settings.get("database_url")

    def describe(self) -> dict[str, Any]:
        """What the JSON report says about the store."""
        return {
            "kind": self.kind,
            "database": self.database,
            "redis_url": self.settings.get("redis_url"),
            "redis_prefix": self.settings.get("redis_prefix"),
            "versions": self.versions,
        }

    def header(self) -> str:
        """One line for the printed header."""
        if self.kind == "sqlite":
            return "store sqlite (a fresh file; quotas in process)"
        pg, redis = self.versions.get("postgresql", "?"), self.versions.get("redis", "?")
        return (
            f"store pg-redis (PostgreSQL {pg}, database {self.database}; "
            f"Redis {redis} {self.settings['redis_url']}, prefix {self.settings['redis_prefix']})"
        )

    async def close(self) -> None:
        """Drop the run's database and delete its Redis keys."""
        if self.kind != "pg-redis" or not self.settings:
            return
        import asyncpg  # type: ignore[import-untyped]
        import redis.asyncio as aioredis

        if self.database is not None and self.admin_url is not None:
            conn = await asyncpg.connect(self.admin_url, timeout=10)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await conn.close()
        client = aioredis.Redis.from_url(self.settings["redis_url"])
        try:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=self.settings["redis_prefix"] + "*"):
                batch.append(key)
                if len(batch) >= 500:
                    await client.delete(*batch)
                    batch = []
            if batch:
                await client.delete(*batch)
        finally:
            await client.aclose()


async def open_store(
    kind: str, run: str, admin_url: str = PG_ADMIN, redis_url: str = REDIS
) -> Store:
    """The store of one run named ``run`` (its start time): for ``pg-redis`` a new database on
    the server of ``admin_url`` and a fresh prefix on ``redis_url``."""
    if kind == "sqlite":
        return Store(kind)
    if kind != "pg-redis":
        raise ValueError(f"unknown store {kind!r}: one of {', '.join(STORES)}")
    import asyncpg  # type: ignore[import-untyped]
    import redis.asyncio as aioredis
    from sqlalchemy.engine.url import make_url

    tag = f"{run.replace('-', '_')}_{secrets.token_hex(3)}"
    name = f"chatgate_bench_{tag}"
    store = Store(kind, admin_url=admin_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("server")
        store.versions["redis"] = str(info.get("redis_version", "?"))
    finally:
        await client.aclose()
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        store.versions["postgresql"] = str(await conn.fetchval("SHOW server_version"))
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    store.database = name
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    store.settings = {
        "database_url": url.render_as_string(hide_password=False),
        "redis_url": redis_url,
        "redis_prefix": f"chatgate-bench-{tag}:",
    }
    return store
