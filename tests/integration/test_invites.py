"""Invites: codes shown once and kept as hashes, single- or multi-use, expiring, and redeemed
exactly once per use even when many people redeem them at the same moment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import httpx
import pytest
from sqlalchemy import select
from support import Gateway, remember

from chatgate.store.tables import Invite, User

ADMIN_PASSWORD = remember("harbor-Quince-6620")
PASSWORD = remember("copper-Wren-3318")


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway(signup="invite", login_max_failures=100)


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    gateway.user("root", ADMIN_PASSWORD, admin=True)
    token = gateway.login("root", ADMIN_PASSWORD)
    with httpx.Client(
        base_url=gateway.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


def sign_up(url: str, name: str, invite: str | None) -> httpx.Response:
    body = {"username": name, "password": PASSWORD, "invite": invite}
    return httpx.post(url + "/api/v1/auth/signup", json=body, timeout=60)


def invite(admin: httpx.Client, **body: object) -> dict[str, object]:
    made = admin.post("/admin/invites", json=body)
    assert made.status_code == 201, made.text
    data: dict[str, object] = made.json()
    remember(str(data["code"]))
    return data


def test_an_invite_makes_an_active_account_and_is_shown_once(
    gateway: Gateway, admin: httpx.Client
) -> None:
    made = invite(admin, note="for the new team")
    code = str(made["code"])
    assert made["url"] == f"/login?invite={code}"
    assert made["uses"] == 1 and made["used"] == 0 and made["role"] == "user"
    assert made["created_by"] == "root" and made["note"] == "for the new team"
    listed = admin.get("/admin/invites").json()
    assert code not in str(listed) and listed[0]["prefix"] == code[:10]

    answer = sign_up(gateway.url, "lena", code)
    assert answer.status_code == 201 and answer.json() == {"username": "lena", "status": "active"}
    assert gateway.login("lena", PASSWORD)
    assert admin.get("/admin/invites").json()[0]["used"] == 1

    async def stored() -> list[str]:
        async with gateway.services.db.session() as session:
            return list((await session.scalars(select(Invite.code_hash))).all())

    assert code not in gateway.run(stored())[0]


def test_a_used_up_unknown_expired_or_missing_invite_is_refused_clearly(
    gateway: Gateway, admin: httpx.Client
) -> None:
    code = str(invite(admin)["code"])
    assert sign_up(gateway.url, "mia", code).status_code == 201
    refusals = {
        "used_up": sign_up(gateway.url, "ned", code),
        "unknown": sign_up(gateway.url, "ned", "inv-nothing-of-the-kind"),
        "required": sign_up(gateway.url, "ned", None),
    }
    for why, answer in refusals.items():
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == f"invite_{why}", answer.text
    expired = str(invite(admin, expires_in_hours=0.0001)["code"])
    gateway.run(_wait(0.5))
    answer = sign_up(gateway.url, "ned", expired)
    assert answer.json()["error"]["code"] == "invite_expired"
    bad = admin.post("/admin/invites", json={"uses": 0})
    assert bad.status_code == 422


async def _wait(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_an_invite_names_the_role_and_a_name_taken_gives_the_use_back(
    gateway: Gateway, admin: httpx.Client
) -> None:
    code = str(invite(admin, role="admin")["code"])
    taken = sign_up(gateway.url, "root", code)
    assert taken.status_code == 409
    assert admin.get("/admin/invites").json()[0]["used"] == 0
    assert sign_up(gateway.url, "olga", code).status_code == 201
    assert admin.get("/admin/users/olga").json()["role"] == "admin"


def test_an_invite_under_approval_makes_an_active_account(
    gateway: Gateway, admin: httpx.Client
) -> None:
    admin.put("/admin/signup", json={"mode": "approval"})
    code = str(invite(admin)["code"])
    assert sign_up(gateway.url, "pia", code).json()["status"] == "active"
    assert sign_up(gateway.url, "quin", None).json()["status"] == "pending"
    admin.put("/admin/signup", json={"mode": "off"})
    closed = sign_up(gateway.url, "rita", str(invite(admin)["code"]))
    assert closed.json()["error"]["code"] == "signup_closed"


def test_a_withdrawn_invite_stops_working_and_every_step_is_audited(
    gateway: Gateway, admin: httpx.Client
) -> None:
    made = invite(admin, uses=5)
    assert sign_up(gateway.url, "sam", str(made["code"])).status_code == 201
    assert admin.delete(f"/admin/invites/{made['id']}").status_code == 204
    answer = sign_up(gateway.url, "tess", str(made["code"]))
    assert answer.json()["error"]["code"] == "invite_unknown"
    assert admin.delete(f"/admin/invites/{made['id']}").status_code == 404
    actions = [e["action"] for e in admin.get("/admin/audit").json()["data"]]
    assert actions[:3] == ["invite.delete", "user.signup", "invite.create"]
    log = admin.get("/admin/audit").text
    assert str(made["code"]) not in log


@pytest.mark.parametrize("uses", [1, 3])
def test_people_redeeming_an_invite_at_once_on_two_servers_make_exactly_its_uses(
    make_gateway: Callable[..., Gateway], gateway: Gateway, admin: httpx.Client, uses: int
) -> None:
    other = make_gateway(signup="invite", login_max_failures=100)
    code = str(invite(admin, uses=uses)["code"])
    people = 12
    start = Barrier(people)

    def redeem(n: int) -> int:
        url = (gateway, other)[n % 2].url
        start.wait()
        return sign_up(url, f"racer{n}", code).status_code

    with ThreadPoolExecutor(people) as pool:
        codes = list(pool.map(redeem, range(people)))
    assert sorted(codes) == [201] * uses + [403] * (people - uses)

    async def racers() -> int:
        async with gateway.services.db.session() as session:
            names = await session.scalars(select(User.name).where(User.name.like("racer%")))
            return len(names.all())

    assert gateway.run(racers()) == uses
    assert admin.get("/admin/invites").json()[0]["used"] == uses
