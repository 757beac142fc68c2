"""End-to-end fixtures: the real server (``tongban demo`` + ``tongban serve``) once per run,
Debian's Chromium with fake cameras, and one browser context per logged-in person."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.harness import RunningServer, launch_chromium, login, running_server

# Short rings so that the missed-call scenario (R4, R5) takes seconds, not minutes.
RING_TIMEOUT_S = 4
RING_LIMIT_S = 30
# argon2 makes a login take most of a second; on a busy machine several
expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir: Path = tmp_path_factory.mktemp("tongban-e2e")
    external = os.environ.get("TONGBAN_E2E_URL")
    if external:  # a server someone started (with demo data and these ring settings)
        yield RunningServer(external.rstrip("/"), data_dir, data_dir / "none.log", None)
        return
    env = {
        "TONGBAN_RING_TIMEOUT": str(RING_TIMEOUT_S),
        "TONGBAN_RING_LIMIT": str(RING_LIMIT_S),
    }
    with running_server(data_dir, env) as running:
        yield running
        print("---- server log (tail) ----")
        print(running.log_tail(120))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(server: RunningServer, browser: Any) -> Iterator[Callable[..., Any]]:
    """``open_page("zz.a1")``: a fresh browser context (own cookies), logged in through the
    form; ``open_page()`` only opens the login page."""
    contexts: list[Any] = []
    logs: list[str] = []

    def open_(username: str | None = None, *, password: str | None = None) -> Any:
        context = browser.new_context(
            base_url=server.url,
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            viewport={"width": 1280, "height": 800},
            accept_downloads=True,
        )
        context.grant_permissions(["camera", "microphone"], origin=server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        tag = username or "anonymous"
        page.on("console", lambda msg: logs.append(f"[{tag}] {msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: logs.append(f"[{tag}] pageerror: {err}"))
        if username is None:
            page.goto(server.url + "/")
        elif password is None:
            login(page, server.url, username)
        else:
            login(page, server.url, username, password)
        return page

    yield open_
    for context in contexts:
        for page in context.pages:  # a failed test must not leave its call ringing on
            with contextlib.suppress(Exception):
                page.evaluate(
                    "() => { if (window.__tongbanCall) window.__tongbanCall.hangup();"
                    " document.querySelector('#btn-cancel')?.click(); }"
                )
                page.wait_for_timeout(300)  # let the hang-up or cancel reach the server
        context.close()
    if logs:
        print("---- browser console ----")
        print("\n".join(logs[-200:]))
