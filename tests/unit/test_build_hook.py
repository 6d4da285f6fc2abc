"""The package's build hook (hatch_build.py) on a machine without Node.js: a build stops with a
message that says what to install, unless the page is already built (an sdist carries it) or
the build of the page is skipped on purpose. Each case builds a real wheel of a copy of the
project with hatchling; PATH holds no node and no npm."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
STATIC = Path("chatgate/web/static")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project's packaging files and sources, without a built page."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "hatch_build.py", "README.md", ".gitignore"):
        shutil.copy(ROOT / name, copy / name)
    ignored = shutil.ignore_patterns("__pycache__", "static", "node_modules")
    for name in ("chatgate", "bench"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignored)
    (copy / "frontend").mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / "frontend" / name, copy / "frontend" / name)
    return copy


def build_wheel(project: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    no_node = project.parent / "bin-without-node"
    no_node.mkdir(exist_ok=True)
    variables = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    variables.update(PATH=str(no_node), **env)
    out = project.parent / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=project,
        env=variables,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, out


def wheel_files(out: Path) -> list[str]:
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_without_node_and_without_a_built_page_the_build_says_what_to_install(
    project: Path,
) -> None:
    done, out = build_wheel(project)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "Node.js 20 or newer and npm" in said
    assert "Node.js was not found on PATH" in said
    assert "CHATGATE_SKIP_WEB_BUILD=1" in said
    assert "Traceback" not in said
    assert not list(out.glob("*.whl"))


def test_without_node_a_page_already_built_is_packaged_with_a_warning(project: Path) -> None:
    (project / STATIC / "assets").mkdir(parents=True)
    (project / STATIC / "index.html").write_text("<title>chatgate</title>")
    (project / STATIC / "assets" / "index-1a2b3c.js").write_text("export {};\n")
    done, out = build_wheel(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "packaging the web page already built" in done.stdout + done.stderr
    files = wheel_files(out)
    # git ignores these files; the wheel carries them all the same.
    assert "chatgate/web/static/index.html" in files
    assert "chatgate/web/static/assets/index-1a2b3c.js" in files


def test_skipping_the_page_builds_a_wheel_without_it(project: Path) -> None:
    done, out = build_wheel(project, CHATGATE_SKIP_WEB_BUILD="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CHATGATE_SKIP_WEB_BUILD is set" in done.stdout + done.stderr
    files = wheel_files(out)
    assert "chatgate/web/pages.py" in files
    assert not [f for f in files if f.startswith("chatgate/web/static/")]
