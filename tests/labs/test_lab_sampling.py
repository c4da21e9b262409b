from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
from transformers import TopKLogitsWarper, TopPLogitsWarper

from inspectors.errors import InvalidParameterError
from inspectors.labs import sampling
from inspectors.labs.diversity import distinct_n, self_bleu
from inspectors.labs.presets import load_preset
from inspectors.views import lab_sampling
from tests.helpers import argmax_loop

PROMPT = "Generate a paraphrase of the sentence 'Professor Hung-yi Lee is one of the best teachers'."


def run(lm, **overrides):
    inputs = {"prompt": PROMPT, "settings": ["top_k=200"], "n_samples": 4, "max_new_tokens": 8, "seed": 0}
    return sampling.run(lm, **{**inputs, **overrides})


def greedy_continuation(lm, prompt: str, max_new_tokens: int) -> str:
    """Argmax, one full forward per token: no generate, no cache, no warpers."""
    ids = [lm.tokenizer.bos_token_id, *lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    new = argmax_loop(lm, ids, max_new_tokens)
    if new and new[-1] in lm.stop_token_ids:
        new = new[:-1]
    return lm.tokenizer.decode(new, skip_special_tokens=True).strip()


def test_preset_has_the_course_settings():
    preset = load_preset("sampling")
    assert preset["settings"] == ["top_k=2", "top_k=200", "top_p=0.6", "top_p=0.999", "top_k=1", "top_p=0"]
    assert (preset["n_samples"], preset["max_new_tokens"], preset["temperature"]) == (20, 30, 1.0)
    assert preset["course_variant"] is False and preset["smoothing"] is None
    quick = load_preset("sampling", quick=True)
    assert quick["n_samples"] < 20 and quick["max_new_tokens"] < 30
    assert [s.name for s in sampling.parse_settings(preset["settings"])] == preset["settings"]


def test_parse_setting_forms():
    assert sampling.parse_setting("top_k=2") == sampling.SamplingSetting("top_k=2", top_k=2)
    assert sampling.parse_setting(" top_p = 0.6 ") == sampling.SamplingSetting("top_p=0.6", top_p=0.6)
    assert sampling.parse_setting("top_k=50,top_p=0.9,temperature=0.7") == sampling.SamplingSetting(
        "top_k=50,top_p=0.9,temperature=0.7", top_k=50, top_p=0.9, temperature=0.7
    )


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("topk=2", "unknown key 'topk'"),
        ("top_k=2.5", "top_k must be a whole number"),
        ("top_k=-1", "top_k must be a whole number"),
        ("top_p=1.5", r"top_p must be in \[0, 1\]"),
        ("top_p=x", "top_p must be a number"),
        ("temperature=0", "temperature must be in"),
        ("top_k", "key=value pairs"),
        ("top_k=2,top_k=3", "gives top_k twice"),
        ("", "non-empty string"),
        (2, "non-empty string"),
    ],
)
def test_bad_setting_is_refused_clearly(spec, match):
    with pytest.raises(InvalidParameterError, match=match) as err:
        sampling.parse_settings(["top_k=2", spec])
    assert str(err.value).startswith("`settings[1]`")
    assert repr(spec) in str(err.value)


def test_bad_settings_lists_are_refused():
    with pytest.raises(InvalidParameterError, match="repeated: \\['top_k=2'\\]"):
        sampling.parse_settings(["top_k=2", "top_k = 2"])
    with pytest.raises(InvalidParameterError, match="non-empty list"):
        sampling.parse_settings("top_k=2")
    with pytest.raises(InvalidParameterError, match="non-empty list"):
        sampling.parse_settings([])


def test_effective_values_and_course_variant():
    top_p = sampling.parse_setting("top_p=0.6")
    assert top_p.effective(1.0, course_variant=False) == {
        "top_k": 0,
        "top_p": 0.6,
        "temperature": 1.0,
        "course_top_k_applied": False,
    }
    assert top_p.effective(1.0, course_variant=True)["top_k"] == 50
    assert top_p.effective(1.0, course_variant=True)["course_top_k_applied"]
    explicit = sampling.parse_setting("top_k=7,top_p=0.6").effective(1.0, course_variant=True)
    assert (explicit["top_k"], explicit["course_top_k_applied"]) == (7, False)
    assert sampling.parse_setting("top_k=2,temperature=0.5").effective(1.0, False)["temperature"] == 0.5


def test_prompt_has_exactly_one_bos(tiny_lm):
    ids = sampling.prompt_ids(tiny_lm, PROMPT)
    bos = tiny_lm.tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1
    assert ids[1:] == tiny_lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]


def test_top_k_1_and_top_p_0_are_greedy(tiny_lm):
    result = run(tiny_lm, settings=["top_k=1", "top_p=0"], n_samples=3, max_new_tokens=6)
    greedy = greedy_continuation(tiny_lm, PROMPT, 6)
    assert greedy
    assert result.setting("top_k=1").samples == [greedy] * 3
    assert result.setting("top_p=0").samples == [greedy] * 3


