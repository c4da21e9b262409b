"""The package's shape: views need no torch, the labs are listed explicitly, and it imports from anywhere."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import inspectors.views
from inspectors.labs import registry


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_views_import_no_torch_and_no_gradio(tmp_path):
    views = [f"inspectors.views.{m.name}" for m in pkgutil.iter_modules(inspectors.views.__path__)]
    assert len(views) >= 14
    code = "import sys\n" + "".join(f"import {v}\n" for v in views)
    code += (
        "heavy = sorted(m for m in ('torch', 'transformers', 'gradio', 'sae_lens') if m in sys.modules)\nprint(heavy)"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_package_imports_from_any_folder(tmp_path):
    done = run_python(
        "import inspectors; from inspectors import Session, load_model; print(inspectors.__file__)", tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("inspectors/__init__.py")


def test_labs_are_listed_explicitly_with_their_views():
    assert registry.LABS == (
        "template_vs_none", "multiturn", "tokenization", "sampling", "embeddings", "attention_generation", "sae",
        "explain",
    )  # fmt: skip
    for lab in registry.LABS:
        entry = registry.REGISTRY[lab]
        assert callable(entry.module.run) and callable(entry.view.figures) and entry.view.N_FIGURES >= 1
        assert (
            entry.module.__name__ == f"inspectors.labs.{lab}" and entry.view.__name__ == f"inspectors.views.lab_{lab}"
        )
