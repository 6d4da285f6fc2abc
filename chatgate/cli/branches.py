"""A conversation tree drawn in the terminal: every message, the current path marked, and each
leaf numbered so that ``/switch N`` can move to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatgate.cli.render import harmless
from chatgate.core.conversation_queries import ConversationTree, MessageView

if TYPE_CHECKING:
    from rich.tree import Tree

PREVIEW = 48


def leaves(tree: ConversationTree) -> list[MessageView]:
    """Messages with no children, oldest first: what ``/switch N`` counts."""
    parents = {m.parent_id for m in tree.messages}
    return [m for m in tree.messages if m.id not in parents]


def preview(message: MessageView) -> str:
    text = " ".join(harmless(message.content).split())
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def draw(tree: ConversationTree) -> Tree:
    from rich.text import Text
    from rich.tree import Tree

    numbers = {m.id: n for n, m in enumerate(leaves(tree), start=1)}
    on_path = set(tree.current_path)
    children: dict[str | None, list[MessageView]] = {}
    for message in tree.messages:
        children.setdefault(message.parent_id, []).append(message)

    def label(message: MessageView) -> Text:
        marked = message.id in on_path
        text = Text("● " if marked else "○ ", style="green" if marked else "dim")
        who = "you" if message.role == "user" else message.role
        text.append(f"{who}: ", style="bold" if marked else "")
        text.append(preview(message), style="" if marked else "dim")
        if message.id in numbers:
            text.append(f"  [{numbers[message.id]}]", style="cyan")
        if tree.current_path and message.id == tree.current_path[-1]:
            text.append("  ← current", style="bold green")
        return text

    root = Tree(Text(harmless(tree.conversation.title or "conversation"), style="bold"))

    def grow(node: Tree, parent_id: str | None) -> None:
        for child in children.get(parent_id, []):
            grow(node.add(label(child)), child.id)

    grow(root, None)
    return root
