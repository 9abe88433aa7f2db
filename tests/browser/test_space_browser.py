"""The Space in a real headless Chromium, as a visitor uses it, with the default student (the
bundled model on CPU, in the app's process).

Needs Debian's `chromium` (`make system-deps`); Playwright drives it through `executable_path`
(no browser download). The screenshot is kept in out/tests/browser/ for people to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from ted.library import Library
from tests.space_app import REPO, running_space

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = REPO / "out" / "tests" / "browser"
REPLY_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def space_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("space_browser")
    lib = Library(name="browser-demo", version="1.0.0")
    lib.add("Restate what the question asks for before answering.", step=1)
    lib.add("Check an arithmetic result with the inverse operation.", step=1)
    lib.save(folder / "lib" / "library.json")
    # No TED_STUDENT: the default, the bundled model, exactly as on a fresh machine.
    env = {"TED_STUDENT": "", "TED_SPACE_LIBRARIES": str(folder / "lib"), "TED_SPACE_MAX_NEW_TOKENS": "64"}
    with running_space(env, folder / "app.log") as url:
        yield url


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    """A page of a fresh Chromium, with every console error and uncaught exception collected."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            tab.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            yield tab, errors
        finally:
            browser.close()


def pick_library(page: Page, name: str) -> None:
    page.get_by_role("combobox", name="Experience library").click()
    page.get_by_role("option", name=name).click()


def test_ask_with_a_library_in_the_browser(space_url: str, page: tuple[Page, list[str]]) -> None:
    tab, errors = page
    tab.goto(space_url, wait_until="load")  # a Gradio page never goes network-idle
    question = tab.locator("#ask textarea")
    question.wait_for(timeout=60_000)
    expect(tab.get_by_role("heading", name="TED: what does an experience library change?")).to_be_visible()

    block = tab.locator("#block")
    tab.get_by_text("Experience block injected into the system prompt").click()
    pick_library(tab, "none: the plain student")
    expect(block).to_contain_text("No library")
    pick_library(tab, "browser-demo v1.0.0 · 2 experiences (local)")
    expect(block).to_contain_text("[E2] Check an arithmetic result with the inverse operation.")
    expect(tab.locator("#chat-lib")).to_contain_text("Student + browser-demo v1.0.0")

    question.fill("What is 17 + 25?")
    question.press("Enter")
    expect(tab.locator('#chat-lib [data-testid="user"]')).to_contain_text("What is 17 + 25?")
    # The reply is done when the cited experiences are reported and the send button is back.
    expect(block).to_contain_text("The last reply cited", timeout=REPLY_TIMEOUT_MS)
    expect(tab.locator("#ask button.submit-button")).to_be_visible()
    reply = tab.locator('#chat-lib [data-testid="bot"]').last.inner_text()
    assert reply.strip() and reply.strip() != "…" and not reply.startswith("⚠️"), reply

    OUTPUT.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(OUTPUT / "space.png"), full_page=True)
    assert errors == []


def test_a_refused_question_is_explained_on_the_box_and_kept(space_url: str, page: tuple[Page, list[str]], tmp_path: Path) -> None:
    """The bundled student reads text only: an attached image is refused with a friendly line."""
    tab, errors = page
    tab.goto(space_url, wait_until="load")
    question = tab.locator("#ask textarea")
    question.wait_for(timeout=60_000)
    image = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(image)
    question.fill("What colour is this?")
    tab.locator("#ask input[type=file]").set_input_files(str(image))
    expect(tab.locator("#ask img")).to_have_count(1)  # the upload finished
    question.press("Enter")
    expect(tab.locator("#ask")).to_contain_text("This student reads text only, so it cannot look at images.")
    expect(question).to_have_value("What colour is this?")
    expect(tab.locator('#chat-lib [data-testid="user"]')).to_have_count(0)
    # The refusal is an HTTP 422 from Gradio's validator, which Chromium logs; nothing else may fail.
    assert [e for e in errors if "status of 422" not in e] == [] and len(errors) == 1
