"""Users in bulk from a CSV of ``username,password`` rows, as the ChatAPI program kept them.

Every row gets a verdict: ``created``; ``skipped`` (the user exists, or the name came earlier in
the file); or ``refused`` with the reason (not two columns, a bad name, a password too short or
too long, a line that is not UTF-8). A first row ``username,password`` is a header and is left
out. Passwords are hashed with the accounts' own argon2id hasher as they are read; they are never
kept, echoed or logged. The accounts are made in one transaction with their audit entries.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from chatgate.core.accounts import AccountService, validate_username
from chatgate.core.audit import Actor
from chatgate.core.errors import Conflict, InvalidRequest, PayloadTooLarge
from chatgate.store.db import Database
from chatgate.store.tables import User

log = logging.getLogger("chatgate.accounts")

MAX_BYTES = 1024 * 1024
MAX_ROWS = 10_000
MAX_PASSWORD = 1024
MIN_PASSWORD = 8
_HEADER = ["username", "password"]
_HASHING_AT_ONCE = 4  # argon2id takes 64 MiB a hash: a few at a time

Result = Literal["created", "skipped", "refused"]


@dataclass(slots=True)
class RowVerdict:
    line: int
    username: str | None
    result: Result
    reason: str | None = None


@dataclass(slots=True)
class ImportReport:
    rows: list[RowVerdict] = field(default_factory=list)

    def count(self, result: Result) -> int:
        return sum(1 for row in self.rows if row.result == result)


@dataclass(slots=True)
class _Candidate:
    verdict: RowVerdict
    password: str
    digest: str = ""


def _lines(data: bytes) -> tuple[list[str], dict[int, str]]:
    """The file's lines as text, and the lines (numbered from 1) that are not UTF-8: those
    become empty lines for the CSV reader, which keeps the numbering."""
    texts: list[str] = []
    bad: dict[int, str] = {}
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad[number] = "the line is not UTF-8 text"
            texts.append("\n")
    return texts, bad


def _judge(row: list[str], line: int, seen: dict[str, int]) -> RowVerdict | _Candidate:
    if len(row) != 2:
        return RowVerdict(
            line,
            row[0].strip() if row else None,
            "refused",
            f"expected 2 columns (username,password), found {len(row)}",
        )
    name, password = row[0].strip(), row[1]
    try:
        validate_username(name)
    except InvalidRequest as exc:
        return RowVerdict(line, name or None, "refused", exc.message)
    if len(password) < MIN_PASSWORD:
        return RowVerdict(
            line, name, "refused", f"the password has fewer than {MIN_PASSWORD} characters"
        )
    if len(password) > MAX_PASSWORD:
        return RowVerdict(
            line, name, "refused", f"the password has more than {MAX_PASSWORD} characters"
        )
    if name in seen:
        return RowVerdict(line, name, "skipped", f"the name is on line {seen[name]} already")
    seen[name] = line
    return _Candidate(RowVerdict(line, name, "created"), password)


class UserImport:
    def __init__(self, db: Database, accounts: AccountService, clock: Callable[[], float]) -> None:
        self._db = db
        self._accounts = accounts
        self._now = clock

    async def run(self, data: bytes, *, by: Actor | None = None) -> ImportReport:
        if len(data) > MAX_BYTES:
            raise PayloadTooLarge(f"A users file is at most {MAX_BYTES} bytes.")
        texts, bad = _lines(data)
        report = ImportReport()
        candidates: list[_Candidate] = []
        seen: dict[str, int] = {}
        reader = csv.reader(texts, strict=True)
        first = True
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                report.rows.append(RowVerdict(start, None, "refused", f"not CSV: {exc}"))
                continue
            if start in bad:
                report.rows.append(RowVerdict(start, None, "refused", bad[start]))
                continue
            if not row or all(not cell.strip() for cell in row):
                continue
            if first and [cell.strip().lower() for cell in row] == _HEADER:
                first = False
                continue
            first = False
            if len(report.rows) + len(candidates) >= MAX_ROWS:
                raise PayloadTooLarge(f"A users file has at most {MAX_ROWS} rows.")
            judged = _judge(row, start, seen)
            if isinstance(judged, _Candidate):
                candidates.append(judged)
            else:
                report.rows.append(judged)
        await self._create(candidates, by or Actor.operator())
        report.rows.extend(c.verdict for c in candidates)
        report.rows.sort(key=lambda row: row.line)
        log.info(
            "users imported: %d created, %d skipped, %d refused",
            report.count("created"),
            report.count("skipped"),
            report.count("refused"),
        )
        return report

    async def _create(self, candidates: list[_Candidate], by: Actor) -> None:
        fresh = await self._not_taken(candidates)
        await self._hash(fresh)
        for _ in range(3):  # a name someone took meanwhile: look again, and skip it
            try:
                await self._insert(fresh, by)
                return
            except IntegrityError:
                fresh = await self._not_taken(fresh)
        raise Conflict("Users were being created meanwhile; try the import again.")

    async def _not_taken(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """The candidates whose names are free; the others are marked skipped."""
        names = [c.verdict.username for c in candidates]
        async with self._db.session() as session:
            query = select(User.name).where(User.name.in_(names))
            taken = set((await session.scalars(query)).all())
        for candidate in candidates:
            if candidate.verdict.username in taken:
                candidate.verdict.result = "skipped"
                candidate.verdict.reason = "the user exists already"
        return [c for c in candidates if c.verdict.username not in taken]

    async def _hash(self, candidates: list[_Candidate]) -> None:
        hashing = asyncio.Semaphore(_HASHING_AT_ONCE)

        async def one(candidate: _Candidate) -> None:
            async with hashing:
                candidate.digest = await self._accounts.passwords.hash(candidate.password)
            candidate.password = ""

        await asyncio.gather(*(one(c) for c in candidates))

    async def _insert(self, candidates: list[_Candidate], by: Actor) -> None:
        now = self._now()
        async with self._db.session() as session, session.begin():
            for candidate in candidates:
                name = candidate.verdict.username
                assert name is not None
                session.add(
                    User(name=name, password_hash=candidate.digest, role="user", created_at=now)
                )
                details = {
                    "role": "user",
                    "password": "set",
                    "via": "import",
                    "line": candidate.verdict.line,
                }
                self._accounts.audit.add(session, by, "user.create", name, details)
