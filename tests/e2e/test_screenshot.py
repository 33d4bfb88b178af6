"""The README's picture: the page with ROIs, the state and events, as a person sees it."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import DOCS_SCREENSHOT, open_page, wait_js
from tests.integration.test_mqtt import RED_SHIRT

expect.set_options(timeout=10_000)


def test_docs_screenshot(run_node, broker, new_page, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "person_finder.py").write_text(RED_SHIRT)
    node = run_node({
        "name": "Living room",
        "camera": {"width": 640, "height": 480, "fps": 15},
        "pipeline": {"module": "person_finder", "processor_dirs": [str(mods)]},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port},
        "colours": {"green": [0, 255, 0], "orange": [0, 165, 255]},
        "rois": {"door": {"left": 5, "top": 20, "right": 30, "bottom": 95, "colour": "green"},
                 "rug": {"left": 22, "top": 72, "right": 88, "bottom": 96, "colour": "orange"}},
    })
    page = new_page(viewport={"width": 1280, "height": 860})
    open_page(page, node)
    expect(page.locator("#s-mqtt")).to_contain_text("connected to")
    wait_js(page, "document.getElementById('stream').naturalWidth === 640")
    # An event with its thumbnail makes the picture tell the whole story.
    expect(page.locator("#events li.event .thumb img").first).to_be_visible(timeout=30_000)
    wait_js(page, "[...document.querySelectorAll('#events .thumb img')]"
                  ".every(i => i.complete && i.naturalWidth > 0)")
    page.click("#roi-edit")
    page.click(".roi-row[data-name=rug] .roi-name")
    page.locator("body").click(position={"x": 5, "y": 5})   # blur: no focus ring in the picture
    expect(page.locator("#overlay .roi[data-name=rug] .handle")).to_have_count(8)
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
    assert DOCS_SCREENSHOT.stat().st_size > 50_000
