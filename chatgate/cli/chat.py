"""``chatgate chat``: a REPL over the terminal client.

The loop reads a question (prompt_toolkit: history kept in the data directory, ``\"\"\"`` blocks
and Alt-Enter for several lines, completion of slash commands and model names), streams the
reply through the renderer, and runs slash commands (``chatgate.cli.slash``). It knows only the
``ChatClient`` protocol, so it works the same in process and against a server.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chatgate.cli.connect import KeyOption, Target, UrlOption, UserOption, one_line, run_with_client
from chatgate.client.base import NEW, ChatClient, Finished, Options, ReplyEvent
from chatgate.core.errors import ChatgateError

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from rich.console import Console

FENCE = '"""'
QUIT_WORDS = ("QUIT", "/exit", "/q")


@dataclass
class ChatState:
    """Where the REPL stands: the conversation, how to answer, and what the toolbar shows."""

    client: ChatClient
    console: Console
    words: dict[str, str]
    options: Options
    plain: bool
    conversation: str = NEW
    title: str | None = None
    remaining: int | None = None
    last_finish: str | None = None
    listed: list[str] = field(default_factory=list)
    model_names: list[str] = field(default_factory=list)
    reply: asyncio.Future[Finished | None] | None = None

    def interrupt(self) -> None:
        """Ctrl-C outside the prompt: stops the reply that is streaming, if one is."""
        if self.reply is not None:
            self.reply.cancel()

    def say(self, text: str, style: str = "dim") -> None:
        self.console.print(text, style=style, markup=False, highlight=False)

    def error(self, exc: ChatgateError | str) -> None:
        from chatgate.cli.render import harmless

        message = exc.message if isinstance(exc, ChatgateError) else exc
        self.console.print(
            "error: " + harmless(one_line(message)), style="red", markup=False, highlight=False
        )

    async def refresh(self) -> None:
        """What the toolbar shows: the title and today's remaining requests."""
        try:
            self.remaining = await self.client.remaining_requests()
            if self.conversation != NEW:
                self.title = (await self.client.tree(self.conversation)).conversation.title
        except ChatgateError:
            pass

    def toolbar(self) -> str:
        left = (
            self.words["unlimited"]
            if self.remaining is None
            else self.words["left"].format(n=self.remaining)
        )
        model = self.options.model or (self.model_names[0] if self.model_names else "?")
        return f" {model} · {self.title or self.words['new']} · {left} "


async def stream_reply(state: ChatState, events: Any) -> Finished | None:
    """Show a reply as it streams. Ctrl-C stops it (the partial reply is kept by the server or
    the core, as for any client that leaves) and returns to the prompt."""
    from chatgate.cli.render import PlainView, new_view

    state.say(state.words["answer"], style="bold cyan")
    view = PlainView() if state.plain else new_view(False, state.console)

    async def consume() -> Finished | None:
        async with aclosing(events) as pieces:
            async for event in pieces:
                if isinstance(event, Finished):
                    return event
                view.add(event)
        return None

    task = state.reply = asyncio.ensure_future(consume())
    try:
        done = await task
    except asyncio.CancelledError:
        view.end()
        state.say(state.words["stopped"], style="yellow")
        return None
    except ChatgateError as exc:
        view.end()
        state.error(exc)
        return None
    finally:
        state.reply = None
    view.end()
    if done is not None:
        finished(state, done)
    return done


def finished(state: ChatState, done: Finished) -> None:
    if done.conversation_id:
        state.conversation = done.conversation_id
    state.last_finish = done.finish_reason
    if done.finish_reason == "length":
        state.say(state.words["length"], style="yellow")
    elif done.finish_reason == "content_filter":
        state.say(state.words["filtered"], style="yellow")


async def ask(state: ChatState, text: str) -> None:
    options = state.options
    if state.conversation != NEW:
        options = Options(options.model, None, options.temperature, options.max_tokens)
    await stream_reply(state, state.client.send(state.conversation, text, options))
    await state.refresh()


