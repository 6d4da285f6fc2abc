"""``chatgate`` as the benchmark runs it: ``python -m bench.gateway [--client httpx] serve ...``.

With ``--client aiohttp`` (the default) this is exactly ``chatgate``. With ``--client httpx``
the OpenAI-compatible provider is swapped for ``bench.httpx_provider.HttpxProvider``, the same
provider on an httpx client, so the two client libraries are measured in the same harness.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    client = "aiohttp"
    if argv[:1] == ["--client"]:
        client, argv = argv[1], argv[2:]
    if client == "httpx":
        from bench.httpx_provider import install

        install()
    elif client != "aiohttp":
        raise SystemExit(f"unknown client {client!r}: aiohttp or httpx")
    from chatgate.cli.main import main as chatgate

    sys.argv = ["chatgate", *argv]
    chatgate()


if __name__ == "__main__":
    main()
