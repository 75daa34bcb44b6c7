"""The reviewer page in a real browser: Playwright driving Debian's chromium.

Open the list, filter, open a trajectory, see the highlighted loss tokens,
accept it with the keyboard, reload, find the mark kept. The server is the real
app under uvicorn on 127.0.0.1. Nothing is skipped: a missing browser or
missing Playwright fails with the line that says what to install.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TRAJFORGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def server(fresh_run):
    import uvicorn

    from pipelines.review.app import create_app
    from pipelines.review.listing import Filters
    from pipelines.review.serve import listen

    run_dir, _ = fresh_run
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(run_dir, Filters(sample=50, seed=0)), log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "review server did not start"
    yield f"http://127.0.0.1:{port}", run_dir
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def page():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install playwright==1.65.2 (no `playwright install`: "
                    "the test drives Debian's chromium)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium (or set TRAJFORGE_CHROMIUM)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_filter_open_see_loss_tokens_accept_reload(server, page):
    base, run_dir = server
    page.goto(base + "/")
    assert page.locator("tr.row").count() == 22
    page.select_option("select[name=domain]", "agentic-cot")  # the select submits the filter form itself
    page.wait_for_url("**domain=agentic-cot**")
    page.select_option("select[name=verdict]", "passed")
    page.wait_for_url("**verdict=passed**")
    assert page.locator("#matching").inner_text() == "4"
    rows = page.locator("tr.row")
    assert rows.count() == 4 and all("agentic-cot" in rows.nth(i).inner_text() for i in range(4))

    page.keyboard.press("j")  # select the first row, open it with Enter
    page.keyboard.press("Enter")
    page.wait_for_url("**/t/t-cot*")
    tid = page.locator("#trajectory").get_attribute("data-id")
    loss = page.locator("#token-view .tk.loss")
    assert loss.count() > 10
    assert page.locator("#token-view .tk").count() > loss.count()  # the rest is there, not highlighted
    highlighted = page.evaluate("getComputedStyle(document.querySelector('#token-view .tk.loss')).backgroundColor")
    plain = page.evaluate("getComputedStyle(document.querySelector('#token-view .tk:not(.loss)')).backgroundColor")
    assert highlighted != plain
    assert "<summary>" in "".join(loss.all_inner_texts())
    assert page.locator(".phase-label.ph-reflection").count() >= 1

    page.fill("#comment", "phases clean")
    page.locator("#comment").press("Escape")
    page.keyboard.press("a")
    page.wait_for_function("document.querySelector('#mark-status').textContent === 'accept'")
    page.reload()
    assert page.locator("#mark-status").inner_text() == "accept"
    assert page.locator("#comment").input_value() == "phases clean"
    assert (run_dir / "review" / "marks" / f"{tid}.json").is_file()

    page.keyboard.press("u")  # back to the list, still filtered, the mark shown
    page.wait_for_url("**domain=agentic-cot**")
    assert page.locator(f"tr[data-id='{tid}'] .mark").inner_text() == "accept"
