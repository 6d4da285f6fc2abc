"""The REPL's slash commands, one small coroutine each, found by name in ``COMMANDS``."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chatgate.cli.chat import ChatState, ask, read, stream_reply
from chatgate.cli.render import harmless
from chatgate.client.base import NEW, Options
from chatgate.core.conversation_queries import ConversationSummary, ConversationTree, MessageView
from chatgate.core.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

Handler = Callable[[ChatState, "PromptSession[str]", str], Awaitable[None]]


async def show_help(state: ChatState, session: PromptSession[str], arg: str) -> None:
    for name, (_, text) in COMMANDS.items():
        state.say(f"{name:<14} {text}", style="")
    state.say('"""  starts a block of several lines, ended by """; Alt-Enter adds a line')


async def new(state: ChatState, session: PromptSession[str], arg: str) -> None:
    state.conversation, state.title = NEW, None
    state.say(state.words["new"])


async def model(state: ChatState, session: PromptSession[str], arg: str) -> None:
    if not arg:
        state.say(state.options.model or "(the conversation's model)", style="")
        return
    if state.model_names and arg not in state.model_names:
        raise NotFound(f"No model named {arg!r}: /models lists them.", param="model")
    state.options.model = arg
    state.say(f"model: {arg}")


async def models(state: ChatState, session: PromptSession[str], arg: str) -> None:
    state.model_names = await state.client.models()
    for name in state.model_names:
        state.say(("* " if name == state.options.model else "  ") + name, style="")


async def system(state: ChatState, session: PromptSession[str], arg: str) -> None:
    """Changes the open conversation's system prompt; before the first question, the system
    prompt the conversation will start with. Either way it is also the one of ``/new`` ones."""
    state.options.system = arg or None
    if state.conversation != NEW:
        await state.client.set_system(state.conversation, arg)
        state.say("system prompt changed" if arg else "system prompt removed")
    else:
        state.say("system prompt set for this new conversation")


async def temperature(state: ChatState, session: PromptSession[str], arg: str) -> None:
    try:
        value = float(arg)
    except ValueError:
        raise InvalidRequest("/temperature takes a number from 0 to 2") from None
    if not 0 <= value <= 2:
        raise InvalidRequest("/temperature takes a number from 0 to 2")
    state.options.temperature = value
    state.say(f"temperature: {value}")


async def current_tree(state: ChatState) -> ConversationTree:
    if state.conversation == NEW:
        raise NotFound(state.words["no_conversation"])
    return await state.client.tree(state.conversation)


def last_of(tree: ConversationTree, role: str) -> MessageView:
    for message in reversed(tree.path_messages()):
        if message.role == role:
            return message
    raise NotFound(f"no {role} message on this branch yet")


async def retry(state: ChatState, session: PromptSession[str], arg: str) -> None:
    reply = last_of(await current_tree(state), "assistant")
    events = state.client.regenerate(state.conversation, reply.id, _answering(state))
    await stream_reply(state, events)
    await state.refresh()


async def edit(state: ChatState, session: PromptSession[str], arg: str) -> None:
    question = last_of(await current_tree(state), "user")
    text = arg or await read(state, session, question.content)
    if not text.strip():
        return
    events = state.client.edit(state.conversation, question.id, text.strip(), _answering(state))
    await stream_reply(state, events)
    await state.refresh()


def _answering(state: ChatState) -> Options:
    o = state.options
    return Options(o.model, None, o.temperature, o.max_tokens)


async def branches(state: ChatState, session: PromptSession[str], arg: str) -> None:
    from chatgate.cli.branches import draw

    state.console.print(draw(await current_tree(state)))


async def switch(state: ChatState, session: PromptSession[str], arg: str) -> None:
    from chatgate.cli.branches import leaves

    tree = await current_tree(state)
    found = leaves(tree)
    if not arg.isdigit() or not 1 <= int(arg) <= len(found):
        raise InvalidRequest(f"/switch takes a branch number from 1 to {len(found)} (/branches)")
    await state.client.switch(state.conversation, found[int(arg) - 1].id)
    await show_last_exchange(state)


async def show_last_exchange(state: ChatState) -> None:
    """The conversation's title and the end of its current branch."""
    from chatgate.cli.render import PlainView, new_view

    tree = await state.client.tree(state.conversation)
    state.title = tree.conversation.title
    state.say(
        state.words["opened"].format(title=harmless(state.title or "?"), id=state.conversation[:8])
    )
    for message in tree.path_messages()[-2:]:
        if message.role == "user":
            state.say(state.words["prompt"] + harmless(message.content), style="bold")
        else:
            view = PlainView() if state.plain else new_view(False, state.console)
            view.add(message.content)
            view.end()


