"""Login tokens: HS256 JWTs signed with a key derived from the service secret.

The algorithm is pinned on decode, so a token that says ``alg: none`` or anything else is
refused. Expiry is checked against the injectable clock, not the machine's, so tests and
replays agree with the rest of the service. Encoding is deterministic: the same claims always
give the same token, which lets the ChatAPI protocol hand out a user's token again while
storing only its claims.

PyJWT is imported on first use: with the ``cryptography`` package installed it loads that too
(about 8 MB), which a service whose callers all use API keys never needs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatgate.core.errors import AuthenticationFailed

if TYPE_CHECKING:
    from types import ModuleType

ALGORITHM = "HS256"


def _jwt() -> ModuleType:
    import jwt

    return jwt


_REQUIRED = ("sub", "iat", "exp", "jti", "ver")


@dataclass(frozen=True, slots=True)
class Claims:
    """What a login token says: whose it is, when it was made and ends, its id and the
    user's token version at the time (bumping the version voids every older token)."""

    user_id: int
    issued_at: int
    expires_at: int
    jti: str
    version: int

    def as_payload(self) -> dict[str, Any]:
        return {
            "sub": str(self.user_id),
            "iat": self.issued_at,
            "exp": self.expires_at,
            "jti": self.jti,
            "ver": self.version,
        }


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("eyJ")


class JwtCodec:
    def __init__(self, secret: str, lifetime_days: float, clock: Callable[[], float]) -> None:
        # A purpose-bound key: the raw secret may sign other things, and HS256 wants 32 bytes.
        self._key = hmac.new(secret.encode(), b"chatgate login tokens", hashlib.sha256).digest()
        self.lifetime = lifetime_days * 86400
        self._now = clock

    def now(self) -> float:
        return self._now()

    def new_claims(self, user_id: int, version: int) -> Claims:
        now = int(self._now())
        return Claims(
            user_id=user_id,
            issued_at=now,
            expires_at=now + int(self.lifetime),
            jti=secrets.token_urlsafe(16),
            version=version,
        )

    def encode(self, claims: Claims) -> str:
        token: str = _jwt().encode(claims.as_payload(), self._key, algorithm=ALGORITHM)
        return token

    def decode(self, token: str) -> Claims:
        """Check the signature (HS256 only) and expiry; anything wrong is one 401."""
        jwt = _jwt()
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"verify_exp": False, "verify_iat": False, "require": list(_REQUIRED)},
            )
            claims = Claims(
                user_id=int(payload["sub"]),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
                jti=str(payload["jti"]),
                version=int(payload["ver"]),
            )
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise AuthenticationFailed("Invalid login token.") from None
        if claims.expires_at <= self._now():
            raise AuthenticationFailed("This login token has expired; log in again.")
        return claims
