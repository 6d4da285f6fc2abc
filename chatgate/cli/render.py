"""Showing a reply in a terminal: Markdown rendered while it streams, or the raw text.

A model's text is untrusted: it could move the cursor, retitle the window or hide what came
before. Every piece is made harmless first: escape and control characters (all but newline and
tab) are shown in caret notation (``^[`` for ESC) instead of being sent to the terminal.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.markdown import Markdown

    from chatgate.cli.output import LazyConsole

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
REFRESH_SECONDS = 1 / 12


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20 or code == 0x7F:
        return "^" + chr(code ^ 0x40)
    return f"<U+{code:04X}>"


def harmless(text: str) -> str:
    """``text`` with every control character but newline and tab made visible and inert."""
    return _CONTROLS.sub(_shown, text.replace("\r\n", "\n"))


class ReplyView(Protocol):
    """Where a streamed reply goes, piece by piece."""

    def add(self, text: str) -> None: ...

    def end(self) -> None: ...


class PlainView:
    """The raw text as it arrives, for pipes and ``--plain``."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.text = ""

    def add(self, text: str) -> None:
        self.text += text
        self.out.write(harmless(text))
        self.out.flush()

    def end(self) -> None:
        if self.text and not self.text.endswith("\n"):
            self.out.write("\n")
        self.out.flush()


class MarkdownView:
    """The reply as Markdown, redrawn as it grows (a few times a second, not per piece), and
    left on screen in its final form: headings, lists, tables, highlighted code."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.text = ""
        self._live: Live | None = None
        self._drawn_at = 0.0

    def add(self, text: str) -> None:
        from rich.live import Live

        self.text += text
        if self._live is None:
            self._live = Live(
                self._markdown(),
                console=self.console,
                auto_refresh=False,
                vertical_overflow="visible",
            )
            self._live.start()
        now = time.monotonic()
        if now - self._drawn_at >= REFRESH_SECONDS:
            self._drawn_at = now
            self._live.update(self._markdown(), refresh=True)

    def end(self) -> None:
        if self._live is not None:
            self._live.update(self._markdown(), refresh=True)
            self._live.stop()
            self._live = None

    def _markdown(self) -> Markdown:
        from rich.markdown import Markdown

        return Markdown(harmless(self.text), code_theme="monokai")


def terminal_console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def new_view(plain: bool, console: Console | None = None) -> ReplyView:
    """Markdown on a terminal, raw text on a pipe or when asked."""
    if plain or not sys.stdout.isatty():
        return PlainView()
    return MarkdownView(console or terminal_console())


def print_stored(text: str, console: Console | LazyConsole) -> None:
    """A stored message: Markdown on a terminal, the text itself elsewhere; harmless either way."""
    from rich.markdown import Markdown

    if console.is_terminal:
        console.print(Markdown(harmless(text), code_theme="monokai"))
    else:
        console.print(harmless(text), markup=False, highlight=False)
