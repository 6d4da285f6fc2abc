"""The one typed configuration object.

Built once at start (``Settings.load``) from ``CHATGATE_*`` environment variables and an optional
TOML file, then passed down. Nothing else in the package reads the environment.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_SECRET_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
_UNSAFE_SECRETS = {"changeme", "secret", "changethis", ""}


class Timeouts(BaseModel):
    """Upstream timeouts in seconds: connect, first byte/token, idle between chunks, whole call.

    ``first_token`` is what an interactive user waits for a reply to begin on one try: a large
    model starts well within it, and a silent upstream is tried again (or the next deployment)
    instead of leaving the user staring at nothing. Slow local servers set their own.
    """

    connect: float = 10.0
    first_token: float = 20.0
    idle: float = 60.0
    total: float = 600.0


class Routing(BaseModel):
    """How a failing deployment is retried, given up for the next one, and rested.

    Retries happen only before the first byte of a reply has gone to the client, and only for
    failures that cannot have been the request's own fault (connect errors, 429, 5xx); a
    first-token timeout moves to the next deployment at once. ``backoff_base * 2**n`` (capped at
    ``backoff_max``, with full jitter) is waited
    between tries unless the upstream's ``retry-after`` says longer; a ``retry-after`` beyond
    ``max_retry_wait`` moves straight to the next deployment. ``breaker_failures`` requests in a
    row that failed on a deployment (a request's retries count once) take it out for
    ``breaker_cooldown`` seconds, after which one request probes it.
    ``request_deadline`` bounds one request as a whole: every try, wait and fallback, and the
    reply itself.
    """

    retries: int = Field(default=2, ge=0)
    backoff_base: float = Field(default=0.25, ge=0)
    backoff_max: float = Field(default=4.0, ge=0)
    max_retry_wait: float = Field(default=10.0, ge=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown: float = Field(default=30.0, ge=0)
    request_deadline: float = Field(default=600.0, gt=0)


class ReplySettings(BaseModel):
    """Resumable replies: how long one runs on with nobody attached (a page that reloads or a
    client that reconnects comes back within it), and how long its events are kept after its
    end, for a client that comes back just then."""

    grace_seconds: float = Field(default=300.0, gt=0)
    keep_seconds: float = Field(default=120.0, gt=0)
    lease_seconds: float = Field(default=10.0, gt=0)
    """With Redis: how long a reply's producer holds it between renewals; once it lapses (that
    process is gone) a follower on any instance ends the reply with a ``producer_lost`` error,
    or, when nobody follows it, the instance whose sweep (once a lease period) claims it first;
    either stores what it said."""


class ModelConfig(BaseModel):
    """A model as users see it, mapped to one or more provider deployments (tried in order).

    Prices are per million tokens. ``allowed_users``/``allowed_roles``, when given, limit who may
    use (and see) the model; empty means everyone.
    """

    name: str
    aliases: list[str] = Field(default_factory=list)
    deployments: list[str] = Field(default_factory=list)
    upstream_name: str | None = None
    context_window: int = 8192
    input_price: float = Field(default=0.0, ge=0)
    output_price: float = Field(default=0.0, ge=0)
    kind: Literal["chat", "completion"] = "chat"
    allowed_users: list[str] = Field(default_factory=list)
    allowed_roles: list[str] = Field(default_factory=list)


def http_base_url(url: str) -> str:
    """An upstream's base URL: http or https with a host, and no query or fragment (any host,
    local ones included: local model servers are the usual case)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http:// or https:// URL with a host, not {url!r}")
    if "?" in url or "#" in url:
        raise ValueError(f"base_url must not have a query or a fragment: {url!r}")
    return url


def not_chatgates_own(name: str) -> str:
    """An environment variable a provider's key may come from: never one of chatgate's own
    settings (``CHATGATE_SECRET_KEY`` would hand the signing secret to the upstream)."""
    if name.upper().startswith("CHATGATE_"):
        raise ValueError(f"{name} is one of chatgate's own settings, never a provider's key")
    return name


