"""Rerun every lab and write `report.json` (every number, sentence and setting) and `report.html`.

    python -m inspectors.report --out DIR [--seed N] [--quick] [--model ID] [--labs a,b]

Each lab runs with its preset (`prompts/labs/<lab>.yaml`; `--quick` applies its quick overrides) and,
where the preset has a `seed`, with `--seed`. The same command with the same seed on the same machine
writes the same report.json, byte for byte, apart from `timing`. A lab that fails is recorded as
`{"error": message}` and the others still run; the exit code is non-zero only for bad arguments (2)
or a model that cannot be loaded (1).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from inspectors.engine.loading import LoadedModel, ProgressFn, load_model
from inspectors.engine.sampling import MAX_SEED
from inspectors.errors import InspectorError
from inspectors.labs.presets import load_preset
from inspectors.labs.registry import LABS, lab_module, show
from inspectors.labs.registry import description as lab_description
from inspectors.labs.registry import title as lab_title
from inspectors.report_html import LabSection, render
from inspectors.settings import Settings

log = logging.getLogger(__name__)

SAMPLING_SUBKEY = "settings"  # the sampling lab keeps its settings under this key; the report lifts them up
VERSIONED = ("torch", "transformers", "sae-lens")


@dataclass
class LabRun:
    lab: str
    data: dict[str, Any]  # the lab's to_json(), or {"error": message}
    section: LabSection
    seconds: float


def seed_arg(text: str) -> int:
    """argparse type for --seed: a clear message instead of a traceback."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, {MAX_SEED}], not {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a whole number in [0, {MAX_SEED}], not {text!r}")
    return value


def labs_arg(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LABS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"must be comma-separated lab names among {', '.join(LABS)}; got {text!r}")
    return [lab for lab in LABS if lab in names]  # always in the course's order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inspectors.report",
        description="Rerun the course's labs on a model and write report.json and report.html.",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for report.json and report.html")
    parser.add_argument(
        "--seed", type=seed_arg, default=None, help="seed of every lab that has one (default: the presets')"
    )
    parser.add_argument("--quick", action="store_true", help="the presets' quick settings (minutes on a CPU)")
    parser.add_argument("--model", default=None, help="embedded/gemma-3-270m (default), a hub id or a local folder")
    parser.add_argument(
        "--labs", type=labs_arg, default=list(LABS), help=f"a subset, comma-separated: {', '.join(LABS)}"
    )
    return parser


def versions() -> dict[str, str]:
    found = {}
    for package in VERSIONED:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def model_info(lm: LoadedModel) -> dict[str, Any]:
    return {
        "id": lm.model_id,
        "dtype": lm.dtype_name,
        "device": lm.device.type,
        "n_layers": lm.n_layers,
        "n_heads": lm.n_heads,
    }


def lab_inputs(lab: str, quick: bool, seed: int | None) -> dict[str, Any]:
    inputs = load_preset(lab, quick=quick)
    if seed is not None and "seed" in inputs:
        inputs["seed"] = seed
    return inputs


def lift_sampling(data: dict[str, Any]) -> dict[str, Any]:
    """report["sampling"]["top_k=2"]["self_bleu"]: each setting's entry at the lab's top level, the rest
    alongside; `setting_names` keeps their order (report.json sorts keys)."""
    entries = data.get(SAMPLING_SUBKEY)
    if not isinstance(entries, dict):
        return data
    lifted = {k: v for k, v in data.items() if k != SAMPLING_SUBKEY}
    clashes = sorted(set(entries) & set(lifted))
    if clashes:
        raise ValueError(f"sampling settings {clashes} clash with the lab's other keys")
    return {**lifted, **entries, "setting_names": list(entries)}


