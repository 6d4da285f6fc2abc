"""``chatgate ask "PROMPT"``: one question, the answer on standard output.

Piped input is added to the prompt (``git diff | chatgate ask "review this"``). On a terminal
the answer is Markdown, rendered as it streams; on a pipe it is the plain text. The exit code is
0 for an answer and 1 (with one line on standard error) for anything else.
"""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from chatgate.cli.connect import KeyOption, Target, UrlOption, UserOption, fail, run_with_client
from chatgate.client.base import NEW, ChatClient, Finished, Options


def prompt_with_stdin(prompt: str) -> str:
    """The prompt, followed by whatever was piped in."""
    if sys.stdin is None or sys.stdin.isatty():
        return prompt
    piped = sys.stdin.read()
    if not piped.strip():
        return prompt
    return f"{prompt}\n\n{piped}" if prompt else piped


async def last_conversation(client: ChatClient) -> str:
    recent = await client.conversations(limit=1)
    return recent[0].id if recent else NEW


def ask(
    prompt: Annotated[str, typer.Argument(help="The question (piped input is added to it).")] = "",
    cont: Annotated[
        bool, typer.Option("--continue", "-c", help="Continue the last conversation.")
    ] = False,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model to ask.")] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.")] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Print the answer once it is whole.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole response as JSON.")
    ] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Raw text, no Markdown.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
    user: UserOption = None,
) -> None:
    """Ask one question and print the answer."""
    from chatgate.cli.render import PlainView, new_view

    question = prompt_with_stdin(prompt)
    if not question.strip():
        raise fail("nothing to ask: give a prompt, or pipe something in", 2)
    options = Options(model, system, temperature, max_tokens)

    async def action(client: ChatClient) -> tuple[str, Finished]:
        conversation = await last_conversation(client) if cont else NEW
        view = None if (as_json or no_stream) else new_view(plain)
        texts: list[str] = []
        try:
            async for event in client.send(conversation, question, options):
                if isinstance(event, Finished):
                    return "".join(texts), event
                texts.append(event)
                if view is not None:
                    view.add(event)
        finally:
            if view is not None:
                view.end()
        raise fail("the reply ended without finishing")

    text, done = run_with_client(Target(url, key, user), action)
    if as_json:
        body = {
            "conversation_id": done.conversation_id,
            "message_id": done.message_id,
            "parent_id": done.parent_id,
            "model": done.model,
            "finish_reason": done.finish_reason,
            "usage": done.usage,
            "content": text,
        }
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif no_stream:
        view = PlainView() if plain else new_view(plain)
        view.add(text)
        view.end()
    if done.finish_reason == "length":
        sys.stderr.write("(the answer was cut at its length limit)\n")
    elif done.finish_reason == "content_filter":
        sys.stderr.write("(the provider withheld part of this answer)\n")
