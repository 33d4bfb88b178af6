"""The ROI editor: drawing with the mouse, validation errors, MQTT edits live, conflicts."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_page, read_config
from tests.integration.conftest import post_command, wait_for

expect.set_options(timeout=10_000)
BASE = "camnode/test"


@pytest.fixture
def node_with_broker(run_node, broker, probe_factory):
    """A node on a real Mosquitto, and a probe client (Home Assistant / Node-RED)."""
    def start(changes: dict | None = None):
        changes = dict(changes or {})
        changes["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": broker.port}
        probe = probe_factory(broker.port)
        node = run_node(changes)
        probe.wait(f"{BASE}/availability", lambda m: m.payload == b"online", timeout=15)
        return node, probe
    return start


def drag(page, selector: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press, move in steps and release over `selector`; points in percent of its box."""
    box = page.locator(selector).bounding_box()
    x = lambda p: box["x"] + box["width"] * p / 100    # noqa: E731
    y = lambda p: box["y"] + box["height"] * p / 100   # noqa: E731
    page.mouse.move(x(start[0]), y(start[1]))
    page.mouse.down()
    page.mouse.move(x(end[0]), y(end[1]), steps=10)
    page.mouse.up()


def _json(msg) -> dict:
    return json.loads(msg.payload)


def edge(row, field: str) -> float:
    return float(row.locator(f"[data-field={field}]").input_value())


def test_drawn_roi_is_saved_to_config_and_mqtt(node_with_broker, broker, probe_factory, page,
                                               config_path):
    node, probe = node_with_broker()
    open_page(page, node)
    expect(page.locator("#s-mqtt")).to_contain_text("connected to")
    expect(page.locator("#roi-status")).to_have_text("saved · version 0")
    page.click("#roi-edit")
    drag(page, "#overlay", (55, 20), (90, 70))
    expect(page.locator(".roi-row[data-name=roi_1]")).to_be_visible()
    expect(page.locator("#overlay .roi[data-name=roi_1]")).to_be_visible()
    row = page.locator(f".roi-row[data-key={page.get_attribute('.roi-row[data-name=roi_1]', 'data-key')}]")
    assert abs(edge(row, "left") - 55) < 1.5 and abs(edge(row, "bottom") - 70) < 1.5
    expect(page.locator("#roi-status")).to_contain_text("unsaved")
    # Move it by its body, resize it by the bottom-right handle, then save.
    drag(page, "#overlay", (70, 45), (65, 45))
    assert abs(edge(row, "left") - 50) < 1.5 and abs(edge(row, "right") - 85) < 1.5
    handle = page.locator("#overlay .roi[data-name=roi_1] .handle.se").bounding_box()
    frame = page.locator("#overlay").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.95, frame["y"] + frame["height"] * 0.9,
                    steps=8)
    page.mouse.up()
    assert abs(edge(row, "right") - 95) < 1.5 and abs(edge(row, "bottom") - 90) < 1.5
    # Name it and pick a colour from the node's colour table.
    row.locator("[data-field=name]").fill("window")
    row.locator("select[data-field=colour]").select_option("orange")
    expect(page.locator("#overlay .roi[data-name=window]")).to_be_visible()
    mark = probe.mark()
    page.click("#roi-save")
    expect(page.locator("#roi-status")).to_have_text("saved · version 1")
    cfg = read_config(config_path)
    roi = cfg["rois"]["window"]
    assert cfg["rois_version"] == 1 and set(cfg["rois"]) == {"door", "window"}
    assert abs(roi["left"] - 50) < 1.5 and abs(roi["top"] - 20) < 1.5
    assert abs(roi["right"] - 95) < 1.5 and abs(roi["bottom"] - 90) < 1.5
    assert roi["colour"] == "orange"
    live = probe.wait(f"{BASE}/rois", lambda m: _json(m)["version"] == 1, since=mark)
    assert _json(live)["rois"]["window"] == roi
    # A client connecting now (Home Assistant after a restart) gets it retained.
    late = probe_factory(broker.port, topics=(f"{BASE}/rois",), client_id="late-probe")
    retained = late.wait(f"{BASE}/rois")
    assert retained.retain and _json(retained) == {"version": 1, "rois": cfg["rois"]}


def test_invalid_edit_shows_the_error_next_to_the_roi(run_node, page, config_path):
    node = run_node()
    open_page(page, node)
    key = page.get_attribute(".roi-row[data-name=door]", "data-key")
    row = page.locator(f".roi-row[data-key={key}]")   # stays this row when renamed
    row.locator("[data-field=right]").fill("5")       # left is 10
    page.click("#roi-save")
    error = row.locator(".field-error[data-error-for=right]")
    expect(error).to_contain_text("greater than left")
    expect(row.locator("[data-field=right]")).to_have_class(re.compile("invalid"))
    expect(page.locator("#overlay .roi[data-name=door]")).to_have_class(re.compile("invalid"))
    expect(page.locator("#roi-status")).to_contain_text("unsaved")   # the edit is kept
    assert read_config(config_path).get("rois_version", 0) == 0
    # A name the node cannot key on is caught on the row too.
    row.locator("[data-field=right]").fill("40")
    expect(error).to_have_count(0)
    row.locator("[data-field=name]").fill("front door")
    page.click("#roi-save")
    expect(row.locator(".field-error[data-error-for=name]")).to_be_visible()
    row.locator("[data-field=name]").fill("front_door")
    page.click("#roi-save")
    expect(page.locator("#roi-status")).to_have_text("saved · version 1")
    assert set(read_config(config_path)["rois"]) == {"front_door"}


