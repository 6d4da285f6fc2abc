"""The README's start, as a newcomer follows it: its first command installs what its own
examples import, and its first two command lines are the ones the house runs."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
FIRST_COMMAND = "pip install -e . openai requests && chatgate serve"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def installed_by_chatgate() -> set[str]:
    """Distributions ``pip install -e .`` brings: chatgate's requirements, and theirs with the
    extras it asks for (``uvicorn[standard]`` brings ``websockets``)."""
    names: set[str] = set()
    for line in metadata.requires("chatgate") or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        names.add(requirement.name.lower())
        for sub in metadata.requires(requirement.name) or []:
            inner = Requirement(sub)
            extras = [{"extra": e} for e in requirement.extras] or [{"extra": ""}]
            if inner.marker is None or any(inner.marker.evaluate(e) for e in extras):
                names.add(inner.name.lower())
    return names


def imported_modules(code: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_first_two_command_lines_are_install_and_start_then_the_whole_suite() -> None:
    first, second = (block.strip() for block in blocks("sh")[:2])
    assert README.index("```sh") < README.index("```python")
    assert first == FIRST_COMMAND
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in ci if line and not line.startswith("#")]
    assert second in commands, "CI runs the README's test line as it is"
    assert README.index(second) < README.index("## First steps")


def test_the_first_command_installs_every_module_the_examples_import() -> None:
    given = installed_by_chatgate() | {name.lower() for name in FIRST_COMMAND.split()[4:6]}
    distributions = metadata.packages_distributions()
    missing = {}
    for code in blocks("python"):
        for module in imported_modules(code) - set(sys.stdlib_module_names) - {"chatgate"}:
            names = {d.lower() for d in distributions.get(module, [module])}
            if not names & given:
                missing[module] = sorted(names)
    assert not missing, (
        f"the README's examples import what its first command does not install: {missing}"
    )


def test_the_key_is_in_the_environment_before_an_example_uses_it() -> None:
    set_at = README.index("export CHATGATE_KEY=$(chatgate keys create")
    used_at = min(
        README.index(use)
        for use in ("$CHATGATE_KEY", 'os.environ["CHATGATE_KEY"]')
        if use in README
    )
    assert set_at < used_at
