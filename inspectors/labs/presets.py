"""The course's inputs and settings for each lab, read from `prompts/labs/<lab>.yaml`.

A preset file holds the lab's inputs as top-level keys (exactly the keyword arguments of the lab's
`run`), plus three reserved keys: `title` and `description` (shown in the app and the report) and
`quick` (overrides applied by `--quick`, so the report finishes in minutes on a CPU).
"""

from __future__ import annotations

from typing import Any

import yaml

from inspectors.settings import PROMPTS_DIR

PRESETS_DIR = PROMPTS_DIR / "labs"
RESERVED_KEYS = ("title", "description", "quick")


def _read(lab: str) -> dict[str, Any]:
    path = PRESETS_DIR / f"{lab}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise KeyError(f"no preset named {lab!r} in {PRESETS_DIR}; known presets: {known}")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def load_preset(lab: str, quick: bool = False) -> dict[str, Any]:
    """The inputs of `lab` as keyword arguments for its `run`; with `quick`, the quick overrides applied."""
    data = _read(lab)
    inputs = {k: v for k, v in data.items() if k not in RESERVED_KEYS}
    if quick:
        inputs.update(data.get("quick") or {})
    return inputs


def preset_info(lab: str) -> dict[str, str]:
    """`title` and `description` (markdown) of `lab`."""
    data = _read(lab)
    return {"title": str(data.get("title", lab)), "description": str(data.get("description", ""))}
