"""The first run: while no administrator exists, a one-time link creates the first one.

The link's token is derived from the server's secret and the newest user's id, so every worker
and instance sharing the secret and the database shows the same link, and the link stops
working as soon as any user is created: it works once, and only while no administrator exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from chatgate.core.accounts import AccountService, UserInfo, constant_time_equal, validate_username
from chatgate.core.audit import Actor
from chatgate.core.errors import Conflict, PermissionDenied
from chatgate.store.db import Database
from chatgate.store.tables import FirstAdmin, User

log = logging.getLogger("chatgate.accounts")
SETUP_ACTOR = Actor(None, "first-run setup")


class FirstRun:
    def __init__(self, db: Database, accounts: AccountService, secret: str) -> None:
        self._db = db
        self._accounts = accounts
        self._secret = secret.encode()

    async def needed(self) -> bool:
        async with self._db.session() as session:
            admin = await session.scalar(select(User.id).where(User.role == "admin").limit(1))
        return admin is None

    async def token(self) -> str | None:
        """The setup link's token, or None once an administrator exists."""
        if not await self.needed():
            return None
        async with self._db.session() as session:
            newest = await session.scalar(select(func.max(User.id))) or 0
        digest = hmac.new(self._secret, f"first-run:{newest}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:24]).decode()

    async def create_admin(self, token: str, name: str, password: str) -> UserInfo:
        expected = await self.token()
        if expected is None:
            raise Conflict("An administrator exists already: sign in instead.")
        if not constant_time_equal(token, expected):
            raise PermissionDenied(
                "This setup link is not valid: it works once, and only until the first "
                "administrator exists. The server's log shows the current one."
            )
        validate_username(name)
        await self._claim(name)
        try:
            info = await self._accounts.create_user(name, password, role="admin", by=SETUP_ACTOR)
        except BaseException:
            await self._release()
            raise
        log.info("first administrator %s created through the setup link", name)
        return info

    async def _claim(self, name: str) -> None:
        """Take the one first-administrator row; the database lets one setup through."""
        try:
            async with self._db.session() as session, session.begin():
                session.add(FirstAdmin(id=1, username=name, at=time.time()))
        except IntegrityError:
            raise Conflict("An administrator exists already: sign in instead.") from None

    async def _release(self) -> None:
        async with self._db.session() as session, session.begin():
            await session.execute(delete(FirstAdmin).where(FirstAdmin.id == 1))
