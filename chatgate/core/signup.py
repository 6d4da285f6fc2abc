"""Sign-up: people making their own account, when an administrator allows it.

The mode is ``off`` (the default), ``approval`` (anyone may sign up; the account waits as
``pending`` until an administrator enables it) or ``invite`` (an invite code is needed). The
configured ``signup`` setting is the start value; an administrator's choice is kept in the
database, so every process and instance reads the same one (it is read there each time: a
sign-up is rare, and no cache can then be stale).

An invite makes an active account with the invite's role, in ``approval`` mode as in ``invite``
mode; with sign-up off, nothing is accepted, invite or not. The account and the invite's use are
written in one transaction, so a name already taken gives the use back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from chatgate.core.accounts import AccountService, UserInfo, user_info, validate_username
from chatgate.core.audit import Actor
from chatgate.core.errors import Conflict, InvalidRequest, InviteRefused, SignupClosed
from chatgate.core.invites import Invites
from chatgate.core.logins import LoginLimiter
from chatgate.store.db import Database
from chatgate.store.tables import SiteSetting, User

log = logging.getLogger("chatgate.accounts")

Mode = Literal["off", "approval", "invite"]
MODES: tuple[Mode, ...] = ("off", "approval", "invite")
_SETTING = "signup"


class SignupService:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        invites: Invites,
        start_mode: Mode,
        limiter: LoginLimiter,
        clock: Callable[[], float],
    ) -> None:
        self._db = db
        self._accounts = accounts
        self.invites = invites
        self._start_mode = start_mode
        self.limiter = limiter
        self._now = clock

    async def mode(self) -> Mode:
        async with self._db.session() as session:
            stored = await session.get(SiteSetting, _SETTING)
        if stored is not None and stored.value in MODES:
            return stored.value
        return self._start_mode

    async def set_mode(self, mode: str, *, by: Actor) -> Mode:
        if mode not in MODES:
            raise InvalidRequest("mode is 'off', 'approval' or 'invite'", param="mode")
        async with self._db.session() as session, session.begin():
            stored = await session.get(SiteSetting, _SETTING, with_for_update=True)
            before = stored.value if stored is not None else self._start_mode
            if stored is None:
                session.add(SiteSetting(name=_SETTING, value=mode))
            else:
                stored.value = mode
            self._accounts.audit.add(
                session, by, "signup.mode", "signup", {"mode": mode, "was": before}
            )
        log.info("sign-up is now %s", mode)
        return mode

    async def sign_up(
        self, username: str, password: str, invite: str | None, address: str | None
    ) -> UserInfo:
        """Make an account as the mode allows: active with a valid invite, else pending in
        ``approval`` mode. A failed attempt (a bad invite code, a name taken) counts against
        the address as a failed login does, in a window of its own, so invite codes cannot be
        guessed in bulk and sign-ups never lock anyone out of logging in."""
        mode = await self.mode()
        if mode == "off":
            raise SignupClosed("Sign-up is off; ask an administrator for an account.")
        if mode == "invite" and not invite:
            raise InviteRefused("Sign-up needs an invite code.", "invite_required")
        attempt = await self.limiter.take("signup:" + username[:64], address)
        validate_username(username)
        digest = await self._accounts.passwords.hash(password)
        try:
            async with self._db.session() as session, session.begin():
                # The invite's use comes first: the write that decides is the transaction's
                # first statement (SQLite takes its write lock there, not midway).
                taken = await self.invites.redeem(session, invite) if invite else None
                exists = await session.scalar(select(User.id).where(User.name == username))
                if exists is not None:
                    raise Conflict(f"user {username!r} already exists")
                pending = taken is None
                user = User(
                    name=username,
                    password_hash=digest,
                    role=taken.role if taken is not None else "user",
                    disabled=pending,
                    pending=pending,
                    created_at=self._now(),
                )
                session.add(user)
                await session.flush()
                details: dict[str, object] = {"mode": mode, "role": user.role}
                details["status"] = "pending" if pending else "active"
                if taken is not None:
                    details["invite"] = taken.prefix
                    details["invite_id"] = taken.id
                actor = Actor(user.id, username)
                self._accounts.audit.add(session, actor, "user.signup", username, details)
                info = user_info(user)
        except IntegrityError:  # the same name signed up at the same moment
            raise Conflict(f"user {username!r} already exists") from None
        await attempt.succeeded()
        log.info("user %s signed up (%s)", username, info.status)
        return info
