"""Tab completion in ``chatgate chat``: slash commands, and model names after ``/model``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document


class SlashCompleter(Completer):
    def __init__(self, commands: list[str], models: Callable[[], list[str]]) -> None:
        self.commands = commands
        self.models = models

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        if text.startswith("/model "):
            word = text[len("/model ") :]
            names = [n for n in self.models() if n.startswith(word)]
            return [Completion(n, start_position=-len(word)) for n in names]
        if text.startswith("/") and " " not in text:
            found = [c for c in self.commands if c.startswith(text)]
            return [Completion(c, start_position=-len(text)) for c in found]
        return []
