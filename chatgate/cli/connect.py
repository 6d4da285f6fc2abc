"""How ``chat`` and ``ask`` reach a chatgate: the options they share, opening the client, and
turning any refusal into one readable line on standard error."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from chatgate.client.base import ChatClient
from chatgate.core.errors import ChatgateError

T = TypeVar("T")

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="A chatgate server to talk to (setting: url, CHATGATE_URL)."),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", help="API key for --url (setting: api_key, CHATGATE_API_KEY).", show_default=False
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option("--user", help="Act as this user (in process; default: your own name)."),
]


class Target:
    """Where to send questions: a server (url and key) or this process (as ``user``).

    ``--url`` and ``--key`` win over the settings (``url`` and ``api_key``, read like every
    other setting: the environment, a ``.env`` file or the TOML file)."""

    def __init__(self, url: str | None, key: str | None, user: str | None) -> None:
        self.url, self.key, self.user = url, key, user

    async def open(self) -> ChatClient:
        from chatgate.cli.main import load_settings

        settings = load_settings()
        url = self.url or settings.url
        key = self.key or (settings.api_key.get_secret_value() if settings.api_key else None)
        if url:
            from chatgate.client.remote import RemoteClient

            if not key:
                raise ChatgateError("--url needs an API key: --key KEY or CHATGATE_API_KEY")
            return RemoteClient(url, key)
        from chatgate.client.local import LocalClient

        return await LocalClient.open(settings, self.user)


def fail(message: str, code: int = 1) -> typer.Exit:
    """One line on standard error, and the exit code to leave with."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def one_line(message: str) -> str:
    return " ".join(message.split())


class ProblemLines(logging.Handler):
    """The log of a terminal command: only what went wrong (an error logged by the core, such
    as a database refusing to store the conversation), each problem once, as one line on
    standard error with no traceback. Warnings and information are for servers' logs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        from chatgate.cli.render import harmless

        try:
            text = one_line(record.getMessage())
        except (TypeError, ValueError):
            text = one_line(str(record.msg))
        if text in self.seen:
            return
        self.seen.add(text)
        sys.stderr.write(f"error: {harmless(text)}\n")
        sys.stderr.flush()


def run_with_client(target: Target, fn: Callable[[ChatClient], Awaitable[T]]) -> T:
    """Run ``fn`` with an open client; a refusal, or any other failure (a database that cannot
    be opened, a Redis that is down), ends the command with one line and exit code 1."""
    logging.getLogger().addHandler(ProblemLines())

    async def runner() -> T:
        client = await target.open()
        try:
            return await fn(client)
        finally:
            await client.close()

    try:
        return asyncio.run(runner())
    except ChatgateError as exc:
        raise fail(exc.message) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # the last line of a command, never a traceback
        raise fail(f"{type(exc).__name__}: {exc}") from None
