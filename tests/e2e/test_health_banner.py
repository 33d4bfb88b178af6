"""The page says when the node has a problem: a banner over the picture, naming the part."""

from __future__ import annotations

import os
import signal

from playwright.sync_api import expect

from tests.e2e.conftest import open_page
from tests.integration.conftest import post_command, wait_for

expect.set_options(timeout=10_000)

TWO_CHANNEL = ("import numpy as np\n"
               "def process_image(src):\n"
               "    return np.zeros(src.shape[:2] + (2,), np.uint8)\n")


def test_a_degraded_module_shows_a_banner_until_it_is_switched(run_node, page, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "two_channel.py").write_text(TWO_CHANNEL)
    node = run_node({"pipeline": {"module": "two_channel", "processor_dirs": [str(mods)]}})
    open_page(page, node)
    banner = page.locator("#health")
    expect(banner).to_be_visible()
    expect(page.locator("#health-title")).to_have_text("Working with problems")
    expect(page.locator("#health-list li").first).to_contain_text("module: ")
    expect(page.locator("#health-list li").first).to_contain_text("2-channel")
    expect(banner).not_to_have_class("banner health failing")
    assert post_command(node.url, "module/set", {"name": "passthrough"})[0] == 200
    expect(banner).to_be_hidden()


def test_a_dead_part_shows_a_red_banner_naming_it(run_node, page):
    node = run_node({"web": {"workers": 2}})
    wait_for(lambda: node.state()["web_workers"] == 2, what="two workers reporting")
    open_page(page, node)
    expect(page.locator("#health")).to_be_hidden()
    os.kill(node.state()["worker"]["pid"], signal.SIGKILL)
    expect(page.locator("#health")).to_have_class("banner health failing")
    expect(page.locator("#health-title")).to_contain_text("web not working")
    expect(page.locator("#health-list li").first).to_contain_text("web: worker")
    expect(page.locator("#health")).to_be_hidden(timeout=20_000)
