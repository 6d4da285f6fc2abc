"""What chatgate keeps on disk is readable by its own user only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Gateway

from chatgate.settings import Settings
from chatgate.store.db import Database


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.sqlite  # the modes of SQLite's own files
def test_the_data_directory_database_and_its_journal_files_are_private(
    make_settings: Callable[..., Settings], open_umask: None
) -> None:
    settings = make_settings()
    gateway = Gateway(settings).start()
    try:
        gateway.key("alice")  # a write, so the journal files exist
        data = settings.data_dir
        files = {p.name: mode(p) for p in data.iterdir()}
        assert mode(data) == 0o700
        assert {"chatgate.db", "chatgate.db-wal", "chatgate.db-shm", "secret_key"} <= set(files)
        assert {name: 0o600 for name in files} == files
    finally:
        gateway.stop()


async def test_a_database_left_readable_by_others_is_made_private(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.upgrade()
    await db.close()
    assert mode(path) == 0o600
