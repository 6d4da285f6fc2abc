"""The web chat page's server side: it serves the built page and nothing else.

The page is one more client of the public API (``/api/v1``, ``/v1``); no business rule lives
here. Its source is ``frontend/`` in the repository, built by the package's build hook
(``hatch_build.py``) into ``static/`` here, which git ignores.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute, Mount, Route, request_response

from chatgate.web.assets import AssetFiles
from chatgate.web.pages import PAGE_PATHS, PageEndpoint

# Where the build hook (and ``npm run build`` in ``frontend/``) writes the page.
STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PATH = "/assets"

# Anyone may load the page and its assets: they hold no data, the API they call checks who asks.
PUBLIC_PATHS = frozenset((*PAGE_PATHS, ASSETS_PATH))


def routes(static_dir: Path | None = None) -> list[BaseRoute]:
    """The page's routes, to be added after every API route. Assets without a ``.gz`` twin
    are compressed on the fly; the page's own paths answer ``index.html``."""
    root = static_dir or STATIC_DIR
    page = GZipMiddleware(request_response(PageEndpoint(root)))
    assets = GZipMiddleware(AssetFiles(directory=root / "assets", check_dir=False))
    found: list[BaseRoute] = [
        Route(path, page, methods=["GET"], include_in_schema=False) for path in PAGE_PATHS
    ]
    found.append(Mount(ASSETS_PATH, app=assets))
    return found