def _list(state: ChatState, items: list[ConversationSummary]) -> None:
    state.listed = [c.id for c in items]
    for n, c in enumerate(items, start=1):
        title = harmless(c.title or "(untitled)")
        state.say(f"{n:>3}. {title}  {c.id[:8]}", style="")
    if not items:
        state.say("(none)")


async def history(state: ChatState, session: PromptSession[str], arg: str) -> None:
    _list(state, await state.client.conversations(limit=20))


async def search(state: ChatState, session: PromptSession[str], arg: str) -> None:
    if not arg:
        raise InvalidRequest("/search takes words to find")
    _list(state, await state.client.conversations(limit=20, query=arg))


async def open_one(state: ChatState, session: PromptSession[str], arg: str) -> None:
    """By number in the last list, by id (or its start), or by the closest title."""
    if not arg:
        await history(state, session, arg)
        return
    if arg.isdigit() and 1 <= int(arg) <= len(state.listed):
        state.conversation = state.listed[int(arg) - 1]
    else:
        state.conversation = await _by_id_or_title(state, arg)
    await show_last_exchange(state)


async def _by_id_or_title(state: ChatState, arg: str) -> str:
    try:
        return await state.client.resolve(arg)
    except (NotFound, InvalidRequest):
        pass
    recent = await state.client.conversations(limit=200)
    titles = {c.title.lower(): c.id for c in recent if c.title}
    contains = [i for t, i in titles.items() if arg.lower() in t]
    close = difflib.get_close_matches(arg.lower(), list(titles), n=1, cutoff=0.4)
    if contains:
        return contains[0]
    if close:
        return titles[close[0]]
    raise NotFound(f"no conversation matches {arg!r}")


async def save(state: ChatState, session: PromptSession[str], arg: str) -> None:
    from chatgate.core.exports import to_markdown

    if not arg:
        raise InvalidRequest("/save takes a file name")
    text = to_markdown(await current_tree(state))
    try:
        path = await asyncio.to_thread(_write, arg, text)
    except OSError as exc:
        raise InvalidRequest(f"cannot write {arg}: {exc.strerror or exc}") from None
    state.say(state.words["saved"].format(path=path))


def _write(name: str, text: str) -> Path:
    path = Path(name).expanduser()
    path.write_text(text, encoding="utf-8")
    return path


async def title(state: ChatState, session: PromptSession[str], arg: str) -> None:
    if not arg:
        raise InvalidRequest("/title takes the new title")
    await current_tree(state)
    await state.client.rename(state.conversation, arg)
    state.title = arg


async def usage(state: ChatState, session: PromptSession[str], arg: str) -> None:
    await state.refresh()
    state.say(state.toolbar().strip(), style="")


async def continue_reply(state: ChatState, session: PromptSession[str], arg: str) -> None:
    await current_tree(state)
    await ask(state, state.words["continue"])


async def quit_chat(state: ChatState, session: PromptSession[str], arg: str) -> None:
    raise EOFError


COMMANDS: dict[str, tuple[Handler, str]] = {
    "/help": (show_help, "this list"),
    "/new": (new, "start a new conversation"),
    "/model": (model, "NAME: answer with another model"),
    "/models": (models, "the models you may use"),
    "/system": (system, "TEXT: change the system prompt (empty: remove it)"),
    "/temperature": (temperature, "X: sampling temperature, 0 to 2"),
    "/retry": (retry, "answer the last question again (a new branch)"),
    "/edit": (edit, "change the last question (a new branch)"),
    "/branches": (branches, "draw the conversation's tree"),
    "/switch": (switch, "N: move to branch N of /branches"),
    "/history": (history, "recent conversations"),
    "/open": (open_one, "N|ID|TITLE: open a conversation"),
    "/search": (search, "TEXT: find conversations"),
    "/save": (save, "FILE.md: save this branch as Markdown"),
    "/title": (title, "TEXT: rename the conversation"),
    "/usage": (usage, "today's remaining requests"),
    "/continue": (continue_reply, "go on after a reply cut by its length"),
    "/quit": (quit_chat, "leave (also QUIT and Ctrl-D)"),
}


async def run_command(state: ChatState, session: PromptSession[str], line: str) -> None:
    name, _, arg = line.partition(" ")
    found = COMMANDS.get(name.lower())
    if found is None:
        state.error(state.words["unknown"].format(name=name))
        return
    await found[0](state, session, arg.strip())
