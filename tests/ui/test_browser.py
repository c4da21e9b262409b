"""A real browser (Debian chromium via Playwright) on the real app with the embedded Gemma 3 270M:
type a message, watch the reply stream in, open every tab and check it shows the turn."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from inspectors.sae.sources import shipped_saes
from inspectors.settings import EMBEDDED_MODEL_ID, REPO_ROOT, Settings
from tests.ui.conftest import launch

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
pytestmark = pytest.mark.integration

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian chromium at /usr/bin/chromium: .ci/run installs it with apt-get")
    pytest.skip("Debian chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    # The SAE shipped for the embedded model (what the app falls back to offline), named directly so
    # the test doesn't wait for the Hub's retries.
    sae_dir = shipped_saes(EMBEDDED_MODEL_ID)[6]
    settings = Settings(model_id=EMBEDDED_MODEL_ID, max_new_tokens_limit=24, max_context_tokens=1024, sae=str(sae_dir))
    demo, url = launch(settings)
    yield demo, url
    demo.close()


@pytest.fixture(scope="module")
def app_url(app):
    return app[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(app_url)
    return page


def test_chat_streams_and_every_tab_shows_the_turn(page):
    page.get_by_placeholder("Type a message and press Enter").fill("Name a color in a rainbow.")
    page.keyboard.press("Enter")
    bot = page.locator(".message.bot, [data-testid='bot']").last
    bot.wait_for(timeout=60_000)
    lengths = []
    status = page.locator("#gi-status")
    while "stopped by" not in status.inner_text() and len(lengths) < 400:
        lengths.append(len(bot.inner_text()))
        page.wait_for_timeout(100)
    page.screenshot(path=SCREENSHOTS / "chat.png")
    assert "stopped by" in status.inner_text()
    assert len(set(lengths)) >= 2, f"the reply did not grow while streaming: {lengths[:20]}"
    assert bot.inner_text().strip()

    page.get_by_role("tab", name="Prompt").click()
    specials = page.locator(".gi-special")
    specials.first.wait_for(timeout=30_000)
    assert specials.count() >= 4  # <bos>, <start_of_turn>, <end_of_turn>, <start_of_turn>
    page.screenshot(path=SCREENSHOTS / "prompt.png")

    page.get_by_role("tab", name="Tokens").click()
    page.get_by_text("Name", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=SCREENSHOTS / "tokens.png")

    page.get_by_role("tab", name="Next token").click()
    bars = page.locator(".js-plotly-plot .bars path")
    bars.first.wait_for(timeout=30_000)
    assert bars.count() >= 10
    assert "Step 0: generated" in page.locator("body").inner_text()
    page.screenshot(path=SCREENSHOTS / "next_token.png")

    page.get_by_role("tab", name="Attention").click()
    heatmap = page.locator(".js-plotly-plot .heatmaplayer image, .js-plotly-plot .hm image")
    heatmap.first.wait_for(state="attached", timeout=60_000)
    assert heatmap.count() >= 1
    page.screenshot(path=SCREENSHOTS / "attention.png")

    page.get_by_role("tab", name="SAE").click()
    page.get_by_text("is active on", exact=False).first.wait_for(timeout=30_000)
    sae_plot = page.locator(".js-plotly-plot >> visible=true").first
    sae_plot.locator(".bars path").first.wait_for(state="attached", timeout=30_000)
    assert sae_plot.locator(".bars path").count() >= 10  # one bar per token (zero-height where inactive)
    page.get_by_text("Top contexts (the token it fires on in bold)", exact=False).first.wait_for(timeout=30_000)
    page.screenshot(path=SCREENSHOTS / "sae.png")

    page.get_by_text("Find features by words").click()
    search = page.get_by_label("Words")
    search.fill("time")
    search.press("Enter")
    page.get_by_text("fire on or near “time”", exact=False).first.wait_for(timeout=30_000)
    first_cell = page.locator("#gi-search [data-testid='cell-0-0']")
    picked = int(first_cell.inner_text().strip())
    first_cell.click()
    page.get_by_text(f"Feature {picked} of", exact=False).first.wait_for(timeout=30_000)
    page.screenshot(path=SCREENSHOTS / "sae_search.png")


def test_a_lab_runs_in_the_browser(page):
    page.locator("#gi-labs .label-wrap").first.click()
    page.get_by_role("tab", name="3. Tokenization of a sentence").click()
    page.get_by_role("button", name="Run on the current model", exact=True).locator("visible=true").first.click()
    try:
        page.get_by_text("Hung", exact=False).locator("visible=true").first.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=SCREENSHOTS / "lab_tokenization.png", full_page=True)
    assert "⚠️" not in page.locator("#gi-labs").inner_text()


def test_a_failed_model_load_keeps_the_chat_and_the_message_box(page):
    bot = page.locator(".message.bot, [data-testid='bot']")
    replies_before = bot.count()
    assert replies_before >= 1  # the chat of the first test
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill("a message I am still writing")
    picker = page.get_by_role("combobox", name="Model", exact=True)
    picker.fill("/etc")
    picker.press("Enter")
    page.get_by_role("button", name="Load model").click()
    status = page.locator("#gi-status")
    page.get_by_text("holds no model", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=SCREENSHOTS / "failed_load.png")
    assert "Still using embedded/gemma-3-270m" in status.inner_text()
    assert bot.count() == replies_before  # the chat pane is as it was
    assert box.input_value() == "a message I am still writing"


def test_closing_a_tab_releases_its_session(browser, app):
    demo, url = app
    store = demo.gemma_inspector_store
    before = set(store._sessions)
    tab = browser.new_page()
    tab.goto(url)
    for _ in range(600):  # the page's load event creates its session
        if set(store._sessions) - before:
            break
        time.sleep(0.1)
    (new,) = set(store._sessions) - before
    tab.close()
    for _ in range(300):  # Gradio sends the unload event once the page's heartbeat connection has closed
        if new in store._released:
            break
        time.sleep(0.1)
    assert new in store._released


def test_the_why_tabs_render_the_turn_after_a_second_one(page):
    box = page.get_by_placeholder("Type a message and press Enter")
    box.fill("And another colour?")
    box.press("Enter")
    status = page.locator("#gi-status")
    page.wait_for_function("el => el.innerText.startsWith('Turn 2:')", arg=status.element_handle(), timeout=120_000)

    page.get_by_role("tab", name="Layers").click()
    page.get_by_text("What the model's own final norm and head read", exact=False).first.wait_for(timeout=60_000)
    lens = page.locator("#gi-lens .js-plotly-plot")
    lens.locator(".heatmaplayer image, .hm image").first.wait_for(state="attached", timeout=60_000)
    assert "layer 17" in lens.inner_text()  # every layer of the embedded model, the last on top
    # a click on a cell lists its top-10 (Plotly's own click event, as a mouse click raises it)
    plot, cell = "#gi-lens .js-plotly-plot", "#gi-lens-cell textarea, #gi-lens-cell input"
    page.evaluate(f"() => document.querySelector('{plot}').emit('plotly_click', {{points: [{{pointIndex: [3, 1]}}]}})")
    page.wait_for_function(f"() => document.querySelector('{cell}').value === '3,1'")
    page.get_by_text("Top-10 of the clicked cell", exact=False).first.wait_for(timeout=30_000)
    page.screenshot(path=SCREENSHOTS / "layers.png")
    # the exact switch recomputes the grid in float32 at every layer, and says so
    page.get_by_label("Exact: float32 at every layer", exact=False).check()
    page.get_by_text("Every layer in float32", exact=False).first.wait_for(timeout=120_000)

    page.get_by_role("tab", name="Why").click()
    page.get_by_text("Why reply token 0", exact=False).first.wait_for(timeout=120_000)
    assert "current user message" in page.locator("body").inner_text()
    page.screenshot(path=SCREENSHOTS / "why.png")

    page.get_by_role("tab", name="Attention").click()
    page.get_by_text("Where each reply token's attention goes", exact=False).first.wait_for(timeout=120_000)
    page.screenshot(path=SCREENSHOTS / "attention_segments.png", full_page=True)


def test_branch_steer_and_compare_once_each(page):
    status = page.locator("#gi-status")
    turns_before = status.inner_text()
    page.get_by_role("tab", name="Next token").click()
    page.locator(".js-plotly-plot .bars path").first.wait_for(timeout=30_000)
    # a click on the runner-up's row fills the token id; then branch from this step
    page.get_by_text("What if: branch the reply here").first.wait_for()
    page.wait_for_timeout(2_000)  # opening the tab re-renders it for the picked turn
    row = page.locator("[data-testid='cell-1-2']").locator("visible=true").first
    row.click()
    box = page.locator("#gi-branch-id textarea, #gi-branch-id input")
    try:
        page.wait_for_function("el => el.value !== ''", arg=box.element_handle(), timeout=30_000)
    finally:
        page.screenshot(path=SCREENSHOTS / "branch_pick.png", full_page=True)
    assert box.input_value() == row.inner_text().strip()  # the runner-up's id
    page.locator("#gi-branch").click()
    page.get_by_text("forced, seed", exact=False).first.wait_for(timeout=120_000)
    assert "Branch 2" in status.inner_text(), status.inner_text()
    page.screenshot(path=SCREENSHOTS / "branch.png")

    page.get_by_role("tab", name="SAE").click()
    page.get_by_text("is active on", exact=False).first.wait_for(timeout=60_000)
    page.locator("#gi-steer .label-wrap").first.click()
    page.get_by_label("Message to reply to", exact=False).fill("Tell me about your weekend.")
    page.locator("#gi-steer-go").click()
    page.get_by_text("Steered with", exact=False).first.wait_for(timeout=180_000)
    steered = page.locator("#gi-steered textarea")
    assert steered.input_value().strip(), "no steered reply shown"
    assert "mean activation over the reply" in page.locator("#gi-steer").inner_text()
    page.screenshot(path=SCREENSHOTS / "steer.png", full_page=True)
    assert status.inner_text() != turns_before

    page.get_by_role("tab", name="Compare").click()
    page.locator("#gi-compare").click()
    page.get_by_text("First reply token: KL(A ‖ B)", exact=False).first.wait_for(timeout=120_000)
    assert "Top-10 overlap" in page.locator("#gi-compare-summary").inner_text()
    page.screenshot(path=SCREENSHOTS / "compare.png", full_page=True)


def test_save_a_turn_and_open_it_again(page, tmp_path):
    page.locator("#gi-share .label-wrap").first.click()
    page.locator("#gi-save-json").click()
    link = page.locator("#gi-saved a").first
    link.wait_for(timeout=60_000)
    assert "gemma-inspector-turn-" in page.locator("#gi-saved").inner_text()
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "turn.json"
    download.value.save_as(saved)
    assert json.loads(saved.read_text(encoding="utf-8"))["format"] == "gemma-inspector/conversation"

    page.locator("#gi-open input[type=file]").set_input_files(str(saved))
    page.get_by_text("Opened", exact=False).first.wait_for(timeout=60_000)
    assert "⚠️" not in page.locator("#gi-status").inner_text()
    page.screenshot(path=SCREENSHOTS / "opened.png")
