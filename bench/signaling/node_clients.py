"""A client process in Node.js (clients.mjs) behind the same interface run.py uses for the
Python ones: ``send`` a command tuple, ``recv`` its one answer; ``join``/``is_alive``/
``kill`` as for a multiprocessing.Process. Commands and answers are JSON lines on the child's
stdin and stdout; its stderr goes to ours.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.signaling.clients import WindowShare

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("clients.mjs")


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("--client node needs Node.js (`node` on PATH)")
    if not (ROOT / "node_modules" / "socket.io-client").is_dir():
        raise RuntimeError("--client node needs `npm ci` at the repository's root")
    return found


class NodeClients:
    def __init__(
        self, urls: list[str], windows: list[WindowShare], caller_tokens: list[str]
    ) -> None:
        self.proc = subprocess.Popen(
            [node(), str(SCRIPT)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.pid = self.proc.pid
        self._write(
            {
                "urls": urls,
                "windows": [w.__dict__ for w in windows],
                "caller_tokens": caller_tokens,
            }
        )

    def _write(self, value: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(value).encode() + b"\n")
        self.proc.stdin.flush()

    def send(self, command: tuple[Any, ...]) -> None:
        self._write(list(command))

    def recv(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError(f"the Node.js client process ended (exit {self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
