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
    rows = [row(r) for r in results]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*COLUMNS), *(fmt.format(*r) for r in rows)])


def main() -> None:
    report = orjson.loads(Path(sys.argv[1]).read_bytes())
    print(table(report["results"], markdown=True))


if __name__ == "__main__":
    main()
