"""The benchmark scripts run (on tiny models), so the prepared GPU check works when a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys

from inspectors.settings import REPO_ROOT


def test_gpu_check_runs_every_step_on_a_tiny_model(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--tiny"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "OUT": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures == json.loads((tmp_path / "gpu_check.json").read_text())
    auto = figures["auto_dtype"]
    assert auto["turn_ok"] and auto["lab_ok"] and auto["turn_tokens"] > 64
    assert all(auto[f"tab_{tab}_s"] >= 0 for tab in ("prompt", "tokens", "next_token", "attention", "sae"))
