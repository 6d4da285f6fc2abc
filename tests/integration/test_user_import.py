"""Users in bulk from a CSV of username,password rows, through the admin API and the command
line: good rows created, duplicates skipped, malformed rows refused with the reason, passwords
hashed and never shown, logged or audited."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support import Gateway, remember

from chatgate.core.user_import import MAX_BYTES
from chatgate.settings import Settings
from chatgate.store.tables import User

ROOT = Path(__file__).parents[2]
ADMIN_PASSWORD = remember("pebble-Marlin-9920")
GOOD = [remember(p) for p in ("granite-Lark-1001", "saffron-Moth-2002", "cobalt-Newt-3003")]

FILE = (
    "username,password\n"
    f"anna,{GOOD[0]}\n"
    f"ben,{GOOD[1]}\n"
    f"anna,{GOOD[2]}\n"  # repeated in the file
    "root,whatever-it-is\n"  # exists already
    "carl\n"  # one column
    f"dana,{GOOD[2]},admin\n"  # three columns
    "bad name,long-enough-pass\n"
    "eve,short\n"
    "\n"
    f'"fay","{GOOD[2]}"\n'
).encode() + b"g\xffh,long-enough-pass\n"

EXPECTED = [
    (2, "anna", "created"),
    (3, "ben", "created"),
    (4, "anna", "skipped"),
    (5, "root", "skipped"),
    (6, "carl", "refused"),
    (7, "dana", "refused"),
    (8, "bad name", "refused"),
    (9, "eve", "refused"),
    (11, "fay", "created"),
    (12, None, "refused"),
]


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    token = gateway.login("root", ADMIN_PASSWORD)
    with httpx.Client(
        base_url=gateway.url + "/api/v1/admin", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def verdicts(report: dict[str, Any]) -> list[tuple[int, str | None, str]]:
    return [(r["line"], r["username"], r["result"]) for r in report["rows"]]


def test_a_csv_makes_the_good_rows_and_says_why_the_others_were_not(
    gateway: Gateway, admin: httpx.Client
) -> None:
    answer = admin.post(
        "/users/import", content=FILE, headers={"content-type": "text/csv; charset=utf-8"}
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["created"], report["skipped"], report["refused"]) == (3, 2, 5)
    assert verdicts(report) == EXPECTED
    reasons = {r["line"]: r["reason"] for r in report["rows"]}
    assert "line 2" in reasons[4] and "exists" in reasons[5]
    assert "2 columns" in reasons[6] and "found 3" in reasons[7]
    assert "8 characters" in reasons[9] and "UTF-8" in reasons[12]
    for secret in GOOD:
        assert secret not in answer.text

    assert gateway.login("anna", GOOD[0]) and gateway.login("fay", GOOD[2])
    # The first anna wins: the repeated row's password was not taken.
    refused = httpx.post(
        gateway.url + "/api/v1/auth/login", json={"username": "anna", "password": GOOD[2]}
    )
    assert refused.status_code == 401

    async def hashes() -> list[str | None]:
        async with gateway.services.db.session() as session:
            return list((await session.scalars(select(User.password_hash))).all())

    stored = " ".join(h or "" for h in gateway.run(hashes()))
    assert "$argon2id$" in stored and not any(secret in stored for secret in GOOD)
    audit = admin.get("/audit", params={"action": "user.create"})
    made = [e for e in audit.json()["data"] if e["details"].get("via") == "import"]
    assert sorted(e["target"] for e in made) == ["anna", "ben", "fay"]
    assert made[0]["actor"] == "root"
    assert not any(secret in audit.text for secret in GOOD)


def test_the_same_file_imported_again_skips_every_user(
    gateway: Gateway, admin: httpx.Client
) -> None:
    body = f"gus,{GOOD[0]}\nhana,{GOOD[1]}\n".encode()
    first = admin.post("/users/import", content=body, headers={"content-type": "text/csv"})
    assert first.json()["created"] == 2
    again = admin.post("/users/import", content=body, headers={"content-type": "text/csv"})
    assert (again.json()["created"], again.json()["skipped"]) == (0, 2)
    assert verdicts(again.json()) == [(1, "gus", "skipped"), (2, "hana", "skipped")]


def test_a_file_sent_as_a_form_field_works_too(admin: httpx.Client) -> None:
    answer = admin.post(
        "/users/import", files={"file": ("users.csv", f"ida,{GOOD[0]}\n", "text/csv")}
    )
    assert answer.status_code == 200, answer.text
    assert verdicts(answer.json()) == [(1, "ida", "created")]
    wrong_field = admin.post("/users/import", files={"users": ("u.csv", b"x,y", "text/csv")})
    assert wrong_field.status_code == 400


def test_the_web_page_sends_the_file_as_text_csv_with_its_cookie(gateway: Gateway) -> None:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    with httpx.Client(base_url=gateway.url) as page:
        login = {"username": "root", "password": ADMIN_PASSWORD, "cookie": True}
        assert page.post("/api/v1/auth/login", json=login).status_code == 200
        same_site = {"sec-fetch-site": "same-origin"}
        answer = page.post(
            "/api/v1/admin/users/import",
            content=f"jon,{GOOD[0]}\n",
            headers={"content-type": "text/csv", **same_site},
        )
        assert answer.status_code == 200 and answer.json()["created"] == 1
        forged = page.post(
            "/api/v1/admin/users/import",
            content=f"kim,{GOOD[0]}\n",
            headers={"content-type": "text/csv", "sec-fetch-site": "cross-site"},
        )
        assert forged.status_code == 403


def test_a_file_too_large_is_refused_with_413_and_creates_nobody(
    gateway: Gateway, admin: httpx.Client
) -> None:
    body = f"lou,{GOOD[0]}\n".encode() + b"x" * MAX_BYTES
    answer = admin.post("/users/import", content=body, headers={"content-type": "text/csv"})
    assert answer.status_code == 413
    assert admin.get("/users/lou").status_code == 404


def test_normal_users_may_not_import(gateway: Gateway) -> None:
    key = gateway.key("mo")
    answer = httpx.post(
        gateway.url + "/api/v1/admin/users/import",
        content=f"ned,{GOOD[0]}\n",
        headers={"Authorization": f"Bearer {key}", "content-type": "text/csv"},
    )
    assert answer.status_code == 403


def chatgate(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The machine's environment without its own chatgate settings, but with the test's database.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATGATE_", "OPENAI_"))}
    if os.environ.get("CHATGATE_DATABASE_URL"):
        env["CHATGATE_DATABASE_URL"] = os.environ["CHATGATE_DATABASE_URL"]
    env.update(CHATGATE_DATA_DIR=str(data), PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "chatgate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_operator_imports_the_same_file_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = Gateway(Settings.load(data_dir=data, port=0, grpc_port=0))
    gateway.start()
    try:
        gateway.user("root", ADMIN_PASSWORD, admin=True)
    finally:
        gateway.stop()
    users = tmp_path / "users.csv"
    users.write_bytes(FILE)
    done = chatgate(data, "users", "import", str(users))
    assert done.returncode == 1, done.stderr  # rows were refused
    assert "3 created, 2 skipped, 5 refused" in done.stdout
    shown = [row.replace("\u2502", " ").split() for row in done.stdout.splitlines()]
    for line, name, result in EXPECTED:
        assert any(
            cells[:1] == [str(line)]
            and result in cells
            and all(part in cells for part in (name or "").split())
            for cells in shown
        ), (line, name, result, done.stdout)
    for secret in GOOD:
        assert secret not in done.stdout + done.stderr
    clean = tmp_path / "clean.csv"
    clean.write_text(f"olga,{GOOD[1]}\n")
    assert chatgate(data, "users", "import", str(clean)).returncode == 0

    gateway = Gateway(Settings.load(data_dir=data, port=0, grpc_port=0))
    gateway.start()
    try:
        assert gateway.login("ben", GOOD[1]) and gateway.login("olga", GOOD[1])
        token = gateway.login("root", ADMIN_PASSWORD)
        audit = httpx.get(
            gateway.url + "/api/v1/admin/audit",
            params={"target": "olga"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["data"]
        assert audit[0]["actor"].startswith("command line")
    finally:
        gateway.stop()
