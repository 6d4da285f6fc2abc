"""Where the commands print. rich is loaded by the first command that prints, not by
``chatgate serve``, which never does: that keeps about 1.7 MB out of the server's memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Column, Table


class LazyConsole:
    """A ``rich.console.Console`` made on first use."""

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        self._get().print(*objects, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


def new_table(*columns: Any, **options: Any) -> Table:
    from rich.table import Table

    return Table(*columns, **options)


def whole_column(header: str, values: list[str]) -> Column:
    """A column never folded or cut, however narrow the terminal or pipe: for ids and names
    that are typed back into other commands."""
    from rich.table import Column

    width = max((len(v) for v in values), default=0)
    return Column(header, no_wrap=True, min_width=max(width, len(header)))