class ProviderConfig(BaseModel):
    """One upstream model server.

    ``responses``: how ``POST /v1/responses`` reaches it: ``translate`` (its Chat Completions,
    the default: every server speaks them) or ``passthrough`` (its own ``/responses``, for a
    server that speaks the Responses API, whose hosted tools and reasoning items then work; the
    state stays in chatgate, see ``providers/responses_relay.py``).
    ``takes_reasoning_effort``: whether its Chat Completions take ``reasoning_effort`` (a
    Responses request's ``reasoning.effort`` is sent as that); servers that refuse unknown
    fields set it to false and the field is left out.
    """

    name: str
    kind: Literal["openai-compatible", "azure-openai", "demo"] = "openai-compatible"
    base_url: str = "https://api.openai.com/v1"
    api_keys: list[SecretStr] = Field(default_factory=list)
    api_key_envs: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    proxy: str | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    api_version: str | None = None
    deployment: str | None = None
    discover_models: bool = True
    max_event_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    responses: Literal["translate", "passthrough"] = "translate"
    takes_reasoning_effort: bool = True

    @field_validator("base_url")
    @classmethod
    def _http_base_url(cls, value: str) -> str:
        return http_base_url(value)

    @field_validator("api_key_envs")
    @classmethod
    def _not_chatgates_own(cls, names: list[str]) -> list[str]:
        return [not_chatgates_own(name) for name in names]

    @model_validator(mode="after")
    def _passthrough_speaks_openai(self) -> ProviderConfig:
        if self.responses == "passthrough" and self.kind != "openai-compatible":
            raise ValueError("responses = 'passthrough' needs an openai-compatible provider")
        return self

    @model_validator(mode="after")
    def _keys_from_env(self) -> ProviderConfig:
        """Keys named by environment variable are read here, when settings are built."""
        have = {k.get_secret_value() for k in self.api_keys}
        for env_name in self.api_key_envs:
            value = os.environ.get(env_name)
            if value and value not in have:
                self.api_keys.append(SecretStr(value))
                have.add(value)
        return self


