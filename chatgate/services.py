"""Everything the transports and commands use, built once from ``Settings``.

The server builds one ``Services`` in its lifespan; every command of the CLI builds its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from chatgate.core.accounts import AccountService, Limits
from chatgate.core.change_signals import signals_for
from chatgate.core.changes import ChangeFeed, DatabaseChangeFeed
from chatgate.core.chat import ChatService
from chatgate.core.clock import Clock
from chatgate.core.conversations import ConversationService
from chatgate.core.draining import Drain
from chatgate.core.embeddings import EmbeddingService
from chatgate.core.invites import Invites
from chatgate.core.jwts import JwtCodec
from chatgate.core.logins import LoginService, login_limiter
from chatgate.core.metrics import Metrics, metrics_for_process
from chatgate.core.partial_replies import PartialReplies
from chatgate.core.quota_backends import QuotaBackend
from chatgate.core.quotas import QuotaService
from chatgate.core.replies import Replies
from chatgate.core.reply_store import MemoryReplyStore, ReplyStore
from chatgate.core.response_store import ResponseState
from chatgate.core.signup import SignupService
from chatgate.core.usage import UsageQueries, UsageRecorder
from chatgate.core.usage_series import UsageSeries
from chatgate.providers.admin import reload_announced
from chatgate.providers.demo import DEMO_MODEL
from chatgate.providers.router import ModelRegistry
from chatgate.settings import Settings
from chatgate.store.db import Database
from chatgate.store.writer import BatchWriter

log = logging.getLogger("chatgate")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    writer: BatchWriter
    accounts: AccountService
    quotas: QuotaService
    usage: UsageRecorder
    metrics: Metrics
    models: ModelRegistry
    chat: ChatService
    replies: Replies
    conversations: ConversationService
    logins: LoginService
    usage_queries: UsageQueries
    embeddings: EmbeddingService
    responses: ResponseState
    changes: ChangeFeed | None = None
    drain: Drain = field(default_factory=Drain)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        migrate: bool | None = None,
        start_models: bool = True,
        watch_changes: bool | None = None,
    ) -> Services:
        """Open the database (upgrading SQLite by itself), start the writer and providers.

        A server (``watch_changes``, by default when it starts its models) follows the
        account changes other processes make; a command only records its own."""
        clock = clock or Clock(settings.timezone)
        db = Database(settings.resolved_database_url)
        if migrate if migrate is not None else db.is_sqlite:
            await db.upgrade()
        writer = BatchWriter(db, interval=settings.usage_flush_seconds)
        writer.start()
        limits = Limits(
            daily_requests=settings.default_daily_requests,
            daily_tokens=settings.default_daily_tokens,
            rpm=settings.default_rpm,
            max_streams=settings.default_max_streams,
        )
        codec = JwtCodec(settings.secret(), settings.jwt_lifetime_days, clock.now)
        changes = DatabaseChangeFeed(db, clock.now, signals=signals_for(settings, db))
        accounts = AccountService(
            db, writer, limits, settings.key_cache_seconds, clock.now, codec=codec, changes=changes
        )
        serving = start_models if watch_changes is None else watch_changes
        if serving:
            changes.watch(accounts.heard)
        limiter = login_limiter(
            settings.login_max_failures,
            settings.login_window_seconds,
            clock.now,
            redis_url=settings.redis_url,
            prefix=settings.redis_prefix,
        )
        logins = LoginService(accounts, codec, limiter, db)
        usage_queries = UsageQueries(db, writer, clock)
        quotas = QuotaService(clock, quota_backend(settings), usage_queries.counted)
        usage = UsageRecorder(writer, clock)
        metrics = metrics_for_process(writer)
        models = ModelRegistry(settings)
        changes.hear("providers", lambda: reload_announced(models))
        if start_models:
            await models.start()
            if DEMO_MODEL in models.names() and not settings.upstream_providers:
                log.warning(
                    "no upstream is configured: serving the built-in demo model only "
                    "(set OPENAI_BASE_URL and OPENAI_API_KEY to use a real one)"
                )
        conversations = ConversationService(db, writer, models, settings, clock)
        drain = Drain()
        chat = ChatService(
            models, quotas, usage, metrics, settings, conversations=conversations, drain=drain
        )
        replies = Replies(
            chat,
            reply_store(settings),
            settings.replies,
            keep_partial=PartialReplies(conversations).keep,
            written=writer.flush if settings.redis_url else None,
        )
        if serving and settings.redis_url:  # others' replies may outlive their instance
            replies.start_sweeping()
        return cls(
            settings=settings,
            clock=clock,
            db=db,
            writer=writer,
            accounts=accounts,
            quotas=quotas,
            usage=usage,
            metrics=metrics,
            models=models,
            chat=chat,
            replies=replies,
            conversations=conversations,
            logins=logins,
            usage_queries=usage_queries,
            embeddings=EmbeddingService(models, quotas, usage, metrics, settings),
            responses=ResponseState(db, writer, clock, shared=conversations.shared),
            changes=changes,
            drain=drain,
        )

    @cached_property
    def signup(self) -> SignupService:
        """Sign-up and its invites; failed attempts are limited like failed logins."""
        settings = self.settings
        limiter = login_limiter(
            settings.login_max_failures,
            settings.login_window_seconds,
            self.clock.now,
            redis_url=settings.redis_url,
            prefix=settings.redis_prefix,
            kind="signup",
        )
        invites = Invites(self.db, self.accounts.audit, self.clock.now)
        return SignupService(
            self.db, self.accounts, invites, settings.signup, limiter, self.clock.now
        )

    @cached_property
    def usage_series(self) -> UsageSeries:
        """Usage per day for the administrators' charts."""
        return UsageSeries(self.db, self.writer, self.clock)

    async def close(self) -> None:
        """Stop in the order that loses nothing: running replies (kept as they stand), providers,
        then pending writes, then the db."""
        await self.replies.close()
        if self.changes is not None:
            await self.changes.close()
        await self.responses.close()
        await self.conversations.close()
        await self.models.close()
        await self.quotas.drain()
        await self.quotas.close()
        await self.logins.limiter.close()
        if "signup" in self.__dict__:  # made on first use
            await self.signup.limiter.close()
        await self.writer.stop()
        await self.db.close()


def quota_backend(settings: Settings) -> QuotaBackend | None:
    """Redis when several instances must share exact limits; in process otherwise."""
    if not settings.redis_url:
        return None
    from chatgate.core.quota_redis import RedisQuotaBackend

    return RedisQuotaBackend(settings.redis_url, prefix=settings.redis_prefix)


def reply_store(settings: Settings) -> ReplyStore:
    """Redis when several instances serve the same clients, so a reply is followed on any."""
    if not settings.redis_url:
        return MemoryReplyStore()
    from chatgate.core.reply_store_redis import RedisReplyStore

    return RedisReplyStore(settings.redis_url, prefix=settings.redis_prefix)
