"""README.md's Space front matter (what the Hub reads) and space.yaml (what the app reads) agree."""

from __future__ import annotations

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from inspectors.settings import EMBEDDED_MODEL_ID, REPO_ROOT, Settings, read_settings_yaml


def front_matter() -> dict:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must start with the Space's YAML front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


def gradio_requirement() -> SpecifierSet:
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("gradio"):
            return SpecifierSet(line.removeprefix("gradio").split("#")[0].strip())
    raise AssertionError("requirements.txt names no gradio")


def test_front_matter_is_a_gradio_space_on_python_312():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert isinstance(meta["python_version"], str), "quote python_version, or YAML reads 3.10 as 3.1"
    # transformers 5 needs >= 3.11; ZeroGPU supports 3.10 and 3.12 only
    assert meta["python_version"] == "3.12"
    assert Version(meta["sdk_version"]) in gradio_requirement()
    assert len(meta["short_description"]) <= 60
    assert meta["suggested_hardware"]


def test_front_matter_and_space_yaml_agree():
    meta = front_matter()
    settings = read_settings_yaml(REPO_ROOT / "space.yaml")
    hub_models = [m for m in settings["allowed_model_ids"] if not m.startswith("embedded/")]
    assert EMBEDDED_MODEL_ID in settings["allowed_model_ids"]  # the fallback when the hub model cannot load
    assert sorted(meta["models"]) == sorted(hub_models)
    assert settings["model_id"] in settings["allowed_model_ids"]
    assert settings["hosted"] is True  # a public Space never loads arbitrary ids
    assert settings["allowed_scorer_models"] == ["cross-encoder/ms-marco-MiniLM-L-6-v2"]
    hosted = Settings.load(env={"SPACE_ID": "someone/gemma-inspector"})
    assert hosted.hosted and hosted.model_id == settings["model_id"]
