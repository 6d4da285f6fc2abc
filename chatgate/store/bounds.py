"""Bounding a row to its table's columns, the writer's second line of defence.

Values are checked where they come in (an upstream's token counts, say); this is for the one
that slipped through, so that it cannot stop every later write. It is applied to a batch the
database refused, so a batch it takes as it is costs nothing more. An integer is clamped to the
column's range, text is cut to the column's length (a value of another kind in a text column is
kept as its JSON text), a float must be finite. A value that cannot be made to fit (text in a
number column, NULL where NULL is not allowed and there is no default) makes the row ``Unfit``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, String, Table

_INT64 = 2**63 - 1
_INT32 = 2**31 - 1


class Unfit(ValueError):
    """A value that no bounding makes fit its column; the message names the column only."""


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str  # int | float | text | bool | any
    limit: int | None  # the largest integer, or the longest text
    nullable: bool
    default: Any


class Bounds:
    """The rules of each table, worked out once; ``sqlite`` decides how wide an integer is."""

    def __init__(self, sqlite: bool) -> None:
        self._sqlite = sqlite
        self._rules: dict[str, dict[str, _Rule]] = {}

    def fit(self, table: Table, row: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """A copy of ``row`` with every value bounded to its column. A missing column is left
        to the database; ``partial`` rows (an update's values) are not checked for NULLs."""
        rules = self._rules.get(table.name)
        if rules is None:
            rules = self._rules[table.name] = {c.name: self._rule(c) for c in table.columns}
        out: dict[str, Any] = {}
        for name, value in row.items():
            rule = rules.get(name)
            if rule is None:
                raise Unfit(f"{table.name} has no column {name[:64]!r}")
            out[name] = _bounded(f"{table.name}.{name}", value, rule, self._sqlite)
        return out

    def largest(self, column: Column[Any]) -> int:
        """The largest value an integer column holds here."""
        wide = self._sqlite or isinstance(column.type, BigInteger)
        return _INT64 if wide else _INT32

    def _rule(self, column: Column[Any]) -> _Rule:
        kind, limit = "any", None
        if isinstance(column.type, Boolean):
            kind = "bool"
        elif isinstance(column.type, Integer):
            kind, limit = "int", self.largest(column)
        elif isinstance(column.type, Float):
            kind = "float"
        elif isinstance(column.type, String):  # Text too
            kind, limit = "text", column.type.length
        default = getattr(column.default, "arg", None)
        nullable = bool(column.nullable) or (column.primary_key and kind == "int")
        return _Rule(kind, limit, nullable, None if callable(default) else default)


def _bounded(where: str, value: Any, rule: _Rule, sqlite: bool) -> Any:
    if value is None:
        if rule.nullable:
            return None
        if rule.default is not None:
            return rule.default
        raise Unfit(f"{where} may not be empty")
    if rule.kind == "int":
        return _integer(where, value, rule.limit or _INT64)
    if rule.kind == "float":
        return _float(where, value)
    if rule.kind == "text":
        return _text(value, rule.limit, sqlite)
    if rule.kind == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise Unfit(f"{where} takes true or false")
    return value


def _integer(where: str, value: Any, limit: int) -> int:
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if not isinstance(value, int):
        raise Unfit(f"{where} takes a whole number")
    return max(-limit, min(limit, int(value)))


def _float(where: str, value: Any) -> float:
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.copysign(1e308, value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise Unfit(f"{where} takes a finite number")


def _text(given: Any, limit: int | None, sqlite: bool) -> str:
    value = given if isinstance(given, str) else json.dumps(given, default=repr, ensure_ascii=False)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no database stores
        value = value.encode("utf-8", "replace").decode("utf-8")
    if not sqlite and "\x00" in value:  # PostgreSQL text cannot hold NUL
        value = value.replace("\x00", "")
    return value[:limit] if limit is not None else value