def test_roi_added_over_mqtt_appears_without_reload(node_with_broker, page):
    node, probe = node_with_broker()
    open_page(page, node)
    page.evaluate("window.__sameDocument = true")
    reply = probe.request(BASE, "roi/add", {"id": "r1", "name": "mqtt_zone", "left": 50,
                                            "top": 50, "right": 80, "bottom": 90,
                                            "colour": "red"})
    assert reply["status"] == "ok", reply
    row = page.locator(".roi-row[data-name=mqtt_zone]")
    expect(row).to_be_visible()
    expect(row.locator("[data-field=left]")).to_have_value("50")
    expect(row.locator("select[data-field=colour]")).to_have_value("red")
    expect(page.locator("#overlay .roi[data-name=mqtt_zone]")).to_be_visible()
    expect(page.locator("#roi-status")).to_have_text("saved · version 1")
    assert page.evaluate("window.__sameDocument") is True


def test_conflicting_save_is_refused_and_the_edit_can_be_reapplied(run_node, page, config_path):
    node = run_node()
    open_page(page, node)
    row = page.locator(".roi-row[data-name=door]")
    row.locator("[data-field=left]").fill("12")
    # Meanwhile someone else (Home Assistant, Node-RED, another page) adds an ROI.
    status, reply = post_command(node.url, "roi/add", {"name": "other", "left": 60, "top": 10,
                                                       "right": 90, "bottom": 40})
    assert status == 200, reply
    expect(page.locator("#roi-banner")).to_contain_text("changed elsewhere")
    page.click("#roi-save")
    banner = page.locator("#roi-banner")
    expect(banner).to_contain_text("changed elsewhere — reloaded; re-apply your edit")
    expect(page.locator("#toast")).to_contain_text("changed elsewhere")
    # The node's table is shown; the user's version is kept (dashed) until they choose.
    expect(page.locator(".roi-row[data-name=other]")).to_be_visible()
    expect(row.locator("[data-field=left]")).to_have_value("10")
    expect(page.locator("#overlay .roi.ghost")).to_have_count(1)
    cfg = read_config(config_path)
    assert cfg["rois"]["door"]["left"] == 10 and cfg["rois_version"] == 1
    page.click("#roi-reapply")
    expect(row.locator("[data-field=left]")).to_have_value("12")
    expect(page.locator(".roi-row[data-name=other]")).to_be_visible()
    page.click("#roi-save")
    expect(page.locator("#roi-status")).to_have_text("saved · version 2")
    cfg = read_config(config_path)
    assert cfg["rois"]["door"]["left"] == 12 and "other" in cfg["rois"]


def test_deleting_an_roi(run_node, page, config_path):
    node = run_node({"rois": {"door": {"left": 10, "top": 10, "right": 40, "bottom": 90},
                              "gate": {"left": 50, "top": 10, "right": 90, "bottom": 50}}})
    open_page(page, node)
    page.click(".roi-row[data-name=door] .delete")
    expect(page.locator(".roi-row[data-name=door]")).to_have_count(0)
    expect(page.locator("#overlay .roi[data-name=door]")).to_have_count(0)
    page.click("#roi-save")
    expect(page.locator("#roi-status")).to_have_text("saved · version 1")
    assert set(read_config(config_path)["rois"]) == {"gate"}
    # Discard brings back what the node has.
    page.click(".roi-row[data-name=gate] .delete")
    page.click("#roi-discard")
    expect(page.locator(".roi-row[data-name=gate]")).to_be_visible()
    expect(page.locator("#roi-save")).to_be_disabled()


def test_phone_layout_and_drawing_by_touch(run_node, new_page):
    node = run_node()
    page = new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                    is_mobile=True, has_touch=True)
    open_page(page, node)
    # One column, nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    frame = page.locator("#frame").bounding_box()
    assert frame["width"] > 330
    page.click("#roi-edit")
    box = page.locator("#overlay").bounding_box()
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, px: float, py: float) -> None:
        points = [] if kind == "touchEnd" else [
            {"x": box["x"] + box["width"] * px / 100, "y": box["y"] + box["height"] * py / 100}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 50, 20)
    for step in range(1, 9):
        touch("touchMove", 50 + step * 5, 20 + step * 7)
    touch("touchEnd", 90, 76)
    row = page.locator(".roi-row[data-name=roi_1]")
    expect(row).to_be_visible()
    assert abs(float(row.locator("[data-field=right]").input_value()) - 90) < 1.5
    assert abs(float(row.locator("[data-field=bottom]").input_value()) - 76) < 1.5
    cdp.detach()
