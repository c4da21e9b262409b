"""`python -m inspectors.report` on a tiny model: reproducible JSON, a self-contained HTML page, clear errors."""

from __future__ import annotations

import html
import io
import json
import re

import pytest

from inspectors import report
from inspectors.engine.sampling import MAX_SEED
from inspectors.labs.registry import LABS, title

SAMPLING_KEYS = ("top_k=2", "top_k=200", "top_p=0.6", "top_p=0.999", "top_k=1", "top_p=0")
# Shorter still than --quick: the tiny model's 262k-token vocabulary makes each sampled step cost
# about as much as the embedded model's. tests/integration/test_report.py runs the real quick presets.
SMALLER = {
    "sampling": {"n_samples": 3, "max_new_tokens": 4},
    "template_vs_none": {"max_new_tokens": 6},
    "multiturn": {"max_new_tokens": 6},
    "attention_generation": {"max_new_tokens": 4},
}
QUICK_CALLS: list[tuple[str, bool]] = []


@pytest.fixture(scope="module", autouse=True)
def smaller_presets():
    real = report.load_preset

    def load_preset(lab: str, quick: bool = False) -> dict:
        QUICK_CALLS.append((lab, quick))
        inputs = real(lab, quick=quick)
        return {**inputs, **{k: v for k, v in SMALLER.get(lab, {}).items() if k in inputs}}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "load_preset", load_preset)
        yield


def run_main(*args: str) -> tuple[int, str]:
    stream = io.StringIO()
    code = report.main(list(args), stream=stream)
    return code, stream.getvalue()


def without_timing(path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data.pop("timing"), dict)
    return data


@pytest.fixture(scope="module")
def tiny_model(tiny_dirs):
    return str(tiny_dirs["gemma3"])


@pytest.fixture(scope="module")
def first(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-a")
    code, log = run_main("--model", tiny_model, "--quick", "--seed", "3", "--out", str(out))
    assert code == 0, log
    return out, log


def test_same_seed_same_report_json(first, tiny_model, tmp_path):
    out, log = first
    code, _ = run_main("--model", tiny_model, "--quick", "--seed", "3", "--out", str(tmp_path))
    assert code == 0
    data = without_timing(out / "report.json")
    assert data == without_timing(tmp_path / "report.json")
    text = (out / "report.json").read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    assert set(LABS) <= set(data)
    assert data["model"]["id"] == tiny_model and data["seed"] == 3 and data["quick"] is True
    assert set(data["versions"]) == {"torch", "transformers", "sae-lens"}
    timing = json.loads(text)["timing"]
    assert set(timing) == {*LABS, "total"} and all(isinstance(v, float) for v in timing.values())
    # every lab ran with its quick preset and the seed where it has one
    assert data["inputs"]["sampling"]["seed"] == 3 and data["inputs"]["sampling"]["n_samples"] == 3
    assert ("sampling", True) in QUICK_CALLS and ("sae", True) in QUICK_CALLS
    assert "seed" not in data["inputs"]["tokenization"]
    for lab in LABS:
        assert f"[{LABS.index(lab) + 1}/{len(LABS)}] {lab}: starting" in log
    assert "Wrote" in log


def test_sampling_settings_sit_where_the_spec_says(first):
    data = without_timing(first[0] / "report.json")
    sampling = data["sampling"]
    assert sampling["setting_names"] == list(SAMPLING_KEYS)
    for key in SAMPLING_KEYS:
        entry = sampling[key]
        assert len(entry["samples"]) == 3 and all(isinstance(s, str) for s in entry["samples"])
        assert isinstance(entry["self_bleu"], float)
    assert sampling["seed"] == 3 and sampling["n_samples"] == 3  # the lab's other settings stay alongside
    # greedy settings: every sample the same
    assert (
        len(set(sampling["top_k=1"]["samples"])) == 1
        and sampling["top_k=1"]["samples"] == sampling["top_p=0"]["samples"]
    )


def test_another_seed_gives_other_samples(first, tiny_model, tmp_path):
    code, _ = run_main("--model", tiny_model, "--quick", "--seed", "4", "--labs", "sampling", "--out", str(tmp_path))
    assert code == 0
    other = without_timing(tmp_path / "report.json")
    base = without_timing(first[0] / "report.json")
    assert set(other) == {"model", "seed", "quick", "versions", "inputs", "sampling"}
    assert other["sampling"]["top_k=200"]["samples"] != base["sampling"]["top_k=200"]["samples"]
    assert other["sampling"]["top_k=1"]["samples"] == base["sampling"]["top_k=1"]["samples"]  # greedy: no seed


def test_html_is_self_contained_and_names_every_lab(first):
    page = (first[0] / "report.html").read_text(encoding="utf-8")
    for lab in LABS:
        assert html.escape(title(lab)) in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*['\"]https?:", page, flags=re.IGNORECASE)
    assert page.count("* plotly.js v") == 1  # the library once; every figure uses it
    assert page.count("Plotly.newPlot(") >= 3
    assert "<table>" in page  # markdown tables rendered, not left as pipes


def test_a_failing_lab_is_recorded_and_the_others_kept(tiny_model, tmp_path, monkeypatch):
    real = report.lab_module

    def lab_module(lab):
        if lab == "tokenization":
            raise RuntimeError("the tokenizer caught fire")
        return real(lab)

    monkeypatch.setattr(report, "lab_module", lab_module)
    code, log = run_main("--model", tiny_model, "--labs", "sae,tokenization", "--out", str(tmp_path))
    assert code == 0
    data = without_timing(tmp_path / "report.json")
    assert data["tokenization"] == {"error": "RuntimeError: the tokenizer caught fire"}
    assert "unavailable" in data["sae"]  # the tiny model has no SAE: the reason, not a failure
    assert "tokenization: FAILED: RuntimeError: the tokenizer caught fire" in log
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "This lab failed: RuntimeError: the tokenizer caught fire" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "abc"], "argument --seed: must be a whole number in [0, 4294967295], not 'abc'"),
        (["--seed", "-5"], "argument --seed: must be a whole number"),
        (["--seed", str(MAX_SEED + 1)], "argument --seed: must be a whole number"),
        (["--labs", "sampling,nope"], "argument --labs: must be comma-separated lab names"),
        ([], "the following arguments are required: --out"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(args, message, tmp_path, capsys):
    out = [] if not args else ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        report.main([*out, *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_out_must_be_a_folder(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        report.main(["--out", str(target)])
    assert exit_info.value.code == 2 and "--out must be a folder" in capsys.readouterr().err


def test_a_model_that_cannot_load_exits_1(tmp_path):
    code, log = run_main("--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "out"))
    assert code == 1
    assert "error: could not load the model:" in log and "no-such-model" in log
    assert not (tmp_path / "out").exists()


def test_lift_sampling_keeps_the_rest_alongside():
    lifted = report.lift_sampling({"seed": 1, "settings": {"top_k=2": {"self_bleu": 0.5}, "top_p=0": {}}})
    assert lifted == {"seed": 1, "top_k=2": {"self_bleu": 0.5}, "top_p=0": {}, "setting_names": ["top_k=2", "top_p=0"]}
    with pytest.raises(ValueError, match="clash"):
        report.lift_sampling({"seed": 1, "settings": {"seed": {}}})
