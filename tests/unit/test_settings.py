from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from chatgate.settings import Settings

README = Path(__file__).parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)`", text, flags=re.MULTILINE))
    missing = set(Settings.model_fields) - documented - {"config_file"}
    assert not missing, f"settings missing from the README table: {sorted(missing)}"


def test_openai_variables_become_the_default_upstream(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
    settings = Settings.load(data_dir=tmp_path)
    [provider] = settings.upstream_providers
    assert provider.base_url == "http://127.0.0.1:9/v1"
    assert provider.api_keys[0].get_secret_value() == "sk-upstream"
    assert not settings.serve_demo


def test_demo_model_is_served_without_an_upstream(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    assert settings.upstream_providers == [] and settings.serve_demo


def test_toml_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "chatgate.toml"
    config.write_text('port = 9100\nlog_level = "debug"\n[upstream_timeouts]\nconnect = 3\n')
    monkeypatch.setenv("CHATGATE_LOG_LEVEL", "warning")
    settings = Settings.load(config, data_dir=tmp_path)
    assert settings.port == 9100
    assert settings.upstream_timeouts.connect == 3
    assert settings.log_level == "warning"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        Settings.load(tmp_path / "nope.toml")


def test_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    first = settings.secret()
    assert len(first) >= 32
    assert settings.secret() == first
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600


def test_weak_secret_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHATGATE_SECRET_KEY", "changeme")
    with pytest.raises(ValidationError, match="too weak"):
        Settings.load(data_dir=tmp_path)


def test_provider_keys_may_come_from_named_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEEPSEEK_KEY", "sk-ds")
    settings = Settings.load(
        data_dir=tmp_path,
        providers=[
            {"name": "deepseek", "base_url": "https://x/v1", "api_key_envs": ["DEEPSEEK_KEY"]}
        ],
    )
    assert [k.get_secret_value() for k in settings.providers[0].api_keys] == ["sk-ds"]
