"""The README's provider example is a working configuration."""

from __future__ import annotations

import re
from pathlib import Path

from chatgate.providers.router import ModelRegistry
from chatgate.settings import Settings, read_upstreams

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_example_configures_four_providers_and_a_fallback_chain(
    tmp_path: Path,
) -> None:
    section = README.read_text().split("<!-- section: providers -->")[1]
    [example] = re.findall(r"```toml\n(.*?)```", section.split("<!-- section:")[0], re.S)
    config = tmp_path / "chatgate.toml"
    config.write_text(example)
    settings = Settings.load(config, data_dir=tmp_path)
    assert read_upstreams(config)["routing"] == settings.routing
    registry = ModelRegistry(settings)
    route = registry.resolve("smart")
    assert [d.provider.name for d in route.deployments] == ["openai", "azure", "deepseek"]
    assert {p.kind for p in settings.providers} == {"openai-compatible", "azure-openai"}
    assert route.config.input_price == 2.5 and route.config.output_price == 10.0
    assert registry.resolve("llama3.1").deployments[0].provider.name == "ollama"
    assert registry.resolve("deepseek-chat").config.allowed_roles == ["admin"]
