"""The package's build hook: builds the web page from ``frontend/`` into
``chatgate/web/static/`` whenever a wheel (an editable one too) or an sdist is built, so that
``pip install`` gives a server that serves its page with nothing else to install at run time.

The page's sources and lock file are committed; what npm installs and what Vite writes are not
(git ignores them), and the wheel and sdist carry the built files as artifacts.

- ``npm ci`` runs only when ``frontend/node_modules`` is missing or was installed from another
  ``package-lock.json`` (a stamp file in node_modules remembers the lock's hash).
- ``npm run build`` runs every time, then every asset gets a ``.gz`` twin (gzip level 9), which
  the server sends as is instead of compressing per request.
- Without Node.js 20+ and npm, the build stops with a message that says so, unless the page is
  already built (an sdist carries it): then that build is packaged, with a warning.
- ``CHATGATE_SKIP_WEB_BUILD=1`` builds nothing and packages whatever is there (maybe no page:
  the server then answers ``/`` with a page that says how to build it).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SKIP_VARIABLE = "CHATGATE_SKIP_WEB_BUILD"
NODE_MAJOR = 20
LOCK_STAMP = ".chatgate-lock-sha256"
COMPRESSED = frozenset({".js", ".mjs", ".css", ".svg", ".json", ".html", ".txt", ".wasm"})
SMALLEST_COMPRESSED = 256  # bytes; below this gzip's own header outweighs what it saves

NEEDS_NODE = (
    "Building chatgate's web page needs Node.js {major} or newer and npm, with access to the "
    "npm registry, when chatgate is installed (not when it runs): {problem}.\n"
    "Install them (e.g. `apt-get install nodejs npm`, or from nodejs.org) and install again, "
    "or set {skip}=1 to install chatgate without its web page (the APIs work as usual)."
)


class WebPageBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        frontend = root / "frontend"
        static = root / "chatgate" / "web" / "static"
        built = (static / "index.html").is_file()
        if _truthy(os.environ.get(SKIP_VARIABLE, "")):
            self.app.display_warning(
                f"{SKIP_VARIABLE} is set: the web page is not built"
                + ("" if built else "; the server will answer / with a 'not built' page")
            )
            return
        if not (frontend / "package.json").is_file():
            if built:
                return  # a source distribution without the page's sources but with the page
            self.app.abort(f"The web page is neither built ({static}) nor buildable ({frontend}).")
            return
        problem = _missing_node()
        if problem is not None:
            if built:
                self.app.display_warning(
                    f"{problem}: packaging the web page already built in {static}, "
                    "which may be older than its sources"
                )
                return
            self.app.abort(NEEDS_NODE.format(major=NODE_MAJOR, problem=problem, skip=SKIP_VARIABLE))
            return
        self._build(frontend, static)

    def _build(self, frontend: Path, static: Path) -> None:
        lock = frontend / "package-lock.json"
        stamp = frontend / "node_modules" / LOCK_STAMP
        wanted = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else ""
        current = stamp.read_text().strip() if stamp.is_file() else None
        if current != wanted:
            self.app.display_info("installing the web page's packages: npm ci")
            self._npm(frontend, "ci", "--no-audit", "--no-fund", why="needs the npm registry")
            stamp.write_text(wanted + "\n")
        self.app.display_info(f"building the web page into {static}: npm run build")
        self._npm(frontend, "run", "build", why="see its output above")
        if not (static / "index.html").is_file():
            self.app.abort(f"`npm run build` wrote no {static / 'index.html'}")
        compress_assets(static / "assets")

    def _npm(self, frontend: Path, *args: str, why: str) -> None:
        npm = shutil.which("npm")
        assert npm is not None  # checked by _missing_node
        done = subprocess.run([npm, *args], cwd=frontend, check=False)  # noqa: S603 (npm found on PATH, fixed arguments)
        if done.returncode != 0:
            self.app.abort(
                f"`npm {' '.join(args)}` in {frontend} failed with status {done.returncode} "
                f"({why}). Set {SKIP_VARIABLE}=1 to install chatgate without its web page."
            )


def compress_assets(assets: Path) -> None:
    """Write NAME.gz beside every compressible asset; the server sends it when it may."""
    if not assets.is_dir():
        return
    for path in sorted(assets.rglob("*")):
        if path.suffix not in COMPRESSED or not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) < SMALLEST_COMPRESSED:
            continue
        # mtime 0: the same build gives the same bytes.
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, 9, mtime=0))


def _missing_node() -> str | None:
    """Why Node.js and npm cannot build the page here, or None when they can."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        return "Node.js was not found on PATH"
    if shutil.which("npm") is None:
        return "npm was not found on PATH"
    try:
        shown = subprocess.run(  # noqa: S603 (the node found on PATH)
            [node, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`node --version` failed ({exc})"
    found = re.match(r"v?(\d+)\.", shown)
    if found is None or int(found.group(1)) < NODE_MAJOR:
        return f"Node.js {shown or '(unknown version)'} is too old"
    return None


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")