def test_generate_uses_exactly_the_settings_warpers(tiny_lm, monkeypatch):
    """top-p runs switch top-k off unless course_variant; no model or library default sneaks in."""
    made: list[tuple[str, float]] = []
    top_k_init, top_p_init = TopKLogitsWarper.__init__, TopPLogitsWarper.__init__

    def record_top_k(self, top_k, *args, **kwargs):
        made.append(("top_k", top_k))
        top_k_init(self, top_k, *args, **kwargs)

    def record_top_p(self, top_p, *args, **kwargs):
        made.append(("top_p", top_p))
        top_p_init(self, top_p, *args, **kwargs)

    monkeypatch.setattr(TopKLogitsWarper, "__init__", record_top_k)
    monkeypatch.setattr(TopPLogitsWarper, "__init__", record_top_p)
    result = run(tiny_lm, settings=["top_p=0.6"], n_samples=2, max_new_tokens=1)
    assert made == [("top_p", 0.6)]
    assert result.to_json()["settings"]["top_p=0.6"]["top_k"] == 0
    made.clear()
    result = run(tiny_lm, settings=["top_p=0.6", "top_k=3"], n_samples=2, max_new_tokens=1, course_variant=True)
    assert made == [("top_k", 50), ("top_p", 0.6), ("top_k", 3)]
    course = result.to_json()["settings"]["top_p=0.6"]
    assert (course["top_k"], course["course_top_k_applied"]) == (50, True)
    assert result.to_json()["course_variant"] is True
    assert "course" in lab_sampling.setting_label(result.setting("top_p=0.6"))


SETTINGS = ["top_k=2", "top_p=0.9", "top_k=1"]


@pytest.fixture(scope="module")
def sampled(tiny_lm):
    calls: list[tuple[float, str]] = []
    result = run(
        tiny_lm, settings=SETTINGS, n_samples=4, max_new_tokens=6, seed=3, progress=lambda f, m: calls.append((f, m))
    )
    return result, calls


def test_scores_are_computed_from_the_samples(sampled):
    result, _ = sampled
    for s in result.settings:
        assert len(s.samples) == 4 and all(isinstance(x, str) and x == x.strip() for x in s.samples)
        assert s.self_bleu == pytest.approx(self_bleu(s.samples), abs=1e-12)
        assert s.distinct_1 == distinct_n(s.samples, 1)
        assert s.distinct_2 == distinct_n(s.samples, 2)
        assert all(0 <= n <= 6 for n in s.n_new_tokens)
    assert len(set(result.setting("top_p=0.9").samples)) > 1  # sampled, not greedy


def test_same_seed_same_samples_other_seed_other_samples(tiny_lm, sampled):
    result, _ = sampled
    expected = result.to_json()["settings"]["top_p=0.9"]
    # Rerun alone: the same samples, so a setting does not depend on the settings around it either.
    alone = run(tiny_lm, settings=["top_p=0.9"], n_samples=4, max_new_tokens=6, seed=3).to_json()
    assert alone["settings"]["top_p=0.9"] == expected
    other = run(tiny_lm, settings=["top_p=0.9"], n_samples=4, max_new_tokens=6, seed=4).to_json()
    assert other["settings"]["top_p=0.9"]["samples"] != expected["samples"]


def test_json_shape_and_progress(sampled):
    result, calls = sampled
    data = json.loads(json.dumps(result.to_json()))
    assert list(data["settings"]) == SETTINGS
    entry = data["settings"]["top_k=2"]
    assert {"samples", "self_bleu", "distinct_1", "distinct_2", "top_k", "top_p", "seed"} <= set(entry)
    assert data["prompt"] == PROMPT and data["n_samples"] == 4 and data["max_new_tokens"] == 6
    assert [round(f, 3) for f, _ in calls] == [0.0, 0.333, 0.667, 1.0] and "top_p=0.9" in calls[1][1]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"n_samples": 1}, "n_samples"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 10_000}, "max_new_tokens"),
        ({"temperature": 0}, "temperature"),
        ({"seed": -1}, "seed"),
        ({"smoothing": "method9"}, "smoothing"),
        ({"prompt": "  "}, "prompt"),
        ({"settings": ["top_k=2", "top-p=0.5"]}, "settings\\[1\\]"),
    ],
)
def test_bad_inputs_are_refused_before_generating(tiny_lm, overrides, match):
    with pytest.raises(InvalidParameterError, match=match):
        run(tiny_lm, **overrides)


def test_views(sampled):
    result, _ = sampled
    figures = lab_sampling.figures(result)
    assert [title for title, _ in figures] == ["Diversity by sampling setting"]
    fig = figures[0][1]
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["self-BLEU", "distinct-1", "distinct-2"]
    assert list(fig.data[0].y) == [s.self_bleu for s in result.settings]
    assert list(fig.data[2].y) == [s.distinct_2 for s in result.settings]
    assert list(fig.data[0].x) == SETTINGS
    summary = lab_sampling.summary_markdown(result)
    for s in result.settings:
        assert f"| `{s.name}` |" in summary and f"{s.self_bleu:.4f}" in summary
        assert all(lab_sampling._md_text(sample) in summary for sample in s.samples)
    assert summary.count("\n1. ") == len(SETTINGS)


def test_markdown_escapes_samples():
    assert lab_sampling._md_text("<em>a|b</em>\nnext *x*") == "&lt;em&gt;a\\|b&lt;/em&gt; ↵ next \\*x\\*"
    assert lab_sampling._md_text("") == "*(empty)*"
    assert lab_sampling._md_text("1. first") == "1\\. first"
    assert lab_sampling._md_text("- item") == "\\- item"
