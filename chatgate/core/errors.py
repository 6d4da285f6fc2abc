"""The one error hierarchy. Transports map these to their own wire shape in one place each."""

from __future__ import annotations

from dataclasses import dataclass


class ChatgateError(Exception):
    """Base of every error a client may see. ``code`` is stable and machine-readable."""

    code = "internal_error"
    status = 500
    retryable = False
    # OpenAI's error ``type``, when the error knows it better than its status does (an
    # upstream's error keeps the upstream's own type and code); None: derived from ``status``.
    error_type: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(ChatgateError):
    code = "invalid_request_error"
    status = 400


class AuthenticationFailed(ChatgateError):
    code = "invalid_api_key"
    status = 401


class InvalidCredentials(AuthenticationFailed):
    """A login with a wrong user name or password (the same answer for either)."""

    code = "invalid_credentials"


class PermissionDenied(ChatgateError):
    code = "permission_denied"
    status = 403


class PasswordChangeRequired(PermissionDenied):
    """A login whose password an administrator chose (generated, or set as one-time): it may
    change the password and nothing else until then.

    Only logins are held back, never API keys. The mark is about the password: someone else
    (the administrator, and whatever channel carried it) has known it, so it must not become the
    user's lasting credential. A key is another credential, made by the user after logging in
    with a password of their own, and the programs that use it have nothing to do with the
    reset: holding them back would break a team's scripts because someone forgot a password,
    which is why IAM systems that force a new password at the next sign-in (AWS IAM's "require
    password reset", for one) leave access keys alone. An account suspected of being in the
    wrong hands needs its keys revoked as well, and that is a separate, explicit act. A new
    account has no keys at all: it can make one only once its password is its own.
    """

    code = "password_change_required"


class AccountDisabled(PermissionDenied):
    """A login with the right password to an account an administrator has disabled."""

    code = "account_disabled"


class AccountPending(AccountDisabled):
    """A login with the right password to an account made by sign-up, still waiting for an
    administrator's approval."""

    code = "account_pending"


class SignupClosed(PermissionDenied):
    code = "signup_closed"


class InviteRefused(PermissionDenied):
    """A sign-up whose invite code is missing, unknown, expired or used up (``code`` says
    which)."""

    code = "invite_invalid"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, param="invite")
        self.code = code


class NotFound(ChatgateError):
    code = "not_found"
    status = 404


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(ChatgateError):
    code = "conflict"
    status = 409


class PayloadTooLarge(InvalidRequest):
    code = "request_too_large"
    status = 413


class UnprocessableRequest(InvalidRequest):
    """Values each valid alone that do not make sense together (a range too long, or
    backwards), answered as the API answers a value of the wrong form."""

    status = 422


class UnsupportedMediaType(InvalidRequest):
    """A body in a format the route does not take (a form where JSON is expected)."""

    code = "unsupported_media_type"
    status = 415


@dataclass(frozen=True, slots=True)
class RateFacts:
    """Where a caller stands against its limits, for clients that pace themselves.

    ``requests`` describe the request limit that binds (of the daily and per-minute limits of
    the user and of the key in use, the one with the least left, or the one exceeded), ``tokens``
    the daily token budget that binds; resets are seconds from now. ``None`` means no such
    limit applies.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None


class LimitExceeded(ChatgateError):
    """A quota or rate limit. ``facts`` say where the caller stands; each transport renders them
    (HTTP as x-ratelimit-* headers). ``headers`` are extra HTTP headers, kept for callers that
    already know them."""

    code = "rate_limit_exceeded"
    status = 429
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        facts: RateFacts | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers or {}
        self.facts = facts


class QuotaExhausted(LimitExceeded):
    """A daily cap that is used up: retrying before the day turns is pointless."""

    code = "insufficient_quota"
    retryable = False


class TooManyLoginAttempts(LimitExceeded):
    code = "too_many_attempts"


class UpstreamError(ChatgateError):
    """The model server failed; ``status`` is what the client should see (502 by default)."""

    code = "upstream_error"
    status = 502
    retryable = True


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    status = 502


class UpstreamRateLimited(UpstreamError):
    """The upstream answered 429; ``retry_after`` is its own hint, in seconds."""

    code = "upstream_rate_limited"
    status = 429
    error_type = "requests"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamCoolingDown(UpstreamUnavailable):
    """Every deployment of the model has failed lately and is resting; try again later."""

    code = "upstream_cooling_down"
    status = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamRejected(ChatgateError):
    """The upstream refused the request itself (a 4xx such as a context length error)."""

    code = "upstream_rejected"
    status = 400

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status = status


class UpstreamModelsUnknown(UpstreamUnavailable):
    """A model name that is not known yet because an upstream's model list could not be read:
    it may well be one of that upstream's, so "does not exist" would be wrong."""

    code = "upstream_models_unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamMisconfigured(UpstreamError):
    """Our own credentials were refused upstream: the operator must act, not the client."""

    code = "upstream_misconfigured"
    status = 502
    retryable = False


class Cancelled(ChatgateError):
    code = "cancelled"
    status = 499


class ShuttingDown(ChatgateError):
    """The server is stopping and its grace period for running replies has passed: what the
    reply had said is stored, and the request may be sent again (to another server)."""

    code = "server_shutting_down"
    status = 503
    retryable = True


class PortInUse(Exception):
    """A port the server is to listen on cannot be had: told to the operator in one line, with
    the option that chooses another. Never a client's error, so not a ``ChatgateError``."""

    def __init__(self, what: str, host: str, port: int, option: str, reason: str) -> None:
        super().__init__(
            f"cannot listen for {what} on {host}:{port} ({reason}); "
            f"choose another port with {option}"
        )
        self.port = port
