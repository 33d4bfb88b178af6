"""The page as a person uses it: live video, state, controls, module form, events."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.conftest import open_page, read_config, wait_js
from tests.integration.conftest import wait_for
from tests.integration.test_mqtt import RED_SHIRT

expect.set_options(timeout=10_000)


def test_page_shows_moving_video_and_the_state(run_node, page):
    node = run_node()
    open_page(page, node)
    img = page.locator("#stream")
    wait_js(page, "document.getElementById('stream').naturalWidth === 320")
    first = img.screenshot()
    # The synthetic scene moves and the stamp's clock ticks: the picture must change.
    wait_for(lambda: img.screenshot() != first, timeout=10, what="the <img> to change")
    expect(page.locator("#title")).to_have_text("test node")
    expect(page.locator("#s-pipeline")).to_have_text("running")
    expect(page.locator("#s-frame")).to_have_text("live")
    expect(page.locator("#s-module")).to_have_text("service")
    expect(page.locator("#s-source")).to_contain_text("synthetic: ok")
    expect(page.locator("#s-viewers")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#s-mqtt")).to_contain_text("disabled")
    expect(page.locator("#s-fps")).to_have_text(re.compile(r"^\d+\.\d$"))
    expect(page.locator("#badge")).to_be_hidden()
    expect(page.locator("#snapshot")).to_have_attribute("href", "/snapshot.jpg")


def test_stop_and_start_buttons_change_the_state_shown(run_node, page):
    node = run_node()
    open_page(page, node)
    expect(page.locator("#start")).to_be_disabled()   # already running
    page.click("#stop")
    expect(page.locator("#s-pipeline")).to_have_text("stopped")
    expect(page.locator("#badge")).to_be_visible()
    expect(page.locator("#badge-text")).to_have_text("stopped")
    expect(page.locator("#s-frame")).to_have_text("stopped")
    expect(page.locator("#stop")).to_be_disabled()
    assert node.state()["pipeline"] == "stopped"
    page.click("#start")
    expect(page.locator("#s-pipeline")).to_have_text("running")
    expect(page.locator("#s-frame")).to_have_text("live")
    expect(page.locator("#badge")).to_be_hidden()
    assert node.state()["pipeline"] == "running"
    page.click("#restart")
    expect(page.locator("#toast")).to_contain_text("pipeline/restart: ok")


def test_state_changed_elsewhere_is_pushed_to_the_page(run_node, page):
    from tests.integration.conftest import post_command
    node = run_node()
    open_page(page, node)
    # Counts every request the page makes from now on: the state must come by the socket.
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/api/state" in r.url else None)
    status, _ = post_command(node.url, "pipeline/stop")
    assert status == 200
    expect(page.locator("#s-pipeline")).to_have_text("stopped")
    status, _ = post_command(node.url, "module/set", {"name": "passthrough"})
    expect(page.locator("#s-module")).to_have_text("passthrough")
    expect(page.locator("#module")).to_have_value("passthrough")
    assert polls == []


def test_module_form_from_the_params_schema(run_node, page, config_path):
    node = run_node()
    open_page(page, node)
    page.select_option("#module", "motion")
    # One input per property, typed and bounded as the schema says, prefilled with defaults.
    sens = page.locator("#param-sensitivity")
    expect(sens).to_have_value("50")
    expect(sens).to_have_attribute("min", "1")
    expect(sens).to_have_attribute("max", "100")
    expect(page.locator("#param-width")).to_have_attribute("step", "1")
    expect(page.locator("#param-draw")).to_be_checked()
    expect(page.locator("#module-apply")).to_have_text("Use module")
    # A value the module refuses: the server's error appears next to that field.
    sens.fill("500")
    page.click("#module-apply")
    expect(page.locator("#param-sensitivity-error")).to_contain_text("maximum")
    expect(page.locator(".param[data-key=sensitivity]")).to_have_class(re.compile("invalid"))
    assert node.state()["module"] == "service"
    sens.fill("70")
    page.uncheck("#param-draw")
    page.click("#module-apply")
    expect(page.locator("#s-module")).to_have_text("motion")
    expect(page.locator("#param-sensitivity-error")).to_have_text("")
    pipe = read_config(config_path)["pipeline"]
    assert pipe["module"] == "motion"
    assert pipe["module_params"]["sensitivity"] == 70 and pipe["module_params"]["draw"] is False
    # The form shows what the node runs after a reload.
    page.reload()
    expect(page.locator("#module")).to_have_value("motion")
    expect(page.locator("#param-sensitivity")).to_have_value("70")
    expect(page.locator("#param-draw")).not_to_be_checked()
    expect(page.locator("#module-apply")).to_have_text("Apply")


def test_detection_events_appear_live_with_snapshots(run_node, page, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "redshirt.py").write_text(RED_SHIRT)
    node = run_node({
        "camera": {"fps": 10},
        "pipeline": {"module": "redshirt", "processor_dirs": [str(mods)]},
        "rois": {"door": {"left": 5, "top": 5, "right": 35, "bottom": 95, "colour": "green"}},
        "events": {"occupancy_off_delay_s": 1, "end_after_s": 1, "snapshot_height": 120}})
    open_page(page, node)
    card = page.locator("#events li.event").first
    expect(card).to_be_visible(timeout=30_000)
    expect(card.locator("strong")).to_have_text("person")
    expect(card.locator(".score")).to_have_text("90%")
    # While the walker is tracked the status line says so (it was "motion|still" before,
    # which any text matched).
    expect(page.locator("#s-motion")).to_have_text("motion")
    # The snapshot taken when the object appeared is shown as a thumbnail.
    thumb = card.locator(".thumb img")
    expect(thumb).to_be_visible(timeout=15_000)
    wait_js(page,
            "document.querySelector('#events li.event .thumb img').naturalHeight === 120")
    # The walker crosses the door: the ROI lights up, and the event names it.
    expect(page.locator("#overlay .roi[data-name=door]")).to_have_class(
        re.compile("occupied"), timeout=30_000)
    expect(page.locator("#events li.event", has_text="door").first).to_be_visible(timeout=30_000)
    # ...and the object leaves: its card says it ended.
    expect(page.locator("#events li.event.end").first).to_be_visible(timeout=30_000)
    expect(page.locator("#events li.event.end .tag").first).to_have_text("ended")
    # Gone for 1 s (occupancy_off_delay_s) and not back for another 4 s: "still".
    expect(page.locator("#s-motion")).to_have_text("still", timeout=10_000)


def test_no_signal_is_shown_as_such(run_node, page, tmp_path):
    node = run_node({"camera": {"source": str(tmp_path / "missing.mp4")}})
    page.goto(node.url + "/")
    expect(page.locator("#badge-text")).to_have_text("no signal", timeout=15_000)
    expect(page.locator("#s-frame")).to_have_text("no signal")
    expect(page.locator("#s-source")).to_contain_text("missing.mp4")


def test_connection_lost_and_back(camnode, write_config, page):
    from tests.integration.conftest import free_port
    cfg = write_config({"web": {"port": free_port()}})
    node = camnode("run", "--config", str(cfg)).wait_ready()
    open_page(page, node)
    assert node.stop() == 0
    expect(page.locator("#conn")).to_contain_text("connection lost")
    expect(page.locator("#badge-text")).to_have_text("connection lost")
    # The same node back on the same port: the page reconnects by itself, video included.
    again = camnode("run", "--config", str(cfg)).wait_ready()
    assert again.url == node.url
    expect(page.locator("#conn")).to_have_text("live", timeout=20_000)
    expect(page.locator("#badge")).to_be_hidden()
    img = page.locator("#stream")
    first = img.screenshot()
    wait_for(lambda: img.screenshot() != first, timeout=10, what="the video to move again")
