"""What a user waits for in the browser, as ratios to the model's own work (Debian chromium + Playwright).

    python bench/ui_turn.py [--turns 5]

For each turn: Enter -> reply complete -> the visible tab (Prompt) shows the turn, divided by a plain
greedy `generate` of the same prompt and number of new tokens, measured right after in the same process.
`ui_turn_ratio` is the median over the turns. Then, on the last turn, opening each other tab: the time
until it shows that turn, over the same plain generate (tabs are computed only when opened).
Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspectors.sae.sources import shipped_saes
from inspectors.settings import EMBEDDED_MODEL_ID, Settings
from inspectors.views.next_token import step_summary
from tests.ui.conftest import launch

CHROMIUM = "/usr/bin/chromium"
WORDS = ["apples", "bananas", "grapes", "lemons", "oranges", "peaches", "plums"]
MAX_NEW_TOKENS = 32


def plain_generate_s(lm, record) -> float:
    """A plain greedy generate of the turn's prompt, as many new tokens as the turn made."""
    prompt = torch.tensor([record.prompt_ids.tolist()], device=lm.device)
    n = record.steps.n_steps
    start = time.perf_counter()
    with torch.inference_mode():
        lm.model.generate(
            prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=n, min_new_tokens=n
        )
    return time.perf_counter() - start


def measure(turns: int = 5) -> dict:
    from playwright.sync_api import sync_playwright

    sae = shipped_saes(EMBEDDED_MODEL_ID)[6]  # named, so the app does not wait for the Hub's retries
    settings = Settings(model_id=EMBEDDED_MODEL_ID, max_new_tokens_limit=MAX_NEW_TOKENS, sae=str(sae))
    demo, url = launch(settings)
    store = demo.gemma_inspector_store
    results: dict = {"turns": [], "tabs": {}}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(url)
            page.get_by_text("layers", exact=False).first.wait_for(timeout=120_000)  # model card: model loaded
            box = page.get_by_placeholder("Type a message and press Enter")
            prompt_box = page.locator("#gi-prompt-text textarea")
            status = page.locator("#gi-status")
            session = None
            for i in range(turns + 1):  # the first turn warms up (SAE loading, first forward passes)
                word = WORDS[i % len(WORDS)]
                message = f"Tell me about {word} number {i}."
                box.fill(message)
                start = time.perf_counter()
                box.press("Enter")
                page.wait_for_function(
                    "([el, want]) => el.innerText.startsWith(want)",
                    arg=[status.element_handle(), f"Turn {i + 1}:"],
                    timeout=300_000,
                )
                page.wait_for_function(
                    "([el, want]) => el.value.includes(want)", arg=[prompt_box.element_handle(), message],
                    timeout=300_000,
                )  # fmt: skip
                ui_s = time.perf_counter() - start
                session = session or next(iter(store._sessions.values()))
                record = session.records[-1]
                plain_s = plain_generate_s(session.model(), record)
                if i > 0:
                    results["turns"].append(
                        {"ui_s": ui_s, "plain_generate_s": plain_s, "ratio": ui_s / plain_s, "tokens": record.n_tokens}
                    )
            record = session.records[-1]
            markers = {
                "Tokens": ("text", f"␣{WORDS[turns % len(WORDS)]}"),
                "Next token": ("text", step_summary(record, 0).split(" with ")[1].split(" raw")[0]),
                "Attention": ("text", f"queries 0–{min(record.n_tokens, 256) - 1}"),
                "SAE": ("text", f"of {record.n_tokens} tokens"),
            }
            plain_s = plain_generate_s(session.model(), record)
            for tab, (_, marker) in markers.items():
                start = time.perf_counter()
                page.get_by_role("tab", name=tab).click()
                page.get_by_text(marker, exact=False).first.wait_for(timeout=300_000)
                switch_s = time.perf_counter() - start
                results["tabs"][tab] = {"switch_s": switch_s, "ratio": switch_s / plain_s}
            browser.close()
    finally:
        demo.close()
    ratios = [t["ratio"] for t in results["turns"]]
    return {
        "ui_turn_ratio": statistics.median(ratios),
        "ui_turn_ratios": ratios,
        "ui_tab_switch_ratio": {tab: v["ratio"] for tab, v in results["tabs"].items()},
        "ui_detail": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(args.turns)))


if __name__ == "__main__":
    main()
