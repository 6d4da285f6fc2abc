"""One-time passwords in the core: a login with one is held back everywhere unless the caller is
changing the password, even once its principal is cached; keys never are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import remember

from chatgate.core.errors import AuthenticationFailed, PasswordChangeRequired
from chatgate.services import Services
from chatgate.settings import Settings

CHOSEN = remember("cobalt-Meadow-1193")


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings.load(data_dir=tmp_path, usage_flush_seconds=0.05)
    opened = await Services.open(settings, start_models=False)
    yield opened
    await opened.close()


async def test_a_one_time_login_may_only_change_its_password(services: Services) -> None:
    accounts = services.accounts
    info, one_time = await accounts.create_user_for("nora", None)
    assert one_time is not None and info.password_change_required
    remember(one_time)
    key, _ = await accounts.create_key("nora")
    session = await services.logins.login("nora", one_time, None)
    assert session.user.password_change_required

    for _ in range(2):  # the second time from the cache
        with pytest.raises(PasswordChangeRequired) as refused:
            await accounts.authenticate(session.token)
        assert refused.value.code == "password_change_required"
        assert refused.value.status == 403
    principal = await accounts.authenticate(session.token, changing_password=True)
    assert principal.password_change_required and principal.username == "nora"
    assert not (await accounts.authenticate(key)).password_change_required

    fresh = await services.logins.change_password(principal, one_time, CHOSEN, None)
    assert not fresh.user.password_change_required
    assert not (await accounts.authenticate(fresh.token)).password_change_required
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate(session.token, changing_password=True)
    entries = (await accounts.audit.page(target="nora", limit=10)).items
    assert [e.details.get("password") for e in entries if e.action == "user.create"] == ["one-time"]
