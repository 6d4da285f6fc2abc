"""The page's HTML: the same ``index.html`` for every path the page routes itself, so that a
reload or a shared link (``/c/{id}``) opens the page where it was.

When the page was not built (chatgate installed with ``CHATGATE_SKIP_WEB_BUILD=1``, or a source
checkout before ``npm run build``), these paths answer a short 503 page that says how to build
it, and the APIs work as ever.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from chatgate.web.headers import REVALIDATE, SECURITY_HEADERS

# The paths the page answers itself (its client-side routes), as Starlette route paths.
PAGE_PATHS = (
    "/",
    "/c/{conversation_id}",
    "/login",
    "/account",
    "/setup",
    "/admin",
    "/admin/{rest:path}",
)

NOT_BUILT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatgate: the web page is not built</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem; }
code, pre { font-family: ui-monospace, monospace; background: #8882; padding: 0 .2em; }
pre { padding: .6em; overflow-x: auto; }
</style>
</head>
<body>
<h1>The web page is not built</h1>
<p>This chatgate was installed without its web page, so there is nothing to show here yet.
The APIs work as usual: <code>/v1</code>, <code>/api/v1</code>, and their description at
<a href="/docs">/docs</a>.</p>
<p>The page is built with Node.js 20 or newer and npm, when chatgate is installed.
Reinstall it on a machine that has both (and can reach the npm registry):</p>
<pre>pip install chatgate        # or, in a source checkout: pip install -e .</pre>
<p>or build it in place in a source checkout, then reload this page:</p>
<pre>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>Installing with <code>CHATGATE_SKIP_WEB_BUILD=1</code> leaves the page out on purpose.</p>
</body>
</html>
"""


class PageEndpoint:
    """Answers ``index.html`` from ``static_dir``, or the 503 page when it is not there.

    The file is read whole (it is small) on every request, so a build that replaces it while
    the server runs is served at once, and one caught half-way (``vite build`` empties the
    directory first) is a 503, never an error."""

    def __init__(self, static_dir: Path) -> None:
        self.index = anyio.Path(static_dir / "index.html")

    async def __call__(self, request: Request) -> Response:
        headers = {**SECURITY_HEADERS, "Cache-Control": REVALIDATE}
        try:
            page = await self.index.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return HTMLResponse(NOT_BUILT, status_code=503, headers=headers)
        return HTMLResponse(page, headers=headers)
