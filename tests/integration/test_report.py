"""`python -m inspectors.report --quick` end to end on the embedded Gemma 3 270M, twice: the same report.json.

About 4-5 minutes per run on two idle CPU cores (see the report's `timing`), so this is the slowest test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inspectors.labs.registry import LABS
from inspectors.settings import REPO_ROOT

pytestmark = pytest.mark.integration

SAMPLING_KEYS = ("top_k=2", "top_k=200", "top_p=0.6", "top_p=0.999", "top_k=1", "top_p=0")


def run_report(out) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # nothing from the Hub: the same offline result everywhere
    done = subprocess.run(
        [sys.executable, "-m", "inspectors.report", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (out / "report.html").stat().st_size > 1_000_000  # plotly.js is inlined
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_quick_report_is_reproducible(tmp_path):
    first, second = run_report(tmp_path / "a"), run_report(tmp_path / "b")
    timing = first.pop("timing")
    second.pop("timing")
    assert first == second
    assert first["model"]["id"] == "embedded/gemma-3-270m" and first["quick"] is True
    assert set(LABS) <= set(first)
    for key in SAMPLING_KEYS:
        entry = first["sampling"][key]
        assert len(entry["samples"]) == first["inputs"]["sampling"]["n_samples"]
        assert all(isinstance(s, str) for s in entry["samples"]) and isinstance(entry["self_bleu"], float)
    assert len(set(first["sampling"]["top_k=1"]["samples"])) == 1  # greedy
    assert first["tokenization"]["ids"]  # the labs that need nothing from the Hub all ran
    for lab in ("multiturn", "tokenization", "sampling", "embeddings", "attention_generation"):
        assert "error" not in first[lab], (lab, first[lab])
    print("quick report timing (s):", timing)
