"""A real terminal for tests: a tmux session of a fixed size on a socket of its own, driven with
``send-keys`` and read with ``capture-pane``. Waits poll the screen up to a deadline."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).parents[2]
WIDTH, HEIGHT = 100, 50


class Terminal:
    def __init__(
        self,
        data_dir: Path,
        *args: str,
        width: int = WIDTH,
        height: int = HEIGHT,
        through: str | None = None,
        **env: str,
    ) -> None:
        """``through`` is a command the program's standard output is piped into (``cat``), so
        that it writes to a pipe while it reads the terminal."""
        self.socket = f"chatgate-test-{uuid.uuid4().hex[:10]}"
        self.name = "chat"
        values = {
            "CHATGATE_DATA_DIR": str(data_dir),
            "PYTHONPATH": str(ROOT),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            **env,
        }
        if os.environ.get("CHATGATE_DATABASE_URL"):  # the test's PostgreSQL database
            values.setdefault("CHATGATE_DATABASE_URL", os.environ["CHATGATE_DATABASE_URL"])
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())
        command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "chatgate", *args))
        if through is not None:
            command += f" | {shlex.quote(through)}"
        path = shlex.quote(os.environ.get("PATH", ""))
        home = shlex.quote(str(data_dir))
        # The pane stays after the program ends, so that its last words can be read.
        shell = f"env -i PATH={path} HOME={home} {exports} {command}; echo '[exited]'; sleep 600"
        size = ("-x", str(width), "-y", str(height))
        self._tmux("new-session", "-d", "-s", self.name, *size, shell)

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return result.stdout

    def type(self, text: str, enter: bool = True) -> None:
        self._tmux("send-keys", "-t", self.name, "-l", text)
        if enter:
            self.keys("Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def screen(self, ansi: bool = False) -> str:
        """What the pane shows, with its history (and colours, with ``ansi``)."""
        flags = ["-p", "-J", "-S", "-2000", "-t", self.name]
        return self._tmux("capture-pane", *(["-e"] if ansi else []), *flags)

    def scrollback(self, ansi: bool = False) -> str:
        """Every line the pane has shown, from the first one, as the terminal keeps them
        (lines it wrapped are left as they are)."""
        flags = ["-p", "-S", "-", "-t", self.name]
        return self._tmux("capture-pane", *(["-e"] if ansi else []), *flags)

    def wait(self, check: Callable[[str], bool], timeout: float = 20, ansi: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen(ansi)
            if check(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed what was awaited:\n{shown}")
            time.sleep(0.05)

    def wait_for(self, text: str, count: int = 1, timeout: float = 20) -> str:
        return self.wait(lambda s: s.count(text) >= count, timeout)

    def press_until(self, key: str, text: str, timeout: float = 20) -> str:
        """Press ``key`` until ``text`` shows: a key pressed while the program is between
        prompts is not lost on a slow machine, only pressed again."""
        deadline = time.monotonic() + timeout
        while True:
            self.keys(key)
            try:
                return self.wait_for(text, timeout=1)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
