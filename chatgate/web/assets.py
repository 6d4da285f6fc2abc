"""The built page's assets under ``/assets/``: hashed file names, cached for good, sent
compressed.

Starlette's ``StaticFiles`` does the path handling (no way out of the directory, no symlinks
followed), ``ETag`` and ``If-None-Match``; this adds the caching and safety headers, and sends
the ``.gz`` twin the build wrote next to a file when the browser accepts gzip, so nothing is
compressed per request. Files without a twin are compressed on the fly (see ``web.routes``).
"""

from __future__ import annotations

import mimetypes
import os
import stat

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from chatgate.web.headers import IMMUTABLE, SECURITY_HEADERS

GZIP_SUFFIX = ".gz"


def accepts_gzip(scope: Scope) -> bool:
    accept = Headers(scope=scope).get("accept-encoding", "")
    return any(part.split(";")[0].strip().lower() == "gzip" for part in accept.split(","))


class AssetFiles(StaticFiles):
    """The ``assets`` directory of a build, which may not exist (yet): then every asset is a
    404, and the page itself explains how to build it."""

    async def check_config(self) -> None:
        return None

    async def get_response(self, path: str, scope: Scope) -> Response:
        if (
            scope["method"] in ("GET", "HEAD")
            and not path.endswith(GZIP_SUFFIX)
            and accepts_gzip(scope)
        ):
            full_path, found = await anyio.to_thread.run_sync(self.lookup_path, path + GZIP_SUFFIX)
            if found is not None and stat.S_ISREG(found.st_mode):
                return self._precompressed(full_path, found, path, scope)
        return await super().get_response(path, scope)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        _add_headers(response)
        return response

    def _precompressed(
        self, full_path: str, found: os.stat_result, path: str, scope: Scope
    ) -> Response:
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        response: Response = FileResponse(
            full_path,
            stat_result=found,
            media_type=media_type,
            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            response = NotModifiedResponse(response.headers)
        _add_headers(response)
        return response


def _add_headers(response: Response) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = IMMUTABLE
