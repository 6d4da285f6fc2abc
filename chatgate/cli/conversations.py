"""``chatgate conversations list|show|export`` and ``chatgate import``.

Local admin commands: whoever can run them can read the database anyway, so they act with full
authority; ``--user NAME`` narrows them to one user, and names the owner for ``import``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chatgate.cli.main import console, when, with_services
from chatgate.cli.output import new_table, whole_column
from chatgate.cli.render import print_stored
from chatgate.core.accounts import Principal
from chatgate.core.conversation_queries import (
    ConversationSummary,
    ConversationTree,
    ids_starting_with,
)
from chatgate.core.errors import InvalidRequest, NotFound
from chatgate.services import Services
from chatgate.store.tables import User

conversations_app = typer.Typer(help="Read and export stored conversations.", no_args_is_help=True)

IdArgument = Annotated[
    str, typer.Argument(help="The conversation's id, or enough of its start to tell it apart.")
]
MAX_CANDIDATES = 10
UserOption = Annotated[str | None, typer.Option("--user", help="Only this user's conversations.")]
OPERATOR = Principal(user_id=0, username="operator", role="admin")


def register(app: typer.Typer) -> None:
    app.add_typer(conversations_app, name="conversations")
    app.command("import")(import_export)


async def _user_id(services: Services, user: str | None) -> int | None:
    return (await services.accounts.get_user(user)).id if user else None


async def _resolve(services: Services, prefix: str, user: str | None) -> str:
    """The one conversation whose id starts with ``prefix`` (of ``user``'s, when given)."""
    user_id = await _user_id(services, user)
    found = await ids_starting_with(services.db, prefix, user_id, limit=MAX_CANDIDATES + 1)
    if not prefix or not found:
        raise NotFound(f"No conversation with id {prefix!r}.")
    if len(found) > 1:
        shown = "\n  ".join(found[:MAX_CANDIDATES])
        more = "\n  …" if len(found) > MAX_CANDIDATES else ""
        raise InvalidRequest(
            f"{prefix!r} starts the ids of several conversations; give more of the id:"
            f"\n  {shown}{more}"
        )
    return found[0]


async def _tree(services: Services, prefix: str, user: str | None) -> ConversationTree:
    return await services.conversations.tree(OPERATOR, await _resolve(services, prefix, user))


@conversations_app.command("list")
def list_conversations(
    user: UserOption = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="Words to find.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=200)] = 50,
) -> None:
    """List conversations, newest first."""

    async def action(s: Services) -> list[tuple[ConversationSummary, str]]:
        page = await s.conversations.page(await _user_id(s, user), limit=limit, query=search)
        names = {u.id: u.name for u in await s.accounts.list_users()}
        return [(c, names.get(c.user_id, "?")) for c in page.items]

    rows = with_services(action)
    ids = whole_column("id", [conv.id for conv, _ in rows])
    table = new_table(ids, whole_column("user", [owner for _, owner in rows]), "title", "model")
    table.add_column("updated", no_wrap=True)
    for conv, owner in rows:
        table.add_row(conv.id, owner, conv.title or "", conv.model or "", when(conv.updated_at))
    console.print(table)


@conversations_app.command("show")
def show(conversation_id: IdArgument, user: UserOption = None) -> None:
    """Print the current path of a conversation, and how many messages are off it."""
    tree = with_services(lambda s: _tree(s, conversation_id, user))
    conv = tree.conversation
    console.print(f"[bold]{conv.title or 'Conversation'}[/bold]  ({conv.model or '-'})")
    if conv.system_prompt:
        console.print(f"[dim]system:[/dim] {conv.system_prompt}", markup=True)
    for message in tree.path_messages():
        console.print(f"\n[bold]{message.role}[/bold] [dim]{message.id}[/dim]")
        print_stored(message.content, console)
    off_path = len(tree.messages) - len(tree.current_path)
    if off_path:
        console.print(f"\n[dim]{off_path} more message(s) on other branches[/dim]")


@conversations_app.command("export")
def export(
    conversation_id: IdArgument,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
    user: UserOption = None,
) -> None:
    """Export a conversation: Markdown of the current path, or JSON of the whole tree."""

    async def action(s: Services) -> str:
        found = await _resolve(s, conversation_id, user)
        return await s.conversations.export(OPERATOR, found, fmt)

    text = with_services(action)
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"written to {output}")


async def _owner(services: Services, name: str, create: bool) -> User:
    """The importing user: a typing mistake must not make a new account."""
    if create:
        return await services.accounts.ensure_user(name)
    try:
        return await services.accounts.get_user(name)
    except NotFound:
        raise NotFound(f"no user named {name!r} (pass --create-user to create it)") from None


def import_export(
    file: Annotated[Path, typer.Argument(help="conversations.json or the export's .zip.")],
    user: Annotated[str, typer.Option("--user", help="Owner of the imported conversations.")],
    create_user: Annotated[
        bool, typer.Option("--create-user", help="Create the owner if there is no such user.")
    ] = False,
) -> None:
    """Import a ChatGPT data export; conversations the owner already has are skipped."""

    async def action(s: Services) -> tuple[int, int, int]:
        owner = await _owner(s, user, create_user)
        result = await s.conversations.import_chatgpt(owner.id, file)
        return result.imported, result.skipped, result.messages

    imported, skipped, messages = with_services(action)
    console.print(
        f"imported {imported} conversation(s) with {messages} message(s) for {user}; "
        f"{skipped} already there"
    )
