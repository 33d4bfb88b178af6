"""End-to-end fixtures: a real `camnode run` (the integration fixtures) seen through Debian's
Chromium, driven headless by Playwright for Python.

Playwright's own browser downloads are never used (`playwright install` needs the network):
the tests launch /usr/bin/chromium, which `make test` installs from Debian. One browser per
test module; each test gets a fresh context (cookies, storage) and page, closed after it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import *  # noqa: F401,F403  (camnode, run_node, broker, ...)
from tests.integration.conftest import ROOT, wait_for  # noqa: F401

CHROMIUM = os.environ.get("CAMNODE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
# The README's picture is rewritten only when asked (`CAMNODE_DOCS_SCREENSHOT=1 make test`),
# so a test run leaves the work tree clean; otherwise it goes to a temporary file.
DOCS_SCREENSHOT = (ROOT / "docs" / "screenshot.png" if os.environ.get("CAMNODE_DOCS_SCREENSHOT")
                   else Path(tempfile.gettempdir()) / f"camnode-screenshot-{os.getpid()}.png")


# Per module, not per session: while Playwright's sync API runs, its event loop counts as
# running in this thread, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is not installed: run `make test`, which installs chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make test` (pip install -e '.[test]')")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception:
        pw.stop()
        raise
    yield b
    b.close()
    pw.stop()


class PageErrors(list):
    """Uncaught exceptions in the page: a test that causes one fails."""


@pytest.fixture
def new_page(browser):
    """Factory: new_page(**context_options) -> page in its own context; all closed after."""
    contexts = []
    errors = PageErrors()

    def make(**options):
        options.setdefault("viewport", DESKTOP)
        ctx = browser.new_context(**options)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Anything the page's Content-Security-Policy blocks is a bug in the page.
        page.on("console", lambda msg: errors.append(msg.text)
                if "Content Security Policy" in msg.text else None)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """Where `write_config` (and so `run_node`) put the node's config.json."""
    return tmp_path / "config.json"


def read_config(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_js(page, expression: str, timeout: float = 10.0):
    """Poll a JavaScript expression until it is truthy.

    Not `page.wait_for_function`: that polls by eval() inside the page, which the page's
    Content-Security-Policy (rightly) forbids; `evaluate` goes through the debugger."""
    return wait_for(lambda: page.evaluate(expression), timeout=timeout, what=expression)


def open_page(page, node, path: str = "/"):
    """Open the node's page and wait until the live socket delivered the state."""
    from playwright.sync_api import expect

    page.goto(node.url + path)
    expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
    return page
