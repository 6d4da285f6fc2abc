# ruff: noqa: RUF001, RUF002 - Chinese punctuation and quotes are what this module is about
"""Cutting a streamed reply into whole short sentences, for clients that show one at a time.

A cut falls after ``, ? ! ， 。 ？ ！`` or the ellipsis ``……`` (a run of them stays together:
``?!``, ``。。``), never inside an open quote pair (``" “” ‘’ '``): a quoted sentence comes out
whole, and a terminator right before its closing quote cuts after the quote. An apostrophe
inside a word (``don't``) opens nothing. Pieces arrive in any size, so a cut is made only once
the next character shows that the run of terminators has ended; ``flush`` gives what is left.
Joining every piece gives back the text unchanged.
"""

from __future__ import annotations

_TERMINATORS = frozenset(",?!，。？！")
_ELLIPSIS = "…"
_PAIRS = {"“": "”", "‘": "’"}
_CLOSERS = frozenset(_PAIRS.values())
_SYMMETRIC = frozenset("\"'")


class SentenceSplitter:
    """Feed pieces of text in; get whole sentences out."""

    def __init__(self) -> None:
        self._buf: list[str] = []
        self._open: list[str] = []  # the closing quote each open quote waits for
        self._cut_due = False
        self._prev = ""

    def feed(self, text: str) -> list[str]:
        """Take the next piece; return the sentences it completed (possibly none)."""
        done: list[str] = []
        for char in text:
            if self._cut_due and not self._extends_run(char):
                done.append("".join(self._buf))
                self._buf.clear()
                self._cut_due = False
            self._buf.append(char)
            self._step(char)
            self._prev = char
        return done

    def flush(self) -> str:
        """What is left at the end of the reply, even an unfinished sentence."""
        rest = "".join(self._buf)
        self._buf.clear()
        self._open.clear()
        self._cut_due = False
        self._prev = ""
        return rest

    def _extends_run(self, char: str) -> bool:
        return char in _TERMINATORS or char == _ELLIPSIS

    def _step(self, char: str) -> None:
        ended_sentence = self._prev in _TERMINATORS or self._prev == _ELLIPSIS
        if self._quote(char):
            if not self._open and ended_sentence:
                self._cut_due = True
            return
        if self._open:
            return
        if char in _TERMINATORS or (char == _ELLIPSIS and self._prev == _ELLIPSIS):
            self._cut_due = True

    def _quote(self, char: str) -> bool:
        """Track quote pairs; True when ``char`` closed one."""
        if char in _PAIRS:
            self._open.append(_PAIRS[char])
        elif char in _CLOSERS or char in _SYMMETRIC:
            if char in self._open:
                while self._open and self._open.pop() != char:
                    pass
                return True
            if char in _SYMMETRIC and not (char == "'" and self._prev.isalnum()):
                self._open.append(char)
        return False


def split_sentences(text: str) -> list[str]:
    """The whole text cut into sentences (the last one may be unfinished)."""
    splitter = SentenceSplitter()
    pieces = splitter.feed(text)
    rest = splitter.flush()
    if rest:
        pieces.append(rest)
    return pieces
