"""The signaling benchmark itself runs end to end (bench/signaling): a handful of staff, a
few requests a second, with each kind of client. Figures are not judged here (BENCHMARKS.md
holds them); that every request is sent, answered and delivered, with no error, is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("client", ["node", "python"])
def test_a_small_run_answers_every_request(client: str, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.signaling.run", "--client", client, "--staff", "30",
         "--rate", "10", "--seconds", "2", "--warmup", "0", "--pause", "0", "--callers", "20",
         "--max-minutes", "3", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    [memory] = figures["memory"]
    assert memory["connected"] == 30 and not memory["connect_errors"], memory
    [phase] = figures["phases"]
    assert phase["sent"] == 20 and phase["skipped"] == 0, phase
    assert phase["answered"] == 20 and phase["errors"] == {}, phase
    assert phase["delivered"] == phase["expected"] > 0, phase
    assert 0 < phase["p50_ms"] <= phase["p99_ms"], phase
