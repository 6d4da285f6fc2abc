"""The audit log: who changed what, and when.

Changes to users, quotas, keys, providers and models are written here by the core, in the same
transaction as the change itself where the change is in the database, so a change is never kept
without its entry. An entry never holds a secret: a new password is "changed", a key is its
visible prefix.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.store.db import Database
from chatgate.store.tables import AuditEntry

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user of the API, or the operator at the command line."""

    user_id: int | None
    name: str

    @classmethod
    def operator(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(None, f"command line ({who})")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: float
    actor_id: int | None
    actor: str
    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[AuditRecord]
    next_before: int | None


def entry(actor: Actor, action: str, target: str, details: dict[str, Any], at: float) -> AuditEntry:
    return AuditEntry(
        at=at,
        actor_id=actor.user_id,
        actor=actor.name[:64],
        action=action,
        target=target[:255],
        details=orjson.dumps(details, default=str).decode(),
    )


class AuditLog:
    """Reads the log, and writes the entries of changes that live outside the database."""

    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db = db
        self._now = now

    def add(
        self,
        session: AsyncSession,
        actor: Actor,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add an entry to ``session``'s transaction, with the change it describes."""
        session.add(entry(actor, action, target, details or {}, self._now()))

    async def record(
        self, actor: Actor, action: str, target: str, details: dict[str, Any] | None = None
    ) -> None:
        async with self._db.session() as session, session.begin():
            self.add(session, actor, action, target, details)

    async def page(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """Newest first. ``action`` matches a whole action (``user.quota``) or a family
        (``user``); ``before`` is the ``next_before`` of the previous page."""
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(min(limit, MAX_PAGE) + 1)
        if actor is not None:
            stmt = stmt.where(AuditEntry.actor == actor)
        if action is not None:
            family = action.rstrip(".") + "."
            stmt = stmt.where(
                (AuditEntry.action == action)
                | AuditEntry.action.startswith(family, autoescape=True)
            )
        if target is not None:
            stmt = stmt.where(AuditEntry.target == target)
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEntry.at < until)
        if before is not None:
            stmt = stmt.where(AuditEntry.id < before)
        async with self._db.session() as session:
            rows = list((await session.scalars(stmt)).all())
        more = len(rows) > min(limit, MAX_PAGE)
        rows = rows[: min(limit, MAX_PAGE)]
        return AuditPage(
            items=[_record(row) for row in rows],
            next_before=rows[-1].id if more and rows else None,
        )


def _record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        actor_id=row.actor_id,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=orjson.loads(row.details) if row.details else {},
    )
