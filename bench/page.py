"""The web page's weight and timing budgets, measured in Chromium: ``python -m bench.page``.

Three figures, each against its budget (reported, never asserted: see bench/README.md):

- **weight**: the gzip size of the JavaScript and CSS the browser loaded before the first
  message of a conversation showed (logged in, opening ``/c/{id}`` in a fresh browser);
  budget 150 KB;
- **open**: the time until a 500-message conversation is open: its last message is in the DOM
  of the ready message list (``data-ready``, set once the conversation is drawn and scrolled to
  its end) and the frame that shows it has been painted (a task posted from that frame's
  ``requestAnimationFrame`` callback, which runs after the paint). Measured from the navigation
  to ``/c/{id}`` from a blank tab (the assets cached, as on a second visit: the median of
  ``--runs``; and once with an empty cache), and from the click on the conversation in the
  sidebar while another one is open (the median of ``--runs``). Budget 300 ms, on loopback.
  The messages on screen at that moment must show rendered Markdown, not text waiting to be
  rendered: their count is reported (``open_pending_on_screen``, zero when honest). Older
  messages may be drawn later (when the page is idle): that is the point of the budget;
- **stream**: the long tasks (over 50 ms, from a ``PerformanceObserver``) from pressing Enter
  until the 4,000-token Markdown reply has streamed in and is rendered whole; budget none.

The server is ``chatgate serve`` in a subprocess (fresh data directory, SQLite), in front of
``bench/page_upstream.py``, a fake model that answers in varied Markdown (lists, tables, code in
several languages, math) at one piece every ``--interval`` seconds. Chromium is Debian's
(``/usr/bin/chromium``), driven by Playwright; the page is the built one (chatgate/web/static).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, Request, sync_playwright

from bench.page_upstream import MODEL, plain_question
from bench.procs import ROOT, Proc, base_env, free_port, gateway_env, start_gateway

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BUDGET_KB = 150.0
BUDGET_OPEN_MS = 300.0
BUDGET_LONG_TASKS = 0
LONG_TASK_MS = 50.0
USER, PASSWORD = "bench", "bench-page-password"
RESULTS = ROOT / "bench" / "results"

# Installed before the page's own scripts: long tasks as they happen; the moment the awaited
# message is in the DOM of a ready message list, and the moment the frame that shows it has been
# drawn (a task posted from that frame's animation callback runs once it is painted); how many
# messages on screen then still show their Markdown as plain text (zero when the page is
# honest about being open); and the time of the last click (the sidebar's, for opening by click).
_WATCH = """
window.__bench = {longtasks: [], domAt: null, shownAt: null, pendingOnScreen: null, clickAt: null};
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      window.__bench.longtasks.push({start: e.startTime, duration: e.duration});
  }).observe({type: 'longtask', buffered: true});
} catch (e) { window.__bench.noLongtaskApi = String(e); }
addEventListener('click', (e) => { window.__bench.clickAt = e.timeStamp; }, true);
const awaited = %s;
if (awaited) {
  const painted = () => {
    window.__bench.shownAt = performance.now();
    const list = document.querySelector('.messages');
    const box = list.getBoundingClientRect();
    let pending = 0;
    for (const el of list.querySelectorAll('.msg')) {
      const r = el.getBoundingClientRect();
      if (r.bottom > box.top && r.top < box.bottom && el.querySelector('.md-pending')) pending++;
    }
    window.__bench.pendingOnScreen = pending;
  };
  const check = () => {
    if (window.__bench.domAt !== null) return;
    const sel = '.messages[data-ready="1"] [data-id="' + awaited + '"]';
    if (document.querySelector(sel)) {
      window.__bench.domAt = performance.now();
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = painted;
        channel.port2.postMessage(null);
      });
    }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true,
    attributes: true, attributeFilter: ['data-ready', 'data-id']});
}
"""


@dataclass
class Options:
    messages: int = 500
    tokens: int = 4000
    interval: float = 0.005
    runs: int = 5
    quick: bool = False
    output: Path | None = None
    trace: Path | None = None

    @classmethod
    def quick_run(cls) -> Options:
        return cls(messages=10, tokens=150, interval=0.002, runs=1, quick=True)


@dataclass
class Loaded:
    url: str
    kind: str
    bytes: int
    gzip_bytes: int
    transferred: int


@dataclass
class Results:
    when: str
    options: dict[str, Any]
    chromium: str
    weight_gzip_kb: float = 0.0
    weight_files: list[Loaded] = field(default_factory=list)
    later_files: list[str] = field(default_factory=list)  # loaded once the message showed
    first_message_ms: float = 0.0
    open_messages: int = 0
    open_cold_ms: float = 0.0
    open_warm_ms: list[float] = field(default_factory=list)
    open_click_ms: list[float] = field(default_factory=list)
    open_pending_on_screen: int = 0  # messages on screen still unrendered when "open"
    stream_tokens: int = 0
    stream_seconds: float = 0.0
    stream_chars_shown: int = 0
    stream_finish: str = ""
    long_tasks: list[float] = field(default_factory=list)
    long_task_api: bool = True

    @property
    def open_ms(self) -> float:
        return statistics.median(self.open_warm_ms) if self.open_warm_ms else 0.0

    @property
    def open_click_median_ms(self) -> float:
        return statistics.median(self.open_click_ms) if self.open_click_ms else 0.0


# ---- the server -----------------------------------------------------------------------------


class Server:
    """chatgate and the Markdown upstream, in subprocesses, with the bench user."""

    def __init__(self, options: Options, work: Path) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "bench.page_upstream", "--port", str(port)]
        argv += ["--interval", str(options.interval), "--tokens", str(options.tokens)]
        self.upstream = Proc("page upstream", argv, port, base_env(), work / "upstream.log")
        self.gateway: Proc | None = None
        try:
            asyncio.run(self.upstream.wait_ready("/v1/models"))
            env = gateway_env(work / "data", self.upstream, demo_model="false")
            create = ["users", "create", USER, "--admin", "--password-stdin"]
            subprocess.run(
                [sys.executable, "-m", "chatgate", *create],
                env=env,
                cwd=ROOT,
                input=PASSWORD + "\n",
                capture_output=True,
                text=True,
                check=True,
            )
            self.gateway = start_gateway(env, "aiohttp", work)
            asyncio.run(self.gateway.wait_ready("/healthz"))
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.gateway.port}"
        login = {"username": USER, "password": PASSWORD}
        token = httpx.post(self.url + "/api/v1/auth/login", json=login, timeout=60).json()["token"]
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def conversation(self, messages: int, plain: bool = False) -> tuple[str, str]:
        """A conversation of ``messages`` messages (questions and Markdown replies, made
        through the API; prose only if ``plain``); its id and its last message's id."""
        conversation, last = "new", ""
        for i in range(messages // 2):
            question = plain_question() if plain else f"Question {i}: tell me more."
            body = {"content": question, "stream": False, "model": MODEL}
            reply = self.api.post(
                f"/api/v1/conversations/{conversation}/messages",
                json={**body, "max_tokens": 40 if plain else 60},
            )
            reply.raise_for_status()
            conversation, last = reply.json()["conversation_id"], reply.json()["message_id"]
        self._wait_stored(conversation, messages)
        return conversation, last

    def empty_conversation(self) -> str:
        made = self.api.post("/api/v1/conversations", json={"title": "long", "model": MODEL})
        made.raise_for_status()
        return str(made.json()["id"])

    def _wait_stored(self, conversation: str, messages: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            shown = self.api.get(f"/api/v1/conversations/{conversation}").json()
            if len(shown["messages"]) >= messages or time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        if hasattr(self, "api"):
            self.api.close()
        for proc in (self.gateway, self.upstream):
            if proc is not None:
                proc.stop()


# ---- the browser ----------------------------------------------------------------------------


def logged_in(browser: Browser, url: str, awaited: str = "") -> tuple[BrowserContext, Page]:
    """A fresh context (no cache, no cookie) logged in through the API's cookie login."""
    context = browser.new_context(
        base_url=url, locale="en-US", viewport={"width": 1280, "height": 900}
    )
    answer = context.request.post(
        "/api/v1/auth/login", data={"username": USER, "password": PASSWORD, "cookie": True}
    )
    if not answer.ok:
        raise RuntimeError(f"login failed: {answer.status} {answer.text()}")
    page = context.new_page()
    page.add_init_script(_WATCH % json.dumps(awaited))
    page.set_default_timeout(120_000)
    return context, page


def wait_until(page: Page, expression: str, within: float = 120, every: int = 20) -> None:
    """Poll ``expression`` every ``every`` ms (``wait_for_function`` would eval it, which the
    page's CSP forbids); the times measured are the page's own, so the polling adds nothing to
    them."""
    deadline = time.monotonic() + within
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never made {expression!r} true")
        page.wait_for_timeout(every)


def measure_weight(browser: Browser, url: str, conversation: str, results: Results) -> None:
    """The JS and CSS loaded until the first message shows, gzip-compressed as served."""
    context, page = logged_in(browser, url)
    loaded: list[Request] = []
    page.on("requestfinished", lambda request: loaded.append(request))
    page.goto(f"/c/{conversation}")
    page.locator(".messages [data-id]").first.wait_for(state="visible")
    results.first_message_ms = float(page.evaluate("performance.now()"))
    for request in list(loaded):
        kind = request.resource_type
        if kind not in ("script", "stylesheet"):
            continue
        response = request.response()
        if response is None:
            continue
        body = response.body()
        results.weight_files.append(
            Loaded(
                url=request.url.removeprefix(url),
                kind=kind,
                bytes=len(body),
                gzip_bytes=len(gzip.compress(body, 9)),
                transferred=int(request.sizes()["responseBodySize"]),
            )
        )
    results.weight_gzip_kb = sum(f.gzip_bytes for f in results.weight_files) / 1024
    page.wait_for_load_state("networkidle")
    early = {f.url for f in results.weight_files}
    results.later_files = sorted(
        {r.url.removeprefix(url) for r in loaded if r.resource_type in ("script", "stylesheet")}
        - early
    )
    context.close()


def measure_open(
    browser: Browser,
    url: str,
    conversation: str,
    last: str,
    other: str,
    runs: int,
    results: Results,
) -> None:
    """From navigation to the last message shown: once with an empty cache, then ``runs``
    times with the assets cached, as on a user's second visit; then ``runs`` times from a click
    on the conversation in the sidebar, with ``other`` open."""
    context, page = logged_in(browser, url, awaited=last)
    shown = "window.__bench && window.__bench.shownAt !== null"
    pending = 0
    for run in range(runs + 1):
        # From a blank tab: the work of leaving the page before (a 500-message conversation
        # being torn down) is not the opening's.
        page.goto("about:blank")
        page.goto(f"/c/{conversation}")
        wait_until(page, shown)
        took = float(page.evaluate("window.__bench.shownAt"))
        pending = max(pending, int(page.evaluate("window.__bench.pendingOnScreen")))
        if run == 0:
            results.open_cold_ms = took
        else:
            results.open_warm_ms.append(took)
    results.open_messages = page.locator(".messages [data-id]").count()
    for _ in range(runs):
        page.goto(f"/c/{other}")
        page.locator('.messages[data-ready="1"]').wait_for()
        link = page.locator(f'.sidebar a[href="/c/{conversation}"]')
        link.wait_for()
        page.wait_for_timeout(300)  # the page settles (idle work of the one just opened)
        page.evaluate("window.__bench.domAt = null; window.__bench.shownAt = null")
        link.click()
        wait_until(page, shown)
        took = float(page.evaluate("window.__bench.shownAt - window.__bench.clickAt"))
        results.open_click_ms.append(took)
        pending = max(pending, int(page.evaluate("window.__bench.pendingOnScreen")))
    results.open_pending_on_screen = pending
    # every message is drawn in the end (the older ones when the page is idle)
    wait_until(page, "document.querySelector('.messages').dataset.from === '0'")
    results.open_messages = page.locator(".messages [data-id]").count()
    context.close()


def measure_stream(
    browser: Browser,
    url: str,
    conversation: str,
    options: Options,
    results: Results,
) -> None:
    """Send a question from the page and watch the long reply stream in; with ``--trace``,
    Chromium's performance trace of it (open it in DevTools' Performance panel)."""
    context, page = logged_in(browser, url)
    page.goto(f"/c/{conversation}")
    page.locator('.messages[data-ready="1"]').wait_for()
    results.long_task_api = bool(page.evaluate("!window.__bench.noLongtaskApi"))
    box = page.locator("#chat-input")
    box.fill("Write the whole guide, please.")
    if options.trace is not None:
        browser.start_tracing(page=page, path=options.trace)
    started = float(page.evaluate("performance.now()"))
    box.press("Enter")
    # Polled rarely from here rather than by Playwright's locators, which query the page at
    # every frame: the page's main thread is what is measured.
    streaming = "document.querySelector('.msg-assistant[data-streaming]')"
    wait_until(page, f"!!{streaming}", every=50)
    wait_until(page, f"!{streaming}", every=100)
    ended = float(page.evaluate("performance.now()"))
    if options.trace is not None:
        browser.stop_tracing()
    reply = page.locator(".msg-assistant").last
    results.stream_finish = str(reply.get_attribute("data-finish") or "")
    results.stream_chars_shown = len(reply.text_content() or "")  # off-screen text too
    results.stream_seconds = (ended - started) / 1000
    results.stream_tokens = options.tokens
    tasks = page.evaluate("window.__bench.longtasks")
    results.long_tasks = [
        round(float(t["duration"]), 1)
        for t in tasks
        if started <= float(t["start"]) <= ended and float(t["duration"]) > LONG_TASK_MS
    ]
    context.close()


# ---- the run --------------------------------------------------------------------------------


def run(options: Options) -> Results:
    results = Results(
        when=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        chromium="",
    )
    with tempfile.TemporaryDirectory(prefix="chatgate-page-bench-") as work:
        server = Server(options, Path(work))
        try:
            small, _ = server.conversation(2, plain=True)
            big, last = server.conversation(options.messages)
            empty = server.empty_conversation()
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                results.chromium = browser.version
                try:
                    measure_weight(browser, server.url, small, results)
                    measure_open(browser, server.url, big, last, small, options.runs, results)
                    measure_stream(browser, server.url, empty, options, results)
                finally:
                    browser.close()
        finally:
            server.stop()
    return results


def table(results: Results) -> str:
    long_tasks = len(results.long_tasks)
    longest = max(results.long_tasks, default=0.0)
    rows = [
        ("JS+CSS before the first message (gzip)", f"{results.weight_gzip_kb:.1f} KB",
         f"≤ {BUDGET_KB:.0f} KB", results.weight_gzip_kb <= BUDGET_KB),
        (f"open {results.open_messages} messages (cached, median)", f"{results.open_ms:.0f} ms",
         f"< {BUDGET_OPEN_MS:.0f} ms", results.open_ms < BUDGET_OPEN_MS),
        (f"open {results.open_messages} messages (empty cache)", f"{results.open_cold_ms:.0f} ms",
         "", None),
        (f"open {results.open_messages} messages from the sidebar (click, median)",
         f"{results.open_click_median_ms:.0f} ms", f"< {BUDGET_OPEN_MS:.0f} ms",
         results.open_click_median_ms < BUDGET_OPEN_MS),
        ("messages on screen not rendered when open", f"{results.open_pending_on_screen}", "0",
         results.open_pending_on_screen == 0),
        (f"long tasks > 50 ms, {results.stream_tokens}-token reply",
         f"{long_tasks} (longest {longest:.0f} ms)", f"{BUDGET_LONG_TASKS}",
         long_tasks <= BUDGET_LONG_TASKS),
        ("that reply streamed in", f"{results.stream_seconds:.1f} s "
         f"({results.stream_chars_shown} characters shown, {results.stream_finish})", "", None),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':<{width}}  {'value':<40}  {'budget':<8}  within"]
    for name, value, budget, ok in rows:
        verdict = "" if ok is None else ("yes" if ok else "NO")
        lines.append(f"{name:<{width}}  {value:<40}  {budget:<8}  {verdict}")
    lines.append("")
    lines.append("loaded before the first message (bytes, gzip, on the wire):")
    for f in results.weight_files:
        lines.append(f"  {f.url:<50} {f.bytes:>9} {f.gzip_bytes:>9} {f.transferred:>9}")
    if results.later_files:
        lines.append("loaded after it: " + ", ".join(results.later_files))
    return "\n".join(lines)


def save(results: Results, output: Path | None) -> Path:
    path = output or RESULTS / f"page-{results.when.replace(':', '')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        **asdict(results),
        "open_ms": results.open_ms,
        "open_click_median_ms": results.open_click_median_ms,
    }
    data["budgets"] = {
        "weight_gzip_kb": BUDGET_KB,
        "open_ms": BUDGET_OPEN_MS,
        "long_tasks": BUDGET_LONG_TASKS,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The web page's weight and timing budgets.")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the tool")
    parser.add_argument("--messages", type=int, help="messages of the long conversation (500)")
    parser.add_argument("--tokens", type=int, help="pieces of the streamed reply (4000)")
    parser.add_argument("--interval", type=float, help="seconds between pieces (0.005)")
    parser.add_argument("--runs", type=int, help="cached openings measured (5)")
    parser.add_argument("--output", type=Path, help="where to write the JSON")
    parser.add_argument("--trace", type=Path, help="write Chromium's trace of the stream here")
    args = parser.parse_args(argv)
    options = Options.quick_run() if args.quick else Options()
    for name in ("messages", "tokens", "interval", "runs", "output", "trace"):
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    results = run(options)
    print(table(results))
    print(f"\nsaved {save(results, options.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
