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
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.segment import Segment

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
    """The reply as Markdown, drawn as it grows (a few times a second, not per piece), and
    left on screen in its final form: headings, lists, tables, highlighted code.

    Only the block still being written (the last one: a paragraph, a list, a code block…) is
    redrawn. Each block before it is finished once the next one has begun, so it is printed
    for good above the redrawn part and never drawn again. A terminal cannot redraw lines that
    have scrolled out of sight: redrawing a whole reply taller than the window leaves copies of
    its top in the scrollback. The redrawn part is therefore also kept to the window's height
    (its newest lines), and shown whole, once, when the reply ends.

    Each block is laid out after the one before it, as rich lays out the whole reply (the
    space between two blocks depends on both), so the lines left on screen are those of the
    whole reply rendered at once.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.text = ""
        self._live: Live | None = None
        self._drawn_at = 0.0
        self._printed = 0
        self._heights: dict[int, int] = {}

    def add(self, text: str) -> None:
        from rich.live import Live

        self.text += text
        if self._live is None:
            self._live = Live(console=self.console, auto_refresh=False, vertical_overflow="crop")
            self._live.start()
        now = time.monotonic()
        if now - self._drawn_at >= REFRESH_SECONDS:
            self._drawn_at = now
            self._draw(final=False)

    def end(self) -> None:
        if self._live is not None:
            self._draw(final=True)
            self._live.stop()
            self._live = None

    def _draw(self, *, final: bool) -> None:
        assert self._live is not None
        lines = harmless(self.text).split("\n")
        starts = block_starts("\n".join(lines))
        while self._printed < len(starts) - 1:
            done = self._block(lines, starts, self._printed, starts[self._printed + 1])
            self._live.console.print(_Lines(done, last_newline=True))
            self._printed += 1
        tail = self._block(lines, starts, self._printed, len(lines)) if starts else []
        if not final:
            tail = tail[-max(1, self.console.height - 1) :]
        self._live.update(_Lines(tail, last_newline=False), refresh=not final)

    def _block(self, lines: list[str], starts: list[int], index: int, end: int) -> list[Line]:
        """Block ``index`` (up to line ``end``) as laid out after the block before it."""
        if index == 0:
            return self._render(lines[:end])
        begin = starts[index - 1]
        if index not in self._heights:
            self._heights[index] = len(self._render(lines[begin : starts[index]]))
        return self._render(lines[begin:end])[self._heights[index] :]

    def _render(self, source: list[str]) -> list[Line]:
        from rich.markdown import Markdown

        shown = Markdown("\n".join(source), code_theme="monokai")
        return self.console.render_lines(shown, pad=False)


Line = list["Segment"]


def block_starts(markdown: str) -> list[int]:
    """The first line of each top-level block of ``markdown`` (parsed as rich parses it)."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt().enable("strikethrough").enable("table")
    return [
        token.map[0]
        for token in parser.parse(markdown)
        if token.level == 0 and token.nesting >= 0 and token.map is not None
    ]


class _Lines:
    """Lines already laid out, drawn as they are."""

    def __init__(self, lines: list[Line], *, last_newline: bool) -> None:
        self.lines = lines
        self.last_newline = last_newline

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        for number, line in enumerate(self.lines):
            if number:
                yield Segment.line()
            yield from line
        if self.last_newline and self.lines:
            yield Segment.line()


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
