"""Sign-up invites: single- or multi-use codes that expire, redeemed exactly once per use.

A code is ``inv-`` + 24 random bytes; like an API key only its SHA-256 is kept, with a short
visible prefix for lists, and the code itself is shown once, when it is made. A redemption is
one conditional ``UPDATE … SET used = used + 1 WHERE used < uses … RETURNING``: the database
decides, so two people redeeming the last use at the same moment (in two processes, or two
instances) get one account between them. PostgreSQL re-checks the condition on the row once
the first update commits; SQLite runs one writer at a time.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatgate.core.audit import Actor, AuditLog
from chatgate.core.errors import InvalidRequest, InviteRefused, NotFound
from chatgate.store.db import Database
from chatgate.store.tables import Invite

CODE_PREFIX = "inv-"
VISIBLE_PREFIX_LEN = len(CODE_PREFIX) + 6
MAX_USES = 1_000_000
MAX_HOURS = 24 * 366 * 10


@dataclass(slots=True)
class InviteInfo:
    id: int
    prefix: str
    uses: int
    used: int
    expires_at: float
    role: str
    note: str | None
    created_by: str
    created_at: float


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def new_code() -> str:
    return CODE_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()


class Invites:
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], float]) -> None:
        self._db = db
        self._audit = audit
        self._now = clock

    async def create(
        self,
        *,
        uses: int = 1,
        expires_in_hours: float = 168.0,
        role: str = "user",
        note: str | None = None,
        by: Actor,
    ) -> tuple[str, InviteInfo]:
        """Make an invite; its code is returned here once and never stored."""
        if not 1 <= uses <= MAX_USES:
            raise InvalidRequest(f"uses is 1 to {MAX_USES}", param="uses")
        if not 0 < expires_in_hours <= MAX_HOURS:
            raise InvalidRequest(
                f"expires_in_hours is more than 0 and at most {MAX_HOURS}",
                param="expires_in_hours",
            )
        if role not in ("user", "admin"):
            raise InvalidRequest("role is 'user' or 'admin'", param="role")
        code = new_code()
        now = self._now()
        async with self._db.session() as session, session.begin():
            invite = Invite(
                code_hash=hash_code(code),
                prefix=code[:VISIBLE_PREFIX_LEN],
                uses=uses,
                used=0,
                expires_at=now + expires_in_hours * 3600,
                role=role,
                note=note,
                created_by=by.name[:64],
                created_at=now,
            )
            session.add(invite)
            await session.flush()
            details = {"prefix": invite.prefix, "uses": uses, "role": role, "note": note}
            self._audit.add(session, by, "invite.create", f"invite {invite.id}", details)
            return code, _info(invite)

    async def list(self) -> list[InviteInfo]:
        async with self._db.session() as session:
            rows = (await session.scalars(select(Invite).order_by(Invite.id))).all()
        return [_info(row) for row in rows]

    async def delete(self, invite_id: int, *, by: Actor) -> None:
        """Withdraw an invite: its code stops working (accounts made with it stay)."""
        async with self._db.session() as session, session.begin():
            invite = await session.get(Invite, invite_id)
            if invite is None:
                raise NotFound(f"no invite with id {invite_id}")
            await session.execute(delete(Invite).where(Invite.id == invite_id))
            details = {"prefix": invite.prefix, "used": invite.used, "uses": invite.uses}
            self._audit.add(session, by, "invite.delete", f"invite {invite_id}", details)

    async def redeem(self, session: AsyncSession, code: str) -> InviteInfo:
        """Take one use of ``code`` in ``session``'s transaction (the caller's sign-up), or
        say why not. A use taken is given back if that transaction rolls back."""
        digest = hash_code(code)
        now = self._now()
        taken = await session.execute(
            update(Invite)
            .where(Invite.code_hash == digest, Invite.used < Invite.uses, Invite.expires_at > now)
            .values(used=Invite.used + 1)
            .returning(Invite.id)
            .execution_options(synchronize_session=False)
        )
        row = taken.first()
        if row is not None:
            invite = await session.get(Invite, row[0], populate_existing=True)
            assert invite is not None
            return _info(invite)
        invite = await session.scalar(select(Invite).where(Invite.code_hash == digest))
        if invite is None:
            raise InviteRefused("This invite code is not known.", "invite_unknown")
        if invite.expires_at <= now:
            raise InviteRefused("This invite has expired.", "invite_expired")
        raise InviteRefused("This invite has been used up.", "invite_used_up")


def _info(invite: Invite) -> InviteInfo:
    return InviteInfo(
        id=invite.id,
        prefix=invite.prefix,
        uses=invite.uses,
        used=invite.used,
        expires_at=invite.expires_at,
        role=invite.role,
        note=invite.note,
        created_by=invite.created_by,
        created_at=invite.created_at,
    )
