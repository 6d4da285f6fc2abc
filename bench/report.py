"""The results as a table, plain for the terminal or markdown for the README.

``python -m bench.report FILE.json`` prints the markdown table of a saved run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

COLUMNS = (
    "scenario",
    "c",
    "target",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "+p50",
    "+p95",
    "TTFB p50",
    "+TTFB p50",
    "+TTFB p95",
    "CPU ms/req",
    "cores",
    "RSS MB",
    "errors",
)


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def row(r: dict[str, Any]) -> list[str]:
    add_lat = r.get("added_latency_ms") or {}
    add_ttfb = r.get("added_ttfb_ms") or {}
    stream = r["stream"]
    errors = str(r["errors"])
    if r.get("rejected"):
        errors += f" ({r['rejected']} x 429)"
    return [
        r["scenario"],
        str(r["concurrency"]),
        r["target"],
        _f(r["rps"], 1),
        _f(r["latency_ms"]["p50"]),
        _f(r["latency_ms"]["p95"]),
        _f(r["latency_ms"]["p99"]),
        _f(add_lat.get("p50")),
        _f(add_lat.get("p95")),
        _f(r["ttfb_ms"]["p50"]) if stream else "",
        _f(add_ttfb.get("p50")) if stream else "",
        _f(add_ttfb.get("p95")) if stream else "",
        _f(r["cpu_ms_per_req"], 3),
        _f(r["cpu_cores"]),
        _f(r["rss_mb_peak"], 1),
        errors,
    ]


def table(results: list[dict[str, Any]], markdown: bool = False) -> str:
    return _render(COLUMNS, [row(r) for r in results], markdown, left=3)


TRANSPORT_COLUMNS = (
    "transport",
    "c",
    "replies/s",
    "TTFT p50 ms",
    "TTFT p95 ms",
    "CPU ms/reply",
    "CPU xSSE",
    "TTFT xSSE",
    "like",
    "CPU xlike",
    "TTFT xlike",
    "errors",
)


def transport_row(r: dict[str, Any]) -> list[str]:
    like = r["like"] if r["like"] != r["transport"] else ""
    return [
        r["transport"] + (" (ref)" if r.get("reference") else ""),
        str(r["concurrency"]),
        _f(r["rps"], 1),
        _f(r["ttft_ms"]["p50"]),
        _f(r["ttft_ms"]["p95"]),
        _f(r["cpu_ms_per_req"], 3),
        _f(r.get("cpu_vs_sse")),
        _f(r.get("ttft_p50_vs_sse")),
        like,
        _f(r.get("cpu_vs_like")) if like else "",
        _f(r.get("ttft_p50_vs_like")) if like else "",
        str(r["errors"]),
    ]


def transport_table(results: list[dict[str, Any]], markdown: bool = False) -> str:
    """The transports scenario's runs: each against SSE and against the reference run of its
    own shape (stored, whole) at the same concurrency; empty when there were none."""
    rows = [transport_row(r) for r in results if "transport" in r]
    if not rows:
        return ""
    return _render(TRANSPORT_COLUMNS, rows, markdown, left=1)


def _render(columns: tuple[str, ...], rows: list[list[str]], markdown: bool, left: int) -> str:
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" if i < left else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*columns), *(fmt.format(*r) for r in rows)])


def main() -> None:
    report = orjson.loads(Path(sys.argv[1]).read_bytes())
    store = report.get("store", {}).get("kind", "sqlite")
    print(f"store: {store}\n")
    print(table(report["results"], markdown=True))
    transports = transport_table(report["results"], markdown=True)
    if transports:
        print()
        print(transports)


if __name__ == "__main__":
    main()
