"""What a provider may be, from the TOML file as from the admin API: an http(s) URL, and keys
from any variable but chatgate's own settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from chatgate.settings import ProviderConfig, Settings, read_upstreams


@pytest.mark.parametrize(
    "base_url",
    ["file:///etc/passwd", "gopher://h/_x", "unix:///run/x.sock", "http://h/v1?x=1", "http://h/#a"],
)
def test_a_base_url_that_is_not_plain_http_is_refused(base_url: str) -> None:
    with pytest.raises(ValidationError, match="base_url must"):
        ProviderConfig(name="p", base_url=base_url)


@pytest.mark.parametrize("name", ["CHATGATE_SECRET_KEY", "Chatgate_Redis_Url"])
def test_chatgates_own_variables_are_never_a_providers_key(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATGATE_SECRET_KEY", "s" * 48)
    config = tmp_path / "chatgate.toml"
    config.write_text(f'[[providers]]\nname = "p"\napi_key_envs = ["{name}"]\n')
    with pytest.raises(ValidationError, match="chatgate's own settings"):
        read_upstreams(config)
    with pytest.raises(ValidationError, match="chatgate's own settings"):
        Settings.load(data_dir=tmp_path, provider_key_envs_allowed=[name])


def test_the_toml_file_may_name_any_other_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_KEY", "sk-team")
    config = tmp_path / "chatgate.toml"
    config.write_text('[[providers]]\nname = "p"\napi_key_envs = ["TEAM_KEY"]\n')
    [provider] = read_upstreams(config)["providers"]
    assert [k.get_secret_value() for k in provider.api_keys] == ["sk-team"]