def new_session(state: ChatState, history: Path) -> PromptSession[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    from chatgate.cli.completion import SlashCompleter
    from chatgate.cli.slash import COMMANDS

    keys = KeyBindings()

    @keys.add("enter")
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        text = buffer.text.lstrip()
        if text.startswith(FENCE) and text.count(FENCE) < 2:
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @keys.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    @keys.add("c-c")
    def _interrupt(event: Any) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt())

    history.parent.mkdir(parents=True, exist_ok=True)
    return PromptSession(
        history=FileHistory(str(history)),
        completer=SlashCompleter(list(COMMANDS), lambda: state.model_names),
        key_bindings=keys,
        bottom_toolbar=state.toolbar,
        multiline=True,
    )


def question_of(text: str) -> str:
    """The question typed: a ``\"\"\"`` block without its fences."""
    stripped = text.strip()
    if stripped.startswith(FENCE):
        stripped = stripped[len(FENCE) :]
        if stripped.endswith(FENCE):
            stripped = stripped[: -len(FENCE)]
    return stripped.strip()


async def repl(state: ChatState, session: PromptSession[str]) -> None:
    """Read and answer until the user leaves. At the prompt the terminal is in raw mode and
    Ctrl-C is a key; elsewhere it is a signal, which stops a streaming reply and nothing else."""
    try:
        await read_and_answer(state, session)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    state.say(state.words["bye"])


async def read(state: ChatState, session: PromptSession[str], default: str = "") -> str:
    """One input. The prompt takes Ctrl-C over while it runs and lets it go when it ends; from
    then on, until the next prompt, the signal stops a reply."""
    try:
        return await session.prompt_async(state.words["prompt"], default=default)
    finally:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, state.interrupt)


async def read_and_answer(state: ChatState, session: PromptSession[str]) -> None:
    from chatgate.cli.slash import run_command

    interrupted = False
    while True:
        try:
            text = await read(state, session)
        except KeyboardInterrupt:
            if interrupted:
                break
            interrupted = True
            state.say(state.words["again"], style="yellow")
            continue
        except EOFError:
            break
        interrupted = False
        stripped = text.strip()
        if not stripped:
            continue
        if stripped in QUIT_WORDS:
            break
        try:
            if stripped.startswith("/"):
                await run_command(state, session, stripped)
            else:
                await ask(state, question_of(text))
        except ChatgateError as exc:
            state.error(exc)
        except EOFError:
            break


async def start(client: ChatClient, state: ChatState, cont: bool, conversation: str | None) -> None:
    if conversation:
        state.conversation = await client.resolve(conversation)
    elif cont:
        recent = await client.conversations(limit=1)
        state.conversation = recent[0].id if recent else NEW
    state.model_names = await client.models()
    await state.refresh()
    if state.conversation != NEW:
        from chatgate.cli.slash import show_last_exchange

        await show_last_exchange(state)


def chat(
    cont: Annotated[
        bool, typer.Option("--continue", "-c", help="Continue the most recent conversation.")
    ] = False,
    conversation: Annotated[
        str | None,
        typer.Option("--conversation", help="Open this conversation (an id, or its start)."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model to ask.")] = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", help="System prompt of new conversations.")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Raw text, no Markdown.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
    user: UserOption = None,
) -> None:
    """Chat in the terminal: replies stream as Markdown; /help lists the slash commands."""
    from chatgate.cli.main import load_settings
    from chatgate.cli.render import terminal_console
    from chatgate.cli.words import words

    history = load_settings().data_dir / "chat_history"
    options = Options(model, system, temperature, max_tokens)

    async def action(client: ChatClient) -> None:
        state = ChatState(
            client,
            terminal_console(),
            words(),
            options,
            plain or not sys.stdout.isatty(),
        )
        await start(client, state, cont, conversation)
        await repl(state, new_session(state, history))

    run_with_client(Target(url, key, user), action)


__all__ = ["ChatState", "ReplyEvent", "chat", "stream_reply"]
