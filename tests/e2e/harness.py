"""The real server as a subprocess and Debian's Chromium, for the end-to-end tests and for
scripts/screenshots.py. Nothing here downloads a browser (``playwright install`` is never run)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TONGBAN_TEST_CHROMIUM", "/usr/bin/chromium")
DEMO_PASSWORD = "Demo#2026"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--lang=zh-CN",  # date inputs and built-in messages as a clerk's browser shows them
    # fake cameras at 30 fps: fake_device_0 is the face; fake_device_1 is a depth camera
    # (Y16) that a page can show but WebRTC cannot send; fake_device_2 is the 高拍仪
    "--use-fake-device-for-media-stream=device-count=3,fps=30",
]


def tongban_command() -> list[str]:
    """The ``tongban`` console script next to the running interpreter (the project's venv)."""
    script = Path(sys.executable).parent / "tongban"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tongban.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.load(resp)


@contextlib.contextmanager
def running_server(
    data_dir: Path, env: Mapping[str, str] | None = None, *, timeout: float = 60
) -> Iterator[RunningServer]:
    """``tongban demo`` then ``tongban serve`` on a free port; yields once /healthz answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "TONGBAN_DATA_DIR": str(data_dir),
        "TONGBAN_MEDIA_ADDRESSES": "127.0.0.1",
        **(env or {}),
    }
    for name in ("TONGBAN_DATABASE_URL", "TONGBAN_REDIS_URL", "TONGBAN_RECORDINGS_URL"):
        if env is None or name not in env:
            full_env.pop(name, None)  # the embedded defaults, inside data_dir
    log_path = data_dir / "server.log"
    demo = subprocess.run(
        [*tongban_command(), "demo"], env=full_env, cwd=REPO, capture_output=True, timeout=120
    )
    if demo.returncode != 0:
        raise RuntimeError(f"tongban demo failed:\n{demo.stdout.decode()}\n{demo.stderr.decode()}")
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*tongban_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=full_env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = RunningServer(f"http://127.0.0.1:{port}", data_dir, log_path, process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tongban serve exited early:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as resp:
                    if resp.status in (200, 503):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tongban serve did not answer /healthz:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def launch_chromium(playwright: Any, **kw: Any) -> Any:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: apt-get install -y chromium fonts-wqy-microhei "
            "(never `playwright install`)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, **kw)


def login(page: Any, base_url: str, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log in through the form, as a clerk would."""
    page.goto(base_url + "/")
    page.locator("form#login-form input[name=username]").fill(username)
    page.locator("form#login-form input[name=password]").fill(password)
    page.get_by_role("button", name="登录").click()
    page.locator("#topbar").wait_for(state="visible")


WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(first17: str) -> str:
    """A valid GB 11643 number from its first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]