def run_one(lm: LoadedModel, lab: str, inputs: dict[str, Any], progress: ProgressFn) -> LabRun:
    """One lab; any failure is recorded in the result, never raised."""
    title, description = _about(lab)
    start = time.perf_counter()
    try:
        result = lab_module(lab).run(lm, progress=progress, **inputs)
        data = result.to_json()
        if lab == "sampling":
            data = lift_sampling(data)
        json.dumps(data)  # not JSON-serializable is a failure of this lab, not of the report
    except Exception as err:  # one lab's failure must not lose the others
        message = str(err) if isinstance(err, InspectorError) else f"{type(err).__name__}: {err}"
        log.warning("lab %s failed: %s", lab, message, exc_info=not isinstance(err, InspectorError))
        return _failed(lab, message, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    try:
        shown = show(lab, result)
        section = LabSection(lab, title, description, shown.summary, shown.figures, seconds=seconds)
    except Exception as err:  # the numbers are kept even when their figures cannot be drawn
        log.warning("lab %s: figures failed", lab, exc_info=True)
        section = LabSection(lab, title, description, "", error=f"drawing the figures failed: {err}", seconds=seconds)
    return LabRun(lab, data, section, seconds)


def _about(lab: str) -> tuple[str, str]:
    try:
        return lab_title(lab), lab_description(lab)
    except Exception:
        return lab, ""


def _failed(lab: str, message: str, seconds: float) -> LabRun:
    title, description = _about(lab)
    section = LabSection(lab, title, description, summary="", error=message, seconds=seconds)
    return LabRun(lab, {"error": message}, section, seconds)


def run_report(
    lm: LoadedModel,
    *,
    quick: bool = False,
    seed: int | None = None,
    labs: Sequence[str] = LABS,
    stream: TextIO | None = None,
) -> tuple[dict[str, Any], list[LabRun]]:
    """Run `labs` in order; returns (report dict, each lab's run). Progress lines go to `stream`."""
    report: dict[str, Any] = {
        "model": model_info(lm),
        "seed": seed,
        "quick": quick,
        "versions": versions(),
        "inputs": {},
        "timing": {},
    }
    runs = []
    for i, lab in enumerate(labs, start=1):
        tag = f"[{i}/{len(labs)}] {lab}"
        _say(stream, f"{tag}: starting")
        try:
            inputs = lab_inputs(lab, quick, seed)
        except Exception as err:  # a missing or unreadable preset fails this lab only
            inputs, done = None, _failed(lab, f"its preset could not be read: {err}", 0.0)
        else:
            done = run_one(lm, lab, inputs, _progress_printer(stream, tag))
        report["inputs"][lab] = inputs
        outcome = f"FAILED: {done.data['error']}" if "error" in done.data else "done"
        _say(stream, f"{tag}: {outcome} in {done.seconds:.1f} s")
        report[lab] = done.data
        report["timing"][lab] = round(done.seconds, 3)
        runs.append(done)
    report["timing"]["total"] = round(sum(r.seconds for r in runs), 3)
    return report, runs


def write_report(out: Path, report: dict[str, Any], runs: list[LabRun]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    meta = {k: report[k] for k in ("model", "seed", "quick", "versions")}
    html_path.write_text(render(meta, [run.section for run in runs]), encoding="utf-8")
    return json_path, html_path


def main(argv: Sequence[str] | None = None, stream: TextIO | None = None) -> int:
    stream = stream or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)  # bad arguments: usage and the reason, exit code 2
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out must be a folder; {args.out} is a file")
    try:
        settings = Settings.load()
        _say(stream, f"Loading {args.model or settings.model_id}")
        lm = load_model(args.model, settings, progress=lambda f, m: _say(stream, f"  {100 * f:3.0f}% {m}"))
    except InspectorError as err:
        _say(stream, f"error: could not load the model: {err}")
        return 1
    report, runs = run_report(lm, quick=args.quick, seed=args.seed, labs=args.labs, stream=stream)
    json_path, html_path = write_report(args.out, report, runs)
    failed = [run.lab for run in runs if "error" in run.data]
    _say(stream, f"Wrote {json_path} and {html_path} in {report['timing']['total']:.1f} s")
    if failed:
        _say(stream, f"{len(failed)} lab(s) failed, their error is in the report: {', '.join(failed)}")
    return 0


def _say(stream: TextIO | None, line: str) -> None:
    if stream is not None:
        print(line, file=stream, flush=True)


def _progress_printer(stream: TextIO | None, tag: str) -> ProgressFn:
    """A lab's progress callback that prints a line when the message changes or 10% more is done."""
    last: dict[str, Any] = {"fraction": -1.0, "message": None}

    def progress(fraction: float, message: str) -> None:
        if message == last["message"] and fraction - last["fraction"] < 0.1:
            return
        last.update(fraction=fraction, message=message)
        _say(stream, f"{tag}: {100 * fraction:3.0f}% {message}")

    return progress


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
