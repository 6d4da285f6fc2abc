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
    typer.Option("--url", envvar="CHATGATE_URL", help="A chatgate server to talk to."),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="CHATGATE_API_KEY", help="API key for --url.", show_default=False),
]
UserOption = Annotated[
    str | None,
    typer.Option("--user", help="Act as this user (in process; default: your own name)."),
]


class Target:
    """Where to send questions: a server (url and key) or this process (as ``user``)."""

    def __init__(self, url: str | None, key: str | None, user: str | None) -> None:
        self.url, self.key, self.user = url, key, user

    async def open(self) -> ChatClient:
        if self.url:
            from chatgate.client.remote import RemoteClient

            if not self.key:
                raise ChatgateError("--url needs an API key: --key KEY or CHATGATE_API_KEY")
            return RemoteClient(self.url, self.key)
        from chatgate.cli.main import load_settings
        from chatgate.client.local import LocalClient

        return await LocalClient.open(load_settings(), self.user)


def fail(message: str, code: int = 1) -> typer.Exit:
    """One line on standard error, and the exit code to leave with."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def one_line(message: str) -> str:
    return " ".join(message.split())


def run_with_client(target: Target, fn: Callable[[ChatClient], Awaitable[T]]) -> T:
    """Run ``fn`` with an open client; a refusal ends the command with one line."""
    # The log is for servers; the terminal shows errors as the messages they carry.
    logging.disable(logging.ERROR)

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
