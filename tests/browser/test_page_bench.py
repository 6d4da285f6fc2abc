"""``python -m bench.page`` keeps working: one quick run, in Chromium, against the built page.
Its figures are the benchmark's to report; only that each was measured is checked here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import page as bench_page


@pytest.mark.timeout(900)  # two servers, three browser contexts and 40 requests, once
def test_the_page_benchmark_measures_weight_opening_and_streaming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "page.json"
    assert bench_page.main(["--quick", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "JS+CSS before the first message (gzip)" in printed
    assert "long tasks > 50 ms" in printed

    results = json.loads(output.read_text())
    kinds = {f["kind"] for f in results["weight_files"]}
    assert kinds == {"script", "stylesheet"}
    assert all(f["url"].startswith("/assets/") for f in results["weight_files"])
    assert all(0 < f["gzip_bytes"] < f["bytes"] for f in results["weight_files"])
    assert results["weight_gzip_kb"] * 1024 == pytest.approx(
        sum(f["gzip_bytes"] for f in results["weight_files"])
    )
    assert results["open_messages"] == 10  # every message of the conversation was rendered
    assert len(results["open_warm_ms"]) == 1
    assert results["open_cold_ms"] > 0 and results["open_warm_ms"][0] > 0
    assert results["long_task_api"] is True
    assert results["stream_finish"] == "stop"
    assert results["stream_chars_shown"] > 500  # the long Markdown reply, rendered
    assert results["budgets"] == {"weight_gzip_kb": 150.0, "open_ms": 300.0, "long_tasks": 0}