class Settings(BaseSettings):
    """Every setting chatgate has; each is documented in the README's settings table."""

    model_config = SettingsConfigDict(
        env_prefix="CHATGATE_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
        # A .env file in the working directory is read like the environment (which wins).
        env_file=".env",
        env_file_encoding="utf-8",
    )

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("chatgate", appauthor=False))
    )
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 9000
    # Processes serving the same ports (they share limits through Redis), and how long running
    # replies may go on once the server is told to stop.
    workers: int = Field(default=1, ge=1)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    access_log: bool = False
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    timezone: str | None = None

    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CHATGATE_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CHATGATE_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    openai_proxy: str | None = None
    demo_model: bool | None = None
    demo_chunk_delay: float = 0.02
    models_refresh_seconds: float = 300.0
    upstream_timeouts: Timeouts = Field(default_factory=Timeouts)
    routing: Routing = Field(default_factory=Routing)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    providers: list[ProviderConfig] = Field(default_factory=list)
    # Environment variables that providers added through the admin API may read keys from.
    provider_key_envs_allowed: list[str] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    default_context_window: int = 8192
    max_history_turns: int | None = None
    conversation_cache_size: int = 1000
    conversation_titles: bool = True
    max_request_bytes: int = 4 * 1024 * 1024
    # An uploaded ChatGPT export (POST /api/v1/conversations/import), and what its zip unpacks to.
    max_import_bytes: int = Field(default=64 * 1024 * 1024, ge=1, le=1 << 30)
    max_message_chars: int = Field(default=200_000, ge=1)
    max_system_chars: int = Field(default=100_000, ge=1)

    key_cache_seconds: float = 30.0
    jwt_lifetime_days: float = Field(default=30.0, gt=0)
    anonymous_user: str | None = None
    websocket_max_in_flight: int = 16
    compat_model: str | None = None
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: float = Field(default=300.0, gt=0)
    # Sign-up at start: off, open with an administrator's approval, or by invite only. An
    # administrator changes it at run time (kept in the database; that value then wins).
    signup: Literal["off", "approval", "invite"] = "off"
    cookie_secure: bool | None = None
    redis_prefix: str = "chatgate:"

    default_daily_requests: int | None = 10
    default_daily_tokens: int | None = None
    default_rpm: int | None = None
    default_max_streams: int | None = None

    usage_flush_seconds: float = 0.5
    config_file: Path | None = None

    # Where ``chatgate chat`` and ``ask`` send questions instead of this machine's data.
    url: str | None = None
    api_key: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        toml_file = _toml_file_from(init_settings, env_settings, dotenv_settings)
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _alias_pairs(cls, value: Any) -> Any:
        """``old=new,other=new`` in the environment; a table in TOML."""
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for part in value.split(","):
            if not part.strip():
                continue
            alias, sep, target = part.partition("=")
            if not sep or not alias.strip() or not target.strip():
                raise ValueError(f"model alias {part.strip()!r} is not of the form old=new")
            pairs[alias.strip()] = target.strip()
        return pairs

    @field_validator("provider_key_envs_allowed")
    @classmethod
    def _allowed_envs_are_not_chatgates(cls, names: list[str]) -> list[str]:
        return [not_chatgates_own(name) for name in names]

    @field_validator("grpc_port", "port")
    @classmethod
    def _port_range(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError("a port is between 0 and 65535")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_secret(self) -> Settings:
        if self.secret_key is not None:
            raw = self.secret_key.get_secret_value()
            if raw.lower() in _UNSAFE_SECRETS or len(raw) < 16:
                raise ValueError(
                    "CHATGATE_SECRET_KEY is too weak: use at least 16 random characters "
                    "or leave it unset to have one generated"
                )
        return self

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment, the TOML file and explicit overrides."""
        if config_file is not None:
            if not config_file.is_file():
                raise FileNotFoundError(f"config file not found: {config_file}")
            overrides["config_file"] = config_file
        return cls(**overrides)

    # ---- derived values -------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'chatgate.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def upstream_providers(self) -> list[ProviderConfig]:
        """Configured providers, with the OPENAI_* default upstream first when it is set."""
        providers = list(self.providers)
        if self.openai_base_url or self.openai_api_key:
            keys = [self.openai_api_key] if self.openai_api_key else []
            providers.insert(
                0,
                ProviderConfig(
                    name="openai",
                    base_url=(self.openai_base_url or "https://api.openai.com/v1").rstrip("/"),
                    api_keys=keys,
                    proxy=self.openai_proxy,
                    timeouts=self.upstream_timeouts,
                ),
            )
        return providers

    @property
    def serve_demo(self) -> bool:
        if self.demo_model is not None:
            return self.demo_model
        return not self.upstream_providers

    def secret(self) -> str:
        """The signing secret: from settings, else generated once and kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return ensure_secret_file(self.data_dir)


def read_upstreams(config_file: Path) -> dict[str, Any]:
    """The ``providers``, ``models`` and ``routing`` of a TOML settings file, validated, for
    reloading them into a running server (the rest of the settings is fixed at start)."""
    with config_file.open("rb") as fh:
        data = tomllib.load(fh)
    fresh = {
        "providers": TypeAdapter(list[ProviderConfig]).validate_python(data.get("providers", [])),
        "models": TypeAdapter(list[ModelConfig]).validate_python(data.get("models", [])),
        "routing": Routing.model_validate(data.get("routing", {})),
    }
    if "model_aliases" in data:  # aliases set elsewhere (the environment) stay as they are
        aliases = TypeAdapter(dict[str, str]).validate_python(data["model_aliases"])
        fresh["model_aliases"] = aliases
    return fresh


def ensure_secret_file(data_dir: Path) -> str:
    """Read the secret kept in ``data_dir``, creating it with mode 0600 on first use."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / _SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _toml_file_from(*sources: PydanticBaseSettingsSource) -> Path | None:
    for source in sources:
        data = source()
        value = data.get("config_file")
        if value:
            return Path(value)
    return None
